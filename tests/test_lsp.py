"""``iatc lsp`` end to end: a real LSP client (pytest-lsp) talks JSON-RPC over stdio to
``python -m instraug_dsl lsp`` started as a subprocess.

Each test starts its own server on a workspace in ``tmp_path`` (a second or so), opens
small in-test documents (one test opens a file of ``templates/multiinstruct``) and checks
one feature: diagnostics (the codes, ranges and hints of ``iatc check``), hover, go to
definition, completion and formatting.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest_lsp = pytest.importorskip("pytest_lsp", reason="pytest-lsp is in the [test] extra")

from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402

from instraug_dsl.lang.fmt import format_source  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "templates"
# Diagnostics, hover and formatting each answer in well under a second; this only bounds a hang.
pytestmark = pytest.mark.timeout(60)

BROKEN = """\
metaprompt direct {
  description "Ask for a paraphrase."
  user "Rewrite {{ instruction }} {{ n }} times"
}

plan p {
  use drect
}
"""

TASKS = """\
type regions = bbox[] sep "||||"

task vqa {
  slot question: text from meta.q[0]
  slot region: regions
  slot options: choices? default "none"
  instruction i0 = "Answer {question} about {region}." pin " {options}"
}
"""


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "instraug_dsl", "lsp"])
)
async def client(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=tmp_path.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=tmp_path.as_uri(), name="work")],
        )
    )
    yield
    await lsp_client.shutdown_session()


def _send_open(client: LanguageClient, uri: str, text: str) -> None:
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="iat", version=1, text=text)
        )
    )


async def _open(client: LanguageClient, path: Path, text: str | None = None) -> str:
    """Open a document (the file's text unless ``text`` is given) and wait for its
    diagnostics; returns its URI."""
    uri = path.as_uri()
    _send_open(client, uri, path.read_text(encoding="utf-8") if text is None else text)
    await _published(client, uri)
    return uri


async def _change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    """Replace a document's text (a whole-document change) without waiting."""
    client.diagnostics.pop(uri, None)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def _published(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    """Wait until diagnostics of ``uri`` arrive (the caller removed the old ones from
    ``client.diagnostics`` before triggering them)."""
    for _ in range(2000):
        if uri in client.diagnostics:
            return list(client.diagnostics[uri])
        await asyncio.sleep(0.01)
    raise AssertionError(f"no diagnostics published for {uri}")


def _at(text: str, needle: str, delta: int = 0) -> types.Position:
    """The position of ``needle`` (plus ``delta`` characters) in an ASCII ``text``."""
    offset = text.index(needle) + delta
    line = text.count("\n", 0, offset)
    return types.Position(line=line, character=offset - (text.rfind("\n", 0, offset) + 1))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _iatc_check_json(path: Path) -> list[dict[str, object]]:
    proc = subprocess.run(
        [sys.executable, "-m", "instraug_dsl", "check", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found: list[dict[str, object]] = json.loads(proc.stdout)
    return found


# ------------------------------------------------------------------ diagnostics


@pytest.mark.asyncio
async def test_diagnostics_match_iatc_check_and_clear_when_fixed(
    client: LanguageClient, tmp_path: Path
) -> None:
    """GIVEN a document with an unknown meta-prompt WHEN it is opened THEN the server
    publishes E013 at the name with the hint, as `iatc check` reports it; WHEN didChange
    fixes it THEN the diagnostics are cleared."""
    path = _write(tmp_path / "broken.iat", BROKEN)
    uri = path.as_uri()
    _send_open(client, uri, BROKEN)
    (diag,) = await _published(client, uri)
    assert diag.code == "E013"
    assert diag.severity == types.DiagnosticSeverity.Error
    assert diag.source == "iatc"
    start = _at(BROKEN, "drect")
    assert diag.range == types.Range(
        start=start, end=types.Position(line=start.line, character=start.character + 5)
    )
    (expected,) = _iatc_check_json(path)
    span = expected["span"]
    assert isinstance(span, dict)
    assert (diag.range.start.line + 1, diag.range.start.character + 1) == (
        span["line"],
        span["col"],
    )
    assert diag.message == f"{expected['message']}\nhint: {expected['hint']}"
    assert "did you mean `direct`?" in diag.message

    await _change(client, uri, 2, BROKEN.replace("drect", "direct"))
    assert await _published(client, uri) == []


@pytest.mark.asyncio
async def test_syntax_errors_warnings_and_related_places(
    client: LanguageClient, tmp_path: Path
) -> None:
    """A syntax error is E001 where the parser stopped (an incremental change makes it);
    a warning has warning severity; a duplicate points at the first declaration."""
    text = 'task t {\n  slot q: text\n  slot unused: text\n  instruction i0 = "Q: {q}"\n}\n'
    uri = await _open(client, tmp_path / "t.iat", text)
    assert client.diagnostics[uri][0].code == "W021"
    assert client.diagnostics[uri][0].severity == types.DiagnosticSeverity.Warning

    # Delete the `:` of `slot q: text` with an incremental edit.
    colon = _at(text, ": text")
    client.diagnostics.pop(uri)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=colon,
                        end=types.Position(line=colon.line, character=colon.character + 1),
                    ),
                    text="",
                )
            ],
        )
    )
    (syntax,) = await _published(client, uri)
    assert syntax.code == "E001"
    assert syntax.range.start.line == 1

    twice = "type a = text\ntype a = bbox\n"
    dup_uri = await _open(client, tmp_path / "dup.iat", twice)
    (dup,) = client.diagnostics[dup_uri]
    assert dup.code == "E010" and dup.range.start.line == 1
    assert dup.related_information is not None
    (related,) = dup.related_information
    assert related.location.uri == dup_uri
    assert related.location.range.start == types.Position(line=0, character=5)


