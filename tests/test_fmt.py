"""`iatc fmt`: canonical layout, identity corpus, comments, idempotence, CLI."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from instraug_dsl.commands import exitcodes
from instraug_dsl.errors import IatCheckError
from instraug_dsl.lang.fmt import format_module, format_source
from instraug_dsl.lang.irjson import to_data
from instraug_dsl.lang.parser import parse

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parent.parent


def _snippets() -> list[str]:
    text = (FIXTURES / "identity.iat").read_text(encoding="utf-8")
    return [s.strip("\n") + "\n" for s in re.split(r"^#=====\n", text, flags=re.M)]


SNIPPETS = _snippets()


def _meaning(src: str) -> object:
    module, diags = parse(src)
    assert module is not None and not diags.errors, [str(d) for d in diags]
    return to_data(module, spans=False)


def _comments(src: str) -> Counter[str]:
    module, _ = parse(src)
    assert module is not None
    return Counter(c.text.rstrip() for c in module.comments)


def _assert_sound(src: str) -> str:
    """Format, and check the three invariants every formatting must keep."""
    out = format_source(src)
    assert format_source(out) == out, "not idempotent"
    assert _meaning(out) == _meaning(src), "meaning changed"
    assert _comments(out) == _comments(src), "comments lost or duplicated"
    return out


# ------------------------------------------------------------ identity


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_identity_corpus(snippet: str) -> None:
    """Canonical text formats to itself."""
    assert format_source(snippet) == snippet
    _assert_sound(snippet)


def test_identity_corpus_is_large_enough() -> None:
    """The corpus covers a useful number of constructs."""
    assert len(SNIPPETS) >= 15


# ------------------------------------------------------------- layout

MESSY = """import   "a.iat"
type region=bbox[]sep"||||"   type t2 = text
task   VQA{category "VQA" split train slot q:text from meta_data . question
slot o : choices instruction i0="Q: {q}"pin"{o}" instruction i1 = "a {q}"
"b" pin "{o}"}
metaprompt m{user"Rewrite {{ instruction }}"}plan p extends q{use m samples 2
temperature 0.5 .. 1.0 step 0.1
filter{dedup 0.70}}
"""

MESSY_EXPECTED = """import "a.iat"

type region = bbox[] sep "||||"
type t2 = text

task VQA {
  category "VQA"
  split train
  slot q: text from meta_data.question
  slot o: choices
  instruction i0 = "Q: {q}" pin "{o}"
  instruction i1 = "a {q}"
      "b"
      pin "{o}"
}

metaprompt m {
  user "Rewrite {{ instruction }}"
}

plan p extends q {
  use m samples 2
  temperature 0.5..1.0 step 0.1
  filter {
    dedup 0.70
  }
}
"""


def test_messy_input_is_laid_out_canonically() -> None:
    """GIVEN everything on few lines WHEN formatted THEN one member per line, 2-space indent."""
    assert _assert_sound(MESSY) == MESSY_EXPECTED


def test_blank_lines_are_normalised() -> None:
    """Blank lines between members vanish; items get exactly one."""
    src = '\n\n\ntask a {\n\n\n  instruction i0 = "x"\n\n\n}\n\n\n\n\ntask b {}\n\n\n'
    assert _assert_sound(src) == 'task a {\n  instruction i0 = "x"\n}\n\ntask b {}\n'


def test_strings_keep_style_and_meaningful_escapes() -> None:
    """Triple strings stay triple; `\\{` stays escaped; `\\u` escapes are spelled out."""
    src = (
        'task t { notes "caf\\u00e9\\ttab" instruction i0 = "Use \\{braces\\} here" }\n'
        'metaprompt m { user """a\n"b" {{ instruction }}""" }\n'
    )
    out = _assert_sound(src)
    assert 'notes "café\\ttab"' in out
    assert 'instruction i0 = "Use \\{braces\\} here"' in out
    assert 'user """a\n"b" {{ instruction }}"""' in out


def test_escaped_newline_in_triple_string_stays_escaped() -> None:
    """In a triple string `\\n` and a real line break split placeholders differently."""
    src = 'task t { slot a: text instruction i0 = """{a\\n}""" instruction i1 = """{a\n}""" }'
    out = _assert_sound(src)
    assert '"""{a\\n}"""' in out and '"""{a\n}"""' in out


def test_numbers_keep_their_spelling() -> None:
    """`0.50` is not rewritten as `0.5`: numbers are printed as written."""
    out = _assert_sound("plan p { use m top_p 0.90 temperature 0.50, 1.000 }")
    assert "top_p 0.90" in out and "temperature 0.50, 1.000" in out


def test_field_paths_quote_only_odd_keys() -> None:
    """A quoted key that is a plain name is written with a dot."""
    out = _assert_sound('task t { slot s: text from a["b"]["c d"][-1] instruction i0 = "{s}" }')
    assert 'from a.b["c d"][-1]' in out


def test_format_module_without_source_text() -> None:
    """A module without comments needs no source text (e.g. built in code)."""
    module, _ = parse('task t{instruction i0="x"} # gone')
    assert module is not None
    bare = dataclasses.replace(module, comments=())
    assert format_module(bare, "") == 'task t {\n  instruction i0 = "x"\n}\n'


def test_empty_file() -> None:
    """An empty file stays empty; whitespace only becomes empty."""
    assert format_source("") == ""
    assert format_source("  \n\n") == ""


# ------------------------------------------------------------ comments


def test_comment_on_own_line_goes_before_next_member() -> None:
    """A comment line is kept above the member it precedes, at its indentation."""
    src = 'task t {\ncategory "x"\n        # about i0\n    instruction i0 = "x"\n}\n'
    out = _assert_sound(src)
    assert '  category "x"\n  # about i0\n  instruction i0 = "x"\n' in out


def test_trailing_comment_stays_on_its_member_line() -> None:
    """`member  # why` keeps the comment at the end of that member's line."""
    src = 'task t { category "x" # why\n instruction i0 = "x"   #  because\n}'
    out = _assert_sound(src)
    assert '  category "x"  # why\n' in out
    assert '  instruction i0 = "x"  #  because\n' in out


