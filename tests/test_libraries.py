"""The libraries shipped with iatc, imported by name: ``import "@common/metaprompts.iat"``.

GIVEN a project anywhere on disk WHEN it imports ``@common/...`` THEN the shipped file is
loaded; a folder of the same name inside the project wins (so a library being edited, or a
copy checked together, never loads twice); a name cannot climb out of its library.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from instraug_dsl import api

REPO = Path(__file__).resolve().parents[1]


def test_a_project_anywhere_imports_the_shipped_meta_prompts(tmp_path: Path) -> None:
    (tmp_path / "p.iat").write_text(
        'import "@common/metaprompts.iat"\n'
        'task t { slot q: text  instruction i0 = "Answer the question {q} in a few words." }\n'
        "default plan p { use direct samples 1 }\n",
        encoding="utf-8",
    )
    result = api.compile([tmp_path / "p.iat"])
    assert result.plan == "p" and len(result.compiled.requests) == 1


def test_a_library_in_the_project_wins_over_the_shipped_one(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "common").mkdir(parents=True)
    (lib / "common" / "mine.iat").write_text(
        'metaprompt mine { user "Reword: <instruction>{{ instruction }}</instruction>" }\n',
        encoding="utf-8",
    )
    (lib / "tasks").mkdir()
    (lib / "tasks" / "t.iat").write_text(
        'import "@common/mine.iat"\n'
        'task t { slot q: text  instruction i0 = "Answer the question {q} in a few words." }\n'
        "plan p { use mine }\n",
        encoding="utf-8",
    )
    assert api.load([lib]).ok  # lib/common is the project's own @common


def test_a_library_name_cannot_climb_out(tmp_path: Path) -> None:
    (tmp_path / "p.iat").write_text('import "@common/../../README.md.iat"\n', encoding="utf-8")
    result = api.load([tmp_path / "p.iat"])
    assert [d.code for d in result.diagnostics] == ["E060"]


def test_the_cli_names_a_shipped_library(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "instraug_dsl", "compile", "@multiinstruct", "-o", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "compiled plan `paper`: 2970 requests" in done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "instraug_dsl", "check", "@nosuch"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "no library @nosuch ships with iatc" in missing.stderr