@pytest.mark.asyncio
async def test_imports_are_checked_with_unsaved_text_of_open_documents(
    client: LanguageClient, tmp_path: Path
) -> None:
    """GIVEN b.iat on disk without `m` WHEN b.iat is open with unsaved text declaring it
    THEN a.iat, which imports b and uses m, is clean; editing b re-checks a."""
    _write(tmp_path / "b.iat", "# empty on disk\n")
    a_text = 'import "b.iat"\n\nplan p {\n  use m\n}\n'
    a_path = _write(tmp_path / "a.iat", a_text)
    a_uri = await _open(client, a_path)
    assert [d.code for d in client.diagnostics[a_uri]] == ["E013"]

    b_uri = (tmp_path / "b.iat").as_uri()
    b_text = 'metaprompt m {\n  user "Rewrite: {{ instruction }}"\n}\n'
    client.diagnostics.pop(a_uri)
    _send_open(client, b_uri, b_text)
    assert await _published(client, b_uri) == []
    assert await _published(client, a_uri) == []  # a re-checked with b's unsaved text

    client.diagnostics.pop(a_uri)
    await _change(client, b_uri, 2, b_text.replace("metaprompt m", "metaprompt m2"))
    assert [d.code for d in await _published(client, a_uri)] == ["E013"]


# ------------------------------------------------------------------------ hover


def _hover_text(hover: types.Hover | None) -> str:
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    return hover.contents.value


@pytest.mark.asyncio
async def test_hover_on_a_slot_shows_its_resolved_type(
    client: LanguageClient, tmp_path: Path
) -> None:
    """Hover on `{region}` in an instruction and on a slot's name: the type with its alias
    followed, the separator, the record path, optional and default."""
    uri = await _open(client, tmp_path / "tasks.iat", TASKS)

    async def hover_at(position: types.Position) -> str:
        return _hover_text(
            await client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri=uri), position=position
                )
            )
        )

    region = await hover_at(_at(TASKS, "{region}", 2))
    assert "slot `region`" in region and "`bbox[]`" in region
    assert "type alias `regions`" in region and '`"||||"`' in region
    question = await hover_at(_at(TASKS, "question: text", 1))
    assert "`text`" in question and "`meta.q[0]` (record field)" in question
    options = await hover_at(_at(TASKS, "{options}", 1))
    assert "optional: yes" in options and '`"none"`' in options and "prefix" in options


@pytest.mark.asyncio
async def test_hover_on_plan_metaprompt_and_diagnostic(
    client: LanguageClient, tmp_path: Path
) -> None:
    """A plan shows its resolved settings (inherited + defaults), a meta-prompt its
    description, a diagnostic its code and title."""
    text = BROKEN + "\nplan q extends p {\n  temperature 0.5..0.7 step 0.1\n}\n"
    uri = await _open(client, tmp_path / "plans.iat", text)
    ident = types.TextDocumentIdentifier(uri=uri)

    on_error = _hover_text(
        await client.text_document_hover_async(
            types.HoverParams(text_document=ident, position=_at(text, "drect", 1))
        )
    )
    assert "E013" in on_error and "unknown reference" in on_error

    fixed = text.replace("drect", "direct")
    await _change(client, uri, 2, fixed)
    assert await _published(client, uri) == []
    plan = _hover_text(
        await client.text_document_hover_async(
            types.HoverParams(text_document=ident, position=_at(fixed, "plan q", 5))
        )
    )
    assert "plan `q`" in plan and "extends `p`" in plan
    assert "`direct` × 1" in plan and "temperature: 0.5, 0.6, 0.7" in plan
    assert "max_tokens: 512" in plan  # a default
    prompt = _hover_text(
        await client.text_document_hover_async(
            types.HoverParams(text_document=ident, position=_at(fixed, "use direct", 5))
        )
    )
    assert "metaprompt `direct`" in prompt and "Ask for a paraphrase." in prompt