def test_trailing_comment_on_the_member_that_ends_the_line() -> None:
    """With two members on one line, the comment belongs to the second."""
    out = _assert_sound('task t { category "x" split train # the split\n instruction i0 = "x" }')
    assert '  category "x"\n  split train  # the split\n' in out


def test_header_and_closing_comments() -> None:
    """Comments on the `{` line, before `}` and after `}` keep their place."""
    src = 'task t { # header\n instruction i0 = "x"\n # last words\n} # after\n# eof\n'
    out = _assert_sound(src)
    assert out == (
        'task t {  # header\n  instruction i0 = "x"\n  # last words\n}  # after\n# eof\n'
    )


def test_comment_banner_keeps_its_blank_line() -> None:
    """A comment followed by a blank line stays a separate paragraph."""
    src = '# Licence header\n\n# About t\ntask t { instruction i0 = "x" }\n'
    assert _assert_sound(src) == (
        '# Licence header\n\n# About t\ntask t {\n  instruction i0 = "x"\n}\n'
    )


def test_comment_inside_a_one_line_construct_moves_above_it() -> None:
    """A comment splitting a slot declaration cannot stay inside one line."""
    src = 'task t {\n  slot q:  # the question\n    text\n  instruction i0 = "{q}"\n}\n'
    out = _assert_sound(src)
    assert "  # the question\n  slot q: text\n" in out


def test_comment_between_header_and_brace_moves_above_block() -> None:
    """`plan p # x` followed by `{` on the next line: the comment goes above."""
    out = _assert_sound("plan p # note\n{ use m }\n")
    assert out == "# note\nplan p {\n  use m\n}\n"


def test_comments_in_a_multiline_instruction() -> None:
    """Each string of a multi-line instruction keeps its own comments."""
    src = (
        'task t { slot q: text instruction i0 = # lead\n pin "{q}" # pinned\n'
        ' # second\n "a" "b" # last\n}'
    )
    out = _assert_sound(src)
    assert out == (
        "task t {\n  slot q: text\n  # lead\n"
        '  instruction i0 = pin "{q}"  # pinned\n'
        '      # second\n      "a"\n      "b"  # last\n}\n'
    )


def test_comments_in_empty_blocks_and_filters() -> None:
    """An empty block with a comment opens up; nested blocks keep comments too."""
    src = "task t { # nothing yet\n}\nplan p { use m filter { # f\n dedup 0.5 # d\n # end f\n } }"
    out = _assert_sound(src)
    assert "task t {  # nothing yet\n}\n" in out
    assert "  filter {  # f\n    dedup 0.5  # d\n    # end f\n  }\n" in out


def test_hash_inside_strings_is_not_a_comment() -> None:
    """`#` inside a string literal is text, and stays so."""
    out = _assert_sound('task t { notes "# not a comment" instruction i0 = """#x\n#y""" }')
    assert 'notes "# not a comment"' in out


def test_crlf_comments_are_trimmed() -> None:
    """Comments lose the `\\r` of CRLF files (the output uses `\\n`)."""
    out = _assert_sound('task t { # c\r\n instruction i0 = "x"\r\n}\r\n')
    assert "\r" not in out


