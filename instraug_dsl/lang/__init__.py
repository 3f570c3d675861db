"""The language front end: parse, lower, check and resolve `.iat` sources.

Later stages (compile, runtime, dataset, importers) reach the front end through
:mod:`.frontend` (``check``, ``check_text``, ``load_catalog``), never through the
public facade :mod:`instraug_dsl.api`.  Nothing is imported here, so importing
one small module (``lang.strings``) does not pull in the parser.
"""
