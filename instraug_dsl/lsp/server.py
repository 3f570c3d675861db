"""The pygls server: document sync, diagnostics, hover, definition, completion, formatting.

Every request reads the latest analysis of its document (checked on open and on every
change); a change also re-checks the other open documents that import the changed one.
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from .._version import __version__
from ..lang.source import Span
from . import completion, definitions, formatting, hover
from .diagnostics import document_diagnostics
from .documents import Analysis, Documents, file_path, normalise
from .positions import Positions


class IatServer:
    """The state behind the handlers: open documents and the position encoding."""

    def __init__(self, server: LanguageServer) -> None:
        self.server = server
        self.documents = Documents()
        self.positions = Positions()

    # ------------------------------------------------------------- set-up
    def initialize(self, params: types.InitializeParams) -> None:
        """Remember the workspace folders: imports may point anywhere inside them."""
        folders = [f.uri for f in params.workspace_folders or ()]
        if not folders and params.root_uri:
            folders.append(params.root_uri)
        roots = [p for p in map(file_path, folders) if p is not None]
        options = params.initialization_options
        if isinstance(options, dict):
            extra = options.get("allowImports") or []
            base = roots[0] if roots else Path.cwd()
            roots += [base / str(p) for p in extra if isinstance(p, str)]
        self.documents.allow_imports = roots
        # pygls has chosen the encoding (and made the workspace) before this handler runs.
        self.positions = Positions(str(self.server.workspace.position_encoding or "utf-16"))

    # ---------------------------------------------------------- documents
    def changed(self, uri: str, version: int | None) -> None:
        """Re-check a document and the open documents that import it; publish."""
        text = self.server.workspace.get_text_document(uri).source
        self.publish(self.documents.update(uri, text, version))
        for other in self.documents.dependents(uri):
            self.publish(self.documents.analyse(other))

    def closed(self, uri: str) -> None:
        """Forget a document, clear its diagnostics, re-check what imported it (from disk)."""
        dependents = self.documents.dependents(uri)
        self.documents.close(uri)
        self.server.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )
        for other in dependents:
            self.publish(self.documents.analyse(other))

    def publish(self, analysis: Analysis) -> None:
        """Send the diagnostics of one analysed document."""

        def uri_for(key: str) -> str | None:
            return self.documents.uri_for(key, analysis)

        self.server.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=analysis.uri,
                version=analysis.version,
                diagnostics=document_diagnostics(analysis, self.positions, uri_for),
            )
        )

    def analysis(self, uri: str) -> Analysis | None:
        """The latest analysis of an open document (checked now if it has none)."""
        found = self.documents.analyses.get(uri)
        if found is None and uri in self.documents.texts:
            found = self.documents.analyse(uri)
        return found

    def offset(self, analysis: Analysis, position: types.Position) -> int:
        """A position of the document as an offset of its analysed text."""
        return self.positions.offset(analysis.text, position)

    def location(self, analysis: Analysis, span: Span) -> types.Location | None:
        """The LSP location of a span of any source the analysis read."""
        source = analysis.source_of(span.path)
        uri = self.documents.uri_for(span.path, analysis)
        if source is None or uri is None:
            return None
        return types.Location(uri=uri, range=self.positions.range(source, span))

    def file_location(self, path: Path) -> types.Location:
        """The start of a file."""
        start = types.Position(line=0, character=0)
        return types.Location(
            uri=self.documents.uri_of_path(path), range=types.Range(start=start, end=start)
        )

    def markup(self) -> types.MarkupKind:
        """Markdown unless the client only shows plain text in hovers."""
        caps = self.server.client_capabilities.text_document
        formats = caps.hover.content_format if caps and caps.hover else None
        if formats and types.MarkupKind.Markdown not in formats:
            return types.MarkupKind.PlainText
        return types.MarkupKind.Markdown

    # ----------------------------------------------------------- features
    def hover(self, params: types.HoverParams) -> types.Hover | None:
        """Hover at a position."""
        analysis = self.analysis(params.text_document.uri)
        if analysis is None:
            return None
        source = analysis.source
        return hover.hover(
            analysis,
            self.offset(analysis, params.position),
            self.markup(),
            lambda span: self.positions.range(source, span),
        )

    def definition(self, params: types.DefinitionParams) -> list[types.Location]:
        """Declarations of the name at a position."""
        analysis = self.analysis(params.text_document.uri)
        if analysis is None:
            return []
        return definitions.definition(
            analysis,
            self.offset(analysis, params.position),
            lambda span: self.location(analysis, span),
            self.file_location,
        )

    def completion(self, params: types.CompletionParams) -> types.CompletionList:
        """Completion items at a position (of the text as the editor has it now)."""
        uri = params.text_document.uri
        text = normalise(self.server.workspace.get_text_document(uri).source)
        self.analysis(uri)
        names = completion.collect_names(self.documents.declaring_modules(uri))
        offset = self.positions.offset(text, params.position)
        items = completion.complete(text, offset, names, lambda at: self._position(text, at))
        return types.CompletionList(is_incomplete=False, items=items)

    def _position(self, text: str, offset: int) -> types.Position:
        line = text.count("\n", 0, offset)
        start = text.rfind("\n", 0, offset) + 1
        return types.Position(line=line, character=self.positions.width(text[start:offset]))

    def formatting(self, params: types.DocumentFormattingParams) -> list[types.TextEdit]:
        """The whole document in canonical layout (no edit when formatted or broken)."""
        uri = params.text_document.uri
        text = self.server.workspace.get_text_document(uri).source
        path = file_path(uri)
        return formatting.format_document(text, str(path) if path else uri, self.positions)


def build() -> LanguageServer:
    """A language server with every feature registered."""
    server = LanguageServer("iatc", __version__)
    state = IatServer(server)

    @server.feature(types.INITIALIZE)
    def on_initialize(params: types.InitializeParams) -> None:
        state.initialize(params)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def on_open(params: types.DidOpenTextDocumentParams) -> None:
        state.changed(params.text_document.uri, params.text_document.version)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def on_change(params: types.DidChangeTextDocumentParams) -> None:
        state.changed(params.text_document.uri, params.text_document.version)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def on_save(params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        if uri in state.documents.texts:
            state.changed(uri, state.documents.texts[uri][1])

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def on_close(params: types.DidCloseTextDocumentParams) -> None:
        state.closed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def on_hover(params: types.HoverParams) -> types.Hover | None:
        return state.hover(params)

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def on_definition(params: types.DefinitionParams) -> list[types.Location]:
        return state.definition(params)

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=["{", ":"]),
    )
    def on_completion(params: types.CompletionParams) -> types.CompletionList:
        return state.completion(params)

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    def on_formatting(params: types.DocumentFormattingParams) -> list[types.TextEdit]:
        return state.formatting(params)

    return server


def serve() -> None:
    """Run the server over standard input and output until the client says ``exit``."""
    build().start_io()
