"""Running the command line in tests: in process (fast), or as a user types it (a real
process, from a folder outside the checkout), and comparing run directories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands

_register_commands()
_runner = CliRunner()

#: The files of a run directory that must not depend on how the run was split or resumed.
RUN_FILES = ("instructions.jsonl", "rejected.jsonl", "failed.jsonl")


def in_process(*args: object) -> tuple[int, str]:
    """``iatc ARGS`` through typer's test runner: (exit code, output)."""
    result = _runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def cli(*args: object, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The installed command, exactly as a user types it (``python -m instraug_dsl``)."""
    return subprocess.run(
        [sys.executable, "-m", "instraug_dsl", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """Assert the command succeeded without a traceback; its stdout and stderr."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def same_files(a: Path, b: Path, names: tuple[str, ...] = RUN_FILES) -> None:
    """The two run directories hold byte-identical ``names`` and ``compiled/`` files."""
    compiled = sorted(p.name for p in (a / "compiled").iterdir())
    assert compiled == sorted(p.name for p in (b / "compiled").iterdir())
    for name in (*names, *(f"compiled/{c}" for c in compiled)):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