# -------------------------------------------------------------- errors


def test_syntax_errors_raise_with_diagnostics() -> None:
    """A file that does not parse is never formatted."""
    with pytest.raises(IatCheckError) as info:
        format_source("task t { slot q }", "x.iat")
    assert info.value.diagnostics[0].code == "E001"
    assert "x.iat:1:17" in info.value.render()


def test_invalid_escape_is_an_error() -> None:
    """Formatting would silently change `\\q`, so it refuses."""
    with pytest.raises(IatCheckError) as info:
        format_source('task t { notes "\\q" }')
    assert [d.code for d in info.value.diagnostics] == ["E003"]


# ----------------------------------------------------------------- CLI


def _iatc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys, atexit\n"
        "heavy = ('jinja2', 'litellm', 'pyarrow', 'llama_cpp')\n"
        "atexit.register(lambda: print('HEAVY:', sorted({m.split('.')[0] for m in sys.modules"
        " if m.split('.')[0] in heavy}), file=sys.stderr))\n"
        "from instraug_dsl.commands.main import main\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_fmt_rewrites_and_checks(tmp_path: Path) -> None:
    """`iatc fmt` rewrites in place; `--check` lists changes and exits 1; no heavy imports."""
    messy = tmp_path / "messy.iat"
    messy.write_text(MESSY, encoding="utf-8")
    clean = tmp_path / "sub" / "clean.iat"
    clean.parent.mkdir()
    clean.write_text(MESSY_EXPECTED, encoding="utf-8")

    proc = _iatc("fmt", "--check", ".", cwd=tmp_path)
    assert proc.returncode == exitcodes.DIAGNOSTICS
    assert proc.stdout.split() == ["messy.iat"]
    assert messy.read_text(encoding="utf-8") == MESSY
    assert "HEAVY: []" in proc.stderr

    proc = _iatc("fmt", ".", cwd=tmp_path)
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert messy.read_text(encoding="utf-8") == MESSY_EXPECTED
    assert "reformatted 1 of 2 files" in proc.stderr

    proc = _iatc("fmt", "--check", str(messy), str(clean), cwd=tmp_path)
    assert proc.returncode == exitcodes.OK and proc.stdout == ""


def test_cli_fmt_crlf_file_changes(tmp_path: Path) -> None:
    """A CRLF file is rewritten with LF line breaks."""
    path = tmp_path / "crlf.iat"
    path.write_bytes(MESSY_EXPECTED.replace("\n", "\r\n").encode("utf-8"))
    assert _iatc("fmt", "--check", str(path), cwd=tmp_path).returncode == exitcodes.DIAGNOSTICS
    assert _iatc("fmt", str(path), cwd=tmp_path).returncode == exitcodes.OK
    assert path.read_bytes() == MESSY_EXPECTED.encode("utf-8")


def test_cli_fmt_syntax_error_and_missing_path(tmp_path: Path) -> None:
    """Syntax errors print diagnostics and exit 1 (file untouched); a missing path exits 2."""
    bad = tmp_path / "bad.iat"
    bad.write_text("task t { slot q }\n", encoding="utf-8")
    good = tmp_path / "good.iat"
    good.write_text('task t{instruction i0="x"}', encoding="utf-8")
    proc = _iatc("fmt", "bad.iat", "good.iat", cwd=tmp_path)
    assert proc.returncode == exitcodes.DIAGNOSTICS
    assert "bad.iat:1:17: error[E001]" in proc.stderr and "^" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert bad.read_text(encoding="utf-8") == "task t { slot q }\n"
    assert good.read_text(encoding="utf-8").startswith("task t {\n")

    proc = _iatc("fmt", "nope.iat", cwd=tmp_path)
    assert proc.returncode == exitcodes.USAGE
    assert "no such file or directory" in proc.stderr


def test_repository_templates_are_formatted() -> None:
    """The shipped templates pass `iatc fmt --check` (they are canonical)."""
    files = sorted((ROOT / "templates").rglob("*.iat"))
    if not files:
        pytest.skip("no templates yet")
    texts = {f: f.read_text(encoding="utf-8") for f in files}
    changed = [str(f) for f, text in texts.items() if format_source(text) != text]
    assert changed == []


def test_keyword_like_name_after_a_string() -> None:
    """GIVEN a strategy named like a keyword right after a string THEN it parses and formats."""
    from instraug_dsl.lang.fmt import format_source
    from instraug_dsl.lang.frontend import check_text

    src = 'strategies s {\n  a: "x"\n  task: "y"\n}\n'
    assert check_text(src).ok
    assert format_source(src, "k.iat") == src
