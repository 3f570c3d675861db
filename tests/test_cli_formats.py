"""`iatc check` programs and output formats (SARIF, GitHub); `iatc fmt --diff` and `-`."""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from instraug_dsl.commands import exitcodes
from instraug_dsl.commands.fmt import unified_diff
from instraug_dsl.commands.main import _fast_check
from instraug_dsl.lang.diagnostics import CODES, Diagnostic
from instraug_dsl.lang.report_formats import (
    escape_data,
    escape_property,
    github_command,
    to_sarif,
)
from instraug_dsl.lang.source import SourceFile

ROOT = Path(__file__).resolve().parents[1]

MESSY = 'task t{instruction i0="x"}'
CLEAN = 'task t {\n  instruction i0 = "x"\n}\n'
# Line 2 holds a duplicate task (E010) whose hint names line 1; slot `q` is unused (W021).
DUPLICATE = (
    'task a { instruction i0 = "x" }\n'
    'task a { instruction i0 = "y" }\n'
    'task w { slot q: text  instruction i0 = "z" }\n'
)


def _iatc(
    *args: str, cwd: Path = ROOT, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "instraug_dsl", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


# ------------------------------------------------------------ programs


def test_independent_programs_are_checked_in_one_call() -> None:
    """GIVEN the libraries and the quickstart (both declare task ITM) WHEN checked in one call
    THEN each is its own program: no E010, one summary, exit 0."""
    proc = _iatc("check", "templates", "examples/quickstart")
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert "E010" not in proc.stdout + proc.stderr
    assert proc.stdout.count("checked ") == 1
    assert " 0 errors" in proc.stdout


def test_together_is_the_old_single_program() -> None:
    """`--together` puts every path in one namespace, so the shared task names clash."""
    proc = _iatc("check", "--together", "templates", "examples/quickstart")
    assert proc.returncode == exitcodes.DIAGNOSTICS
    assert "error[E010]: task `ITM` is declared twice" in proc.stderr


def test_duplicate_inside_one_program_is_still_reported(tmp_path: Path) -> None:
    """Two files of one directory share a namespace: a task declared in both is E010."""
    prog = tmp_path / "prog"
    prog.mkdir()
    (prog / "a.iat").write_text('task t { instruction i0 = "x" }\n', encoding="utf-8")
    (prog / "b.iat").write_text('task t { instruction i0 = "y" }\n', encoding="utf-8")
    other = tmp_path / "other.iat"
    other.write_text('task t { instruction i0 = "z" }\n', encoding="utf-8")
    proc = _iatc("check", "prog", "other.iat", cwd=tmp_path)
    assert proc.returncode == exitcodes.DIAGNOSTICS
    assert proc.stderr.count("error[E010]") == 1
    assert "prog/b.iat:1:6: error[E010]: task `t` is declared twice" in proc.stderr
    assert "checked 3 files: 1 error, 0 warnings" in proc.stderr


def test_a_file_in_several_programs_reports_once(tmp_path: Path) -> None:
    """A file checked by two programs (its folder and itself) counts and reports once."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.iat").write_text(DUPLICATE, encoding="utf-8")
    proc = _iatc("check", "d", "d/x.iat", "d/x.iat", cwd=tmp_path)
    assert proc.returncode == exitcodes.DIAGNOSTICS
    assert proc.stderr.count("error[E010]") == 1 and proc.stderr.count("warning[W021]") == 1
    assert "checked 1 file: 1 error, 1 warning" in proc.stderr


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    proc = _iatc("check", "nope", cwd=tmp_path)
    assert proc.returncode == exitcodes.USAGE
    assert "no such file or directory: nope" in proc.stderr


@pytest.mark.parametrize(
    "options",
    [["--format", "sarif"], ["--format=github"], ["--together"]],
)
def test_fast_path_knows_the_new_options(options: list[str], tmp_path: Path) -> None:
    """The fast path runs sarif, github and --together itself instead of handing them to
    typer (here on a missing path, which it reports with exit 2)."""
    assert _fast_check(["check", *options, str(tmp_path / "missing")]) == exitcodes.USAGE


def test_check_with_new_formats_stays_light(tmp_path: Path) -> None:
    """`check --format sarif|github` imports neither pydantic nor litellm."""
    (tmp_path / "x.iat").write_text(CLEAN, encoding="utf-8")
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print('MODULES', ' '.join(sorted({m.split('.')[0]"
        " for m in sys.modules})), file=sys.stderr))\n"
        "from instraug_dsl.commands.main import main\nmain()\n"
    )
    for fmt in ("sarif", "github"):
        proc = subprocess.run(
            [sys.executable, "-c", code, "check", "--format", fmt, "x.iat"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == exitcodes.OK, proc.stderr
        modules = proc.stderr.rsplit("MODULES", 1)[1].split()
        assert "pydantic" not in modules and "litellm" not in modules


# --------------------------------------------------------------- SARIF

#: The parts of the SARIF 2.1.0 schema (OASIS, sarif-schema-2.1.0.json) that iatc's output
#: uses, with their required properties and types; the full schema is not shipped offline.
SARIF_SUBSET: dict[str, Any] = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string"},
        "version": {"const": "2.1.0"},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "version": {"type": "string"},
                                    "rules": {
                                        "type": "array",
                                        "uniqueItems": True,
                                        "items": {
                                            "type": "object",
                                            "required": ["id"],
                                            "properties": {
                                                "id": {"type": "string"},
                                                "shortDescription": {"$ref": "#/$defs/message"},
                                                "defaultConfiguration": {
                                                    "type": "object",
                                                    "properties": {
                                                        "level": {"$ref": "#/$defs/level"}
                                                    },
                                                },
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                    "originalUriBaseIds": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {"uri": {"type": "string", "format": "uri-reference"}},
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["message"],
                            "properties": {
                                "ruleId": {"type": "string"},
                                "ruleIndex": {"type": "integer", "minimum": -1},
                                "level": {"$ref": "#/$defs/level"},
                                "message": {"$ref": "#/$defs/message"},
                                "locations": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "properties": {
                                                    "artifactLocation": {
                                                        "type": "object",
                                                        "properties": {
                                                            "uri": {"type": "string"},
                                                            "uriBaseId": {"type": "string"},
                                                        },
                                                    },
                                                    "region": {
                                                        "type": "object",
                                                        "properties": {
                                                            k: {"type": "integer", "minimum": 1}
                                                            for k in (
                                                                "startLine",
                                                                "startColumn",
                                                                "endLine",
                                                                "endColumn",
                                                            )
                                                        },
                                                    },
                                                },
                                            }
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "$defs": {
        "level": {"enum": ["none", "note", "warning", "error"]},
        "message": {
            "type": "object",
            "anyOf": [{"required": ["text"]}, {"required": ["id"]}],
            "properties": {"text": {"type": "string"}},
        },
    },
}


def _sarif_for(tmp_path: Path) -> dict[str, Any]:
    sub = tmp_path / "sub dir"
    sub.mkdir()
    (sub / "x.iat").write_text(DUPLICATE, encoding="utf-8")
    proc = _iatc("check", "--format", "sarif", "sub dir", cwd=tmp_path)
    assert proc.returncode == exitcodes.DIAGNOSTICS, proc.stderr
    log: dict[str, Any] = json.loads(proc.stdout)
    return log


def test_sarif_log_structure(tmp_path: Path) -> None:
    """GIVEN an error and a warning WHEN printed as SARIF THEN a valid 2.1.0 log with a rule per
    code, 1-based regions, the hint in the message and a URI relative to the working dir."""
    log = _sarif_for(tmp_path)
    if importlib.util.find_spec("jsonschema") is not None:  # in the test extra (nbformat)
        importlib.import_module("jsonschema").validate(log, SARIF_SUBSET)
    assert log["version"] == "2.1.0" and "sarif-schema-2.1.0" in log["$schema"]
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "iatc" and driver["version"]
    assert [r["id"] for r in driver["rules"]] == sorted(CODES)
    rules = {r["id"]: r for r in driver["rules"]}
    assert rules["E010"]["shortDescription"]["text"] == CODES["E010"]
    assert rules["W021"]["defaultConfiguration"]["level"] == "warning"
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"

    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert set(by_rule) == {"E010", "W021"}
    error = by_rule["E010"]
    assert error["level"] == "error"
    assert driver["rules"][error["ruleIndex"]]["id"] == "E010"
    assert error["message"]["text"] == (
        "task `a` is declared twice\nhint: first declared at sub dir/x.iat:1:6"
    )
    (loc,) = error["locations"]
    physical = loc["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "sub%20dir/x.iat", "uriBaseId": "%SRCROOT%"}
    # `a` of `task a` on line 2: column 6, and endColumn is the column after it.
    assert physical["region"] == {"startLine": 2, "startColumn": 6, "endLine": 2, "endColumn": 7}
    assert by_rule["W021"]["level"] == "warning"


def test_sarif_clean_run_has_no_results(tmp_path: Path) -> None:
    (tmp_path / "x.iat").write_text(CLEAN, encoding="utf-8")
    proc = _iatc("check", "--format=sarif", "x.iat", cwd=tmp_path)
    assert proc.returncode == exitcodes.OK
    assert json.loads(proc.stdout)["runs"][0]["results"] == []


def test_sarif_regions_follow_spans_in_characters(tmp_path: Path) -> None:
    """Columns count characters (code points), so a non-ASCII prefix moves them by one each."""
    src = SourceFile("é.iat", 'task ééé { instruction i0 = "x" }\n')
    diag = Diagnostic("E010", "m", src.span(5, 8))
    (result,) = to_sarif([diag], version="0", cwd=tmp_path)["runs"][0]["results"]  # type: ignore[index]
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 1, "startColumn": 6, "endLine": 1, "endColumn": 9}
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "%C3%A9.iat"


def test_sarif_absolute_path_outside_the_working_directory(tmp_path: Path) -> None:
    src = SourceFile(str(tmp_path / "x.iat"), "task t {}\n")
    diag = Diagnostic("E035", "m", src.span(5, 6))
    log = to_sarif([diag], version="0", cwd=tmp_path / "elsewhere")
    location = log["runs"][0]["results"][0]["locations"][0]  # type: ignore[index]
    assert location["physicalLocation"]["artifactLocation"] == {
        "uri": (tmp_path / "x.iat").as_uri()
    }


# -------------------------------------------------------------- GitHub


def test_github_annotations(tmp_path: Path) -> None:
    """One workflow command per diagnostic on stdout (hint after an escaped line break);
    the summary on stderr."""
    (tmp_path / "x.iat").write_text(DUPLICATE, encoding="utf-8")
    proc = _iatc("check", "--format", "github", "x.iat", cwd=tmp_path)
    assert proc.returncode == exitcodes.DIAGNOSTICS
    assert proc.stdout.splitlines() == [
        "::error file=x.iat,line=2,col=6,endLine=2,endColumn=7,title=E010::"
        "task `a` is declared twice%0Ahint: first declared at x.iat:1:6",
        "::warning file=x.iat,line=3,col=15,endLine=3,endColumn=16,title=W021::"
        "slot `q` is not used by any instruction of task `w`",
    ]
    assert "checked 1 file: 1 error, 1 warning" in proc.stderr


def test_github_clean_run_prints_no_command(tmp_path: Path) -> None:
    (tmp_path / "x.iat").write_text(CLEAN, encoding="utf-8")
    proc = _iatc("check", "--format", "github", "x.iat", cwd=tmp_path)
    assert proc.returncode == exitcodes.OK
    assert proc.stdout == "" and "checked 1 file: 0 errors" in proc.stderr


def test_github_escaping_rules() -> None:
    """`%`, CR and LF everywhere; `:` and `,` too in properties (GitHub's toolkit rules)."""
    assert escape_data("100% a:b,c\r\nd") == "100%25 a:b,c%0D%0Ad"
    assert escape_property("100% a:b,c\r\nd") == "100%25 a%3Ab%2Cc%0D%0Ad"
    src = SourceFile("we,ird:name%.iat", "task t {\n}\n")
    diag = Diagnostic("E035", "50% done: a,b\nc", src.span(0, 10), hint="x")
    assert github_command(diag) == (
        "::error file=we%2Cird%3Aname%25.iat,line=1,endLine=2,title=E035::"
        "50%25 done: a,b%0Ac%0Ahint: x"
    )


# ------------------------------------------------------------ fmt --diff


def test_fmt_diff_prints_a_patch_and_changes_nothing(tmp_path: Path) -> None:
    messy = tmp_path / "m.iat"
    messy.write_text(MESSY, encoding="utf-8")
    (tmp_path / "c.iat").write_text(CLEAN, encoding="utf-8")
    proc = _iatc("fmt", "--diff", ".", cwd=tmp_path)
    assert proc.returncode == exitcodes.DIAGNOSTICS
    assert messy.read_text(encoding="utf-8") == MESSY
    assert proc.stdout == (
        "--- m.iat\t(original)\n+++ m.iat\t(formatted)\n@@ -1 +1,3 @@\n"
        f"-{MESSY}\n\\ No newline at end of file\n"
        '+task t {\n+  instruction i0 = "x"\n+}\n'
    )
    assert "would reformat 1 of 2 files" in proc.stderr
    if shutil.which("patch"):
        subprocess.run(
            ["patch", "-p0", "-s"], cwd=tmp_path, input=proc.stdout, text=True, check=True
        )
        assert messy.read_text(encoding="utf-8") == CLEAN
        proc = _iatc("fmt", "--diff", ".", cwd=tmp_path)
        assert proc.returncode == exitcodes.OK and proc.stdout == ""


def test_unified_diff_splits_lines_only_at_newlines() -> None:
    """A form feed or U+2028 inside a line is not a line break for the diff."""
    before = 'task t { notes "a\x0cb\u2028c" }\n'
    after = 'task t {\n  notes "a\x0cb\u2028c"\n}\n'
    diff = unified_diff(before, after, "f.iat")
    assert diff.split("\n")[3] == f"-{before[:-1]}"
    assert unified_diff(CLEAN, CLEAN, "f.iat") == ""


def test_fmt_diff_leaves_broken_files_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "bad.iat").write_text("task t { slot q }\n", encoding="utf-8")
    proc = _iatc("fmt", "--diff", "bad.iat", cwd=tmp_path)
    assert proc.returncode == exitcodes.DIAGNOSTICS
    assert proc.stdout == "" and "bad.iat:1:17: error[E001]" in proc.stderr


# --------------------------------------------------------------- fmt -


def test_fmt_stdin_to_stdout(tmp_path: Path) -> None:
    proc = _iatc("fmt", "-", cwd=tmp_path, stdin=MESSY)
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert proc.stdout == CLEAN
    assert list(tmp_path.iterdir()) == []


def test_fmt_stdin_check_and_diff(tmp_path: Path) -> None:
    proc = _iatc("fmt", "--check", "-", cwd=tmp_path, stdin=MESSY)
    assert proc.returncode == exitcodes.DIAGNOSTICS and proc.stdout == "<stdin>\n"
    proc = _iatc("fmt", "--check", "--stdin-filename", "a/b.iat", "-", cwd=tmp_path, stdin=MESSY)
    assert proc.returncode == exitcodes.DIAGNOSTICS and proc.stdout == "a/b.iat\n"
    proc = _iatc("fmt", "--check", "-", cwd=tmp_path, stdin=CLEAN)
    assert proc.returncode == exitcodes.OK and proc.stdout == ""
    proc = _iatc("fmt", "--diff", "--stdin-filename", "b.iat", "-", cwd=tmp_path, stdin=MESSY)
    assert proc.returncode == exitcodes.DIAGNOSTICS
    assert proc.stdout.startswith("--- b.iat\t(original)\n+++ b.iat\t(formatted)\n")
    proc = _iatc("fmt", "--diff", "-", cwd=tmp_path, stdin=CLEAN)
    assert proc.returncode == exitcodes.OK and proc.stdout == ""


def test_fmt_stdin_keeps_unicode(tmp_path: Path) -> None:
    proc = _iatc("fmt", "-", cwd=tmp_path, stdin='task t{instruction i0="café ☕"}')
    assert proc.returncode == exitcodes.OK
    assert proc.stdout == 'task t {\n  instruction i0 = "café ☕"\n}\n'


def test_fmt_stdin_syntax_error(tmp_path: Path) -> None:
    """Broken input: diagnostics name the stdin file name, nothing on stdout, exit 1."""
    proc = _iatc("fmt", "--stdin-filename", "s.iat", "-", cwd=tmp_path, stdin="task t { slot q }")
    assert proc.returncode == exitcodes.DIAGNOSTICS
    assert proc.stdout == ""
    assert "s.iat:1:17: error[E001]" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [["fmt", "-", "x.iat"], ["fmt", "--stdin-filename", "s.iat", "x.iat"]],
    ids=["dash-with-paths", "stdin-filename-without-dash"],
)
def test_fmt_stdin_usage_errors(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "x.iat").write_text(MESSY, encoding="utf-8")
    proc = _iatc(*args, cwd=tmp_path, stdin=MESSY)
    assert proc.returncode == exitcodes.USAGE
    assert (tmp_path / "x.iat").read_text(encoding="utf-8") == MESSY


