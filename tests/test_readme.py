"""README.md is generated from docs/ and starts with the two set-up commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "build_readme.py"), "--check"])
    assert result.returncode == 0, "README.md is stale: run python docs/build_readme.py"


def test_ci_runs_the_readme_test_command() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "```sh"
    test_command = lines[2]
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci, ".ci/run must run exactly the README's test command"
