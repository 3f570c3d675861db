"""The run directory's contract: every file one stage writes and a later stage reads.

One module per group of files, each a set of frozen dataclasses with one JSON layer
(:mod:`.codec`, over :mod:`instraug_dsl.fsio`):

* :mod:`.compiled` -- ``compiled/``: requests, validators, manifest, catalog snapshot;
* :mod:`.run` -- the run directory: instructions, rejected, failed, summary, lock;
* :mod:`.dataset` -- a materialized dataset's manifest, error and drop rows.

Compile, runtime and dataset read and write these files only through these classes.
Nothing is imported here, so a stage pays only for the files it touches.
"""
