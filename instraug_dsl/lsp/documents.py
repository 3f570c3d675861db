"""Open documents and their analyses: each is checked with everything it imports.

A document that exists on disk is checked as ``iatc check FILE --allow-imports FOLDER...``
would check it (the folders are the workspace's, so imports may point anywhere in the
workspace), except that the text of every open document wins over its file: an import of
an open, unsaved file sees the editor's text.  A document without a file (``untitled:``, or
not saved yet) is checked alone, like ``check_text``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from ..lang import ir
from ..lang.frontend import CheckResult, check, check_text
from ..lang.source import SourceFile

#: An ``import "..."`` line, read without parsing (for a document with syntax errors).
_IMPORT = re.compile(r'^[ \t]*import[ \t]+"(?:[^"\\\n]|\\.)*"', re.M)


def normalise(text: str) -> str:
    """Line breaks as the loader reads files (universal newlines)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def file_path(uri: str) -> Path | None:
    """The file a ``file:`` URI names (absolute), else ``None``."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or not parsed.path:
        return None
    path = url2pathname(parsed.path)  # percent-decoded (and a drive letter on Windows)
    if parsed.netloc and parsed.netloc != "localhost":
        path = f"//{parsed.netloc}{path}"  # a UNC path
    return Path(path).absolute()


def resolved(path: Path) -> Path:
    """``path`` with links followed, or as it is when that fails."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return path


def source_file(key: str) -> Path | None:
    """The file behind a source name of the front end (``span.path``): names are relative
    to the working directory, or absolute."""
    if key.startswith("<"):
        return None
    return resolved(Path.cwd() / key)


@dataclass
class Analysis:
    """One check of one open document: the result and where the document is in it."""

    uri: str
    #: The document's name in the front end's results (``span.path``).
    key: str
    #: The (normalised) text that was checked.
    text: str
    version: int | None
    result: CheckResult
    #: The document's own module, ``None`` when it has syntax errors.
    module: ir.Module | None
    #: Every file the check read (resolved), the document's own included.
    files: frozenset[Path] = frozenset()

    @property
    def source(self) -> SourceFile:
        """The document's source (its checked text)."""
        return self.result.sources.get(self.key) or SourceFile(self.key, self.text)

    def source_of(self, key: str) -> SourceFile | None:
        """Any source the check read, by its name."""
        return self.result.sources.get(key)


@dataclass
class Documents:
    """The open documents (normalised text by URI) and their latest analyses."""

    texts: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    analyses: dict[str, Analysis] = field(default_factory=dict)
    #: The last module of each document that parsed: names to complete while it is broken.
    last_good: dict[str, ir.Module] = field(default_factory=dict)
    #: Folders imports may point into besides the document's own (the workspace folders).
    allow_imports: list[Path] = field(default_factory=list)
    #: The modules imported by a document that does not parse, by the import lines read.
    _imports: dict[str, tuple[str, list[ir.Module]]] = field(default_factory=dict)

    def overlay(self) -> dict[Path, str]:
        """The text of every open document with a file, by resolved path."""
        found: dict[Path, str] = {}
        for uri, (text, _) in self.texts.items():
            path = file_path(uri)
            if path is not None:
                found[resolved(path)] = text
        return found

    def update(self, uri: str, text: str, version: int | None = None) -> Analysis:
        """Record a document's (new) text and check it."""
        self.texts[uri] = (normalise(text), version)
        return self.analyse(uri)

    def close(self, uri: str) -> None:
        """Forget a closed document."""
        self.texts.pop(uri, None)
        self.analyses.pop(uri, None)
        self.last_good.pop(uri, None)
        self._imports.pop(uri, None)

    def analyse(self, uri: str) -> Analysis:
        """Check an open document (with its imports) and keep the analysis."""
        text, version = self.texts[uri]
        path = file_path(uri)
        result: CheckResult | None = None
        key = uri
        if path is not None and path.is_file():
            try:
                result = check([path], self.allow_imports, self.overlay())
            except FileNotFoundError:  # deleted meanwhile: checked alone below
                result = None
            if result is not None:
                real = resolved(path)
                key = next((k for k in result.sources if source_file(k) == real), str(path))
        if result is None:
            key = str(path) if path is not None else uri
            result = check_text(text, key)
        module = next((m for m in result.program.modules if m.path == key), None)
        files = frozenset(f for f in map(source_file, result.sources) if f is not None)
        analysis = Analysis(uri, key, text, version, result, module, files)
        self.analyses[uri] = analysis
        if module is not None:
            self.last_good[uri] = module
        return analysis

    def declaring_modules(self, uri: str) -> list[ir.Module]:
        """Modules whose declarations a document may use: its own and what it imports.

        While the document has syntax errors its imports are not followed by the check,
        so its ``import`` lines are checked on their own (cached while they stay the same);
        its own declarations then come from its last version that parsed.
        """
        analysis = self.analyses.get(uri)
        if analysis is None:
            return []
        if analysis.module is not None:
            return list(analysis.result.program.modules)
        own = [m for m in (self.last_good.get(uri),) if m is not None]
        path = file_path(uri)
        if path is None or not path.is_file():
            return own
        stub = "\n".join(_IMPORT.findall(analysis.text)) + "\n"
        cached = self._imports.get(uri)
        if cached is None or cached[0] != stub:
            real = resolved(path)
            try:
                result = check([path], self.allow_imports, {**self.overlay(), real: stub})
            except FileNotFoundError:
                return own
            imported = [m for m in result.program.modules if source_file(m.path) != real]
            cached = self._imports[uri] = (stub, imported)
        return [*cached[1], *own]

    def dependents(self, uri: str) -> list[str]:
        """Other open documents whose last check read the file of ``uri``."""
        path = file_path(uri)
        if path is None:
            return []
        real = resolved(path)
        return [
            other
            for other, analysis in self.analyses.items()
            if other != uri and real in analysis.files
        ]

    def uri_for(self, key: str, analysis: Analysis) -> str | None:
        """The URI of a source named ``key`` in ``analysis`` (an open document's own URI
        when it is open, so the client recognises it)."""
        if key == analysis.key:
            return analysis.uri
        path = source_file(key)
        if path is None:
            return None
        return self.uri_of_path(path)

    def uri_of_path(self, path: Path) -> str:
        """The URI of a file: the open document's when it is open."""
        real = resolved(path)
        for uri in self.texts:
            own = file_path(uri)
            if own is not None and resolved(own) == real:
                return uri
        return real.as_uri()
