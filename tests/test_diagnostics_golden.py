"""Golden tests: every diagnostic code, rendered exactly, with its span.

Each case is ``tests/golden/diagnostics/<CODE>_<what>.iat`` (helper files
for imports live in a folder of the same name) next to ``<same>.expected``,
the exact text of ``api.check([case]).render()`` for the whole case.  The
first line of a case says which diagnostic it is about and where it points::

    # expect: E020 at 5:29-5:39                 (in the case file)
    # expect: E061 at 2:8-2:34 in E061_x/a.iat  (in a helper file)

Run ``pytest tests/test_diagnostics_golden.py --update-golden`` after a
deliberate change of wording, and review the diff of the .expected files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from instraug_dsl import CODES, check
from instraug_dsl.lang.diagnostics import Diagnostic

GOLDEN = Path(__file__).parent / "golden" / "diagnostics"
CASES = sorted(GOLDEN.glob("*.iat"))
_EXPECT = re.compile(
    r"# expect: (?P<code>[EW]\d{3}) at (?P<line>\d+):(?P<col>\d+)-(?P<eline>\d+):(?P<ecol>\d+)"
    r"(?: in (?P<path>\S+))?$"
)


def _expectation(case: Path) -> tuple[str, tuple[int, int, int, int], str]:
    first = case.read_text(encoding="utf-8").split("\n", 1)[0]
    match = _EXPECT.match(first)
    assert match, f"{case.name}: first line must be `# expect: CODE at L:C-L:C [in PATH]`"
    where = tuple(int(match[k]) for k in ("line", "col", "eline", "ecol"))
    return match["code"], where, match["path"] or case.name  # type: ignore[return-value]


def _where(d: Diagnostic) -> tuple[int, int, int, int]:
    s = d.span
    return (s.line, s.col, s.end_line, s.end_col)


@pytest.fixture
def in_golden_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Paths in diagnostics are relative to the working directory."""
    monkeypatch.chdir(GOLDEN)
    return GOLDEN


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden_diagnostics(case: Path, in_golden_dir: Path, update_golden: bool) -> None:
    """GIVEN a case file WHEN it is checked THEN the rendered diagnostics match exactly
    and the code under test points at the declared span."""
    code, where, path = _expectation(case)
    assert case.stem.split("_", 1)[0] == code, "the file name starts with the code under test"
    result = check([case.name])
    rendered = result.render() + "\n"
    expected_file = case.with_suffix(".expected")
    if update_golden:
        expected_file.write_text(rendered, encoding="utf-8")
    assert expected_file.exists(), f"missing {expected_file.name}; run with --update-golden"
    assert rendered == expected_file.read_text(encoding="utf-8")
    hits = [(d.span.path, _where(d)) for d in result.diagnostics if d.code == code]
    assert (path, where) in hits, f"{code} expected at {path} {where}, got {hits}"


def test_every_code_has_a_golden_case() -> None:
    """Every registered code is exercised by at least one golden case."""
    covered = {c.stem.split("_", 1)[0] for c in CASES}
    assert sorted(set(CODES) - covered) == []
    assert sorted(covered - set(CODES)) == [], "cases for unregistered codes"


def test_no_orphan_expected_files() -> None:
    """Every .expected file belongs to a case (renamed cases leave none behind)."""
    orphans = [e.name for e in GOLDEN.glob("*.expected") if not e.with_suffix(".iat").exists()]
    assert orphans == []


def test_check_format_json(in_golden_dir: Path) -> None:
    """`iatc check --format json` prints the structured diagnostics and exits 1."""
    from instraug_dsl.commands.app import app
    from instraug_dsl.commands.app import register_commands as _register_commands

    _register_commands()
    result = CliRunner().invoke(app, ["check", "--format", "json", "E020_undeclared_slot.iat"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data == [
        {
            "code": "E020",
            "severity": "error",
            "message": "undeclared slot `questoin` in task `t`",
            "hint": "did you mean `question`?",
            "span": {
                "path": "E020_undeclared_slot.iat",
                "start": data[0]["span"]["start"],
                "end": data[0]["span"]["start"] + len("{questoin}"),
                "line": 5,
                "col": 29,
                "end_line": 5,
                "end_col": 39,
            },
        }
    ]
    text = (GOLDEN / "E020_undeclared_slot.iat").read_text(encoding="utf-8")
    assert text[data[0]["span"]["start"] :].startswith("{questoin}")


def test_colour_is_only_added_when_asked() -> None:
    """GIVEN colour switched on THEN the text is the same once ANSI codes are stripped."""
    import re

    from instraug_dsl.lang.diagnostics import render, set_color
    from instraug_dsl.lang.frontend import check_text

    result = check_text('task t { slot q: txt  instruction i0 = "{q}" }', "c.iat")
    diag = result.diagnostics[0]
    plain = render(diag, result.sources["c.iat"].text)
    set_color(True)
    try:
        coloured = render(diag, result.sources["c.iat"].text)
    finally:
        set_color(False)
    assert "\x1b[" in coloured and "\x1b[" not in plain
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