# ------------------------------------------------------------------- definition


@pytest.mark.asyncio
async def test_definition_of_a_metaprompt_an_import_and_a_slot(
    client: LanguageClient, tmp_path: Path
) -> None:
    """`use m` goes to m in the imported file; the import string goes to the file;
    `{q}` goes to the slot; `extends p` goes to plan p."""
    b_text = '# prompts\nmetaprompt m {\n  user "Rewrite: {{ instruction }}"\n}\n'
    b_path = _write(tmp_path / "b.iat", b_text)
    a_text = (
        'import "b.iat"\n\nplan p {\n  use m\n}\n\nplan p2 extends p {\n  seed 2\n}\n\n'
        'task t {\n  slot q: text\n  instruction i0 = "Q: {q}"\n}\n'
    )
    a_uri = await _open(client, _write(tmp_path / "a.iat", a_text))

    async def definition(position: types.Position) -> list[types.Location]:
        found = await client.text_document_definition_async(
            types.DefinitionParams(
                text_document=types.TextDocumentIdentifier(uri=a_uri), position=position
            )
        )
        assert isinstance(found, list)
        return [loc for loc in found if isinstance(loc, types.Location)]

    (use,) = await definition(_at(a_text, "use m", 4))
    assert use.uri == b_path.as_uri()
    assert use.range.start == _at(b_text, "m {")
    (imported,) = await definition(_at(a_text, '"b.iat"', 2))
    assert imported.uri == b_path.as_uri() and imported.range.start.line == 0
    (slot,) = await definition(_at(a_text, "{q}", 1))
    assert slot.uri == a_uri and slot.range.start == _at(a_text, "q: text")
    (base,) = await definition(_at(a_text, "extends p", 8))
    assert base.uri == a_uri and base.range.start == _at(a_text, "p {")


@pytest.mark.asyncio
async def test_a_multiinstruct_file_is_clean_and_navigable(client: LanguageClient) -> None:
    """A shipped library file: no diagnostics; `@common/...` and `use direct` lead into
    templates/common; a slot's alias type leads to _types.iat and hovers resolved."""
    plans = TEMPLATES / "multiinstruct" / "plans.iat"
    text = plans.read_text(encoding="utf-8")
    uri = await _open(client, plans)
    assert not client.diagnostics[uri]
    ident = types.TextDocumentIdentifier(uri=uri)
    found = await client.text_document_definition_async(
        types.DefinitionParams(text_document=ident, position=_at(text, "@common/metaprompts", 3))
    )
    assert isinstance(found, list) and len(found) == 1
    assert isinstance(found[0], types.Location)
    assert found[0].uri == (TEMPLATES / "common" / "metaprompts.iat").resolve().as_uri()
    found = await client.text_document_definition_async(
        types.DefinitionParams(text_document=ident, position=_at(text, "use direct", 5))
    )
    assert isinstance(found, list) and isinstance(found[0], types.Location)
    assert found[0].uri.endswith("/templates/common/metaprompts.iat")

    gc = TEMPLATES / "multiinstruct" / "GC.iat"
    gc_text = gc.read_text(encoding="utf-8")
    gc_uri = await _open(client, gc)
    assert not client.diagnostics[gc_uri]
    hover = _hover_text(
        await client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=gc_uri),
                position=_at(gc_text, "{region}", 1),
            )
        )
    )
    assert "`bbox[]`" in hover and '`"||||"`' in hover
    found = await client.text_document_definition_async(
        types.DefinitionParams(
            text_document=types.TextDocumentIdentifier(uri=gc_uri),
            position=_at(gc_text, "region: regions", 9),
        )
    )
    assert isinstance(found, list) and isinstance(found[0], types.Location)
    assert found[0].uri.endswith("/templates/multiinstruct/_types.iat")


# ------------------------------------------------------------------- completion


async def _labels(client: LanguageClient, uri: str, position: types.Position) -> list[str]:
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=position
        )
    )
    items = result.items if isinstance(result, types.CompletionList) else result or []
    return [item.label for item in items]