def test_fmt_stdin_not_utf8(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "instraug_dsl", "fmt", "-"],
        cwd=tmp_path,
        input=b"task t {} \xff\n",
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == exitcodes.DIAGNOSTICS and proc.stdout == b""
    assert b"<stdin>:1:1: error[E062]: cannot read `<stdin>`: not UTF-8 text" in proc.stderr
    assert b"offset 10" in proc.stderr and b"Traceback" not in proc.stderr


def test_fmt_file_not_utf8_is_e062_and_left_alone(tmp_path: Path) -> None:
    """Like `iatc check`: content that is not text is the input's error (exit 1), the
    other files are still formatted."""
    bad = tmp_path / "bad.iat"
    bad.write_bytes(b"task t {} \xff\n")
    (tmp_path / "m.iat").write_text(MESSY, encoding="utf-8")
    proc = _iatc("fmt", ".", cwd=tmp_path)
    assert proc.returncode == exitcodes.DIAGNOSTICS
    assert "bad.iat:1:1: error[E062]: cannot read `bad.iat`: not UTF-8 text" in proc.stderr
    assert "reformatted 1 of 2 files; 1 with errors left unchanged" in proc.stderr
    assert bad.read_bytes() == b"task t {} \xff\n"
    assert (tmp_path / "m.iat").read_text(encoding="utf-8") == CLEAN
