"""`iatc init DIR`: a starter project that checks cleanly and runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from instraug_dsl.commands.init import FILES


def iatc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "instraug_dsl", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_init_check_and_offline_run(tmp_path: Path) -> None:
    """GIVEN a temp folder WHEN `iatc init proj` THEN the project checks without a warning,
    `iatc run` with the offline rules writes a dataset, the targets follow the shuffled
    options, label names and carried fields are rendered."""
    made = iatc("init", "proj", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (tmp_path / "proj").iterdir()) == sorted(FILES)
    checked = iatc("check", "proj", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "0 errors, 0 warnings" in checked.stdout + checked.stderr
    formatted = iatc("fmt", "--check", "proj", cwd=tmp_path)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr

    ran = iatc("run", "proj", "-o", "out", "--model", "offline/rules", "-q", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    rows = [
        json.loads(line)
        for line in (tmp_path / "out" / "data" / "train.jsonl").read_text().splitlines()
    ]
    records = {
        r["unique_id"]: r
        for r in map(json.loads, (tmp_path / "proj" / "instances.jsonl").read_text().splitlines())
    }
    assert {r["unique_id"] for r in rows} == set(records)
    names = ["entailment", "neutral", "contradiction"]
    for row in rows:
        record = records[row["unique_id"]]
        assert row["task_name"] == record["task_name"] and row["meta.source"] == "starter"
        assert "image_path" not in row  # the sampling block's `carry` replaced the default
        if record["task_name"] == "entailment":
            assert row["target"] == names[record["label"]]
        elif row["target"] in ("A", "B"):  # the letter of the answer as the prompt shows it
            options = row["prompt"].split("\nOptions: ", 1)[1]
            shown = dict(part.split(") ", 1) for part in options[1:].split(" ("))
            assert shown[row["target"]] == record["label_text"]
        else:
            assert row["target"] == record["label_text"]


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "notes.txt").write_text("mine", encoding="utf-8")
    refused = iatc("init", "proj", cwd=tmp_path)
    assert refused.returncode == 2
    assert "not empty" in refused.stderr and "--force" in refused.stderr
    assert sorted(p.name for p in (tmp_path / "proj").iterdir()) == ["notes.txt"]
    forced = iatc("init", "proj", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "proj" / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (tmp_path / "proj" / "tasks.iat").read_text(encoding="utf-8") == FILES["tasks.iat"]
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert iatc("init", "file", cwd=tmp_path).returncode == 2