@pytest.mark.asyncio
async def test_completion_of_slots_names_and_keywords(
    client: LanguageClient, tmp_path: Path
) -> None:
    """Inside `{` of an instruction: the task's slots; after `use`: meta-prompts (imported
    ones too); after `:`: types; at the start of a plan member: the plan keywords."""
    _write(tmp_path / "b.iat", 'metaprompt imported {\n  user "{{ instruction }}"\n}\n')
    text = (
        'import "b.iat"\n'
        "type regions = bbox[]\n"
        'task t {\n  slot q: text\n  slot r: regions\n  instruction i0 = "Q: {'
    )
    uri = await _open(client, _write(tmp_path / "c.iat", text))
    end = _at(text, '"Q: {', 5)
    assert await _labels(client, uri, end) == ["q", "r"]

    typing = text.replace('instruction i0 = "Q: {', "slot s: ")
    await _change(client, uri, 2, typing)
    await _published(client, uri)
    types_offered = await _labels(client, uri, _at(typing, "slot s: ", 8))
    assert {"text", "bbox", "choices", "const", "regions"} <= set(types_offered)

    plan = "plan p {\n  use \n}\n"
    plan_uri = await _open(client, _write(tmp_path / "p.iat", 'import "b.iat"\n' + plan))
    full = 'import "b.iat"\n' + plan
    assert "imported" in await _labels(client, plan_uri, _at(full, "use ", 4))
    keywords = await _labels(client, plan_uri, _at(full, "  use", 2))
    assert {"use", "temperature", "filter", "model"} <= set(keywords)
    assert "task" not in keywords


# ------------------------------------------------------------------- formatting


@pytest.mark.asyncio
async def test_formatting_is_iatc_fmt(client: LanguageClient, tmp_path: Path) -> None:
    """An unformatted document gets one whole-document edit with `iatc fmt`'s text; a
    formatted one and one with syntax errors get none."""
    messy = 'task t{slot q:text   instruction i0="Q: {q}"  # keep me\n}'
    uri = await _open(client, tmp_path / "messy.iat", messy)
    options = types.FormattingOptions(tab_size=2, insert_spaces=True)
    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=types.TextDocumentIdentifier(uri=uri), options=options
        )
    )
    assert edits is not None and len(edits) == 1
    (edit,) = edits
    assert edit.new_text == format_source(messy)
    assert edit.range.start == types.Position(line=0, character=0)
    assert edit.range.end == types.Position(line=1, character=1)

    tidy_uri = await _open(client, tmp_path / "tidy.iat", format_source(messy))
    assert not await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=types.TextDocumentIdentifier(uri=tidy_uri), options=options
        )
    )
    broken_uri = await _open(client, tmp_path / "broken.iat", "task t { slot q }")
    assert not await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=types.TextDocumentIdentifier(uri=broken_uri), options=options
        )
    )


# ------------------------------------------------------- in-process unit checks


def test_positions_count_utf16_code_units() -> None:
    """Spans count characters; LSP positions count UTF-16 units (an emoji is two)."""
    from instraug_dsl.lang.source import SourceFile
    from instraug_dsl.lsp.positions import Positions

    text = 'task t { notes "😀 é" slot q: text }\nx'
    source = SourceFile("t.iat", text)
    after = text.index(" slot")
    span = source.span(after, after + 5)
    utf16, utf32 = Positions("utf-16"), Positions("utf-32")
    assert utf16.range(source, span).start.character == after + 1  # the emoji takes two
    assert utf32.range(source, span).start.character == after
    assert utf16.offset(text, types.Position(line=0, character=after + 1)) == after
    assert utf16.offset(text, types.Position(line=1, character=9)) == len(text)  # clamped
    assert utf16.end(text) == types.Position(line=1, character=1)


def _complete(text_with_cursor: str) -> list[str]:
    from instraug_dsl.lsp import completion

    offset = text_with_cursor.index("|")
    text = text_with_cursor.replace("|", "", 1)
    names = completion.collect_names([])
    items = completion.complete(text, offset, names, lambda _: types.Position(line=0, character=0))
    return [item.label for item in items]


def test_completion_contexts_without_a_server() -> None:
    """Keywords still come after an earlier broken declaration; fixed values, template
    variables and names declared in the (unparsable) text itself are offered."""
    assert "use" in _complete("task { broken\nplan p {\n  |\n}\n")
    assert _complete("plan p { filter { reject answers, |") == [
        "answers",
        "echoes",
        "examples",
        "none",
    ]
    assert "instruction" in _complete('metaprompt m { user "Rewrite {{ |')
    assert _complete("plan base { }\nplan p extends |") == ["base"]
    assert _complete('task t { instruction i = "x # {|') == []  # no slots declared
    assert _complete("# a comment |") == []
