"""README.md is the site's home page, generated with the reference pages; it starts with the
two set-up commands, fits on a few screens, and the site builds with ``mkdocs --strict``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "build_readme.py"), "--check"])
    assert result.returncode == 0, "README.md or docs/ is stale: run python docs/build_readme.py"


def test_readme_fits_on_a_few_screens() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail into docs/"


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    """Broken links, missing pages or anchors fail the build (mkdocs.yml: strict)."""
    pytest.importorskip("material", reason="mkdocs-material is in the [test] extra")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "diagnostics" / "index.html").is_file()


def test_ci_runs_the_readme_test_command() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "```sh"
    test_command = lines[2]
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci, ".ci/run must run exactly the README's test command"
