"""``iatc materialize``: sampling, rendering, errors, budgets, determinism and output formats."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.dataset.filters import run_pools
from instraug_dsl.dataset.materialize import MaterializeOptions, materialize
from instraug_dsl.dataset.run import Run, load_run
from instraug_dsl.errors import DataError

RUN = Path(__file__).parent / "fixtures" / "run_small"
INSTANCES = RUN / "instances.jsonl"


@pytest.fixture(scope="module")
def run() -> Run:
    return load_run(RUN)


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    _register_commands()
    return CliRunner()


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def build(run: Run, out: Path, instances: Path = INSTANCES, **options: Any) -> dict[str, Any]:
    return materialize(run, instances, out, MaterializeOptions(**options))


def test_cli_writes_rows_errors_drops_and_manifest(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["materialize", str(RUN), "--instances", str(INSTANCES), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 11 rows" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "dropped.jsonl",
        "errors.jsonl",
        "manifest.json",
        "train.jsonl",
    ]
    data = rows(out / "train.jsonl")
    assert [r["unique_id"] for r in data] == [
        "color-1",
        "color-2",
        "cap-1",
        "cap-2",
        "match-1",
        "step-1",
        "step-2",
        "order-1",
        "overlap-1",
        "pos-1",
        "fact-1",
    ]
    assert list(data[0]) == [
        "unique_id",
        "task",
        "task_name",
        "image_path",
        "prompt",
        "target",
        "instruction_id",
        "instruction_kind",
        "root",
        "metaprompt",
        "temperature",
        "model",
    ]
    errors = rows(out / "errors.jsonl")
    assert [(e["line"], e["unique_id"], e["field"]) for e in errors] == [
        (3, "color-3", "question"),
        (4, "color-4", "question"),
        (8, "match-2", "region[0]"),
        (18, None, None),
        (19, None, None),
    ]
    assert errors[0]["reason"] == "missing required field"
    assert errors[3]["reason"].startswith("not valid JSON")
    assert len(rows(out / "dropped.jsonl")) == 8
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["written"] == 11 and manifest["counts"]["errors"] == 5
    assert manifest["held_out"] == {"commonsense_VQA": 1, "visual_dialog_has_hist": 1}
    assert manifest["unmatched"] == {"some_unknown_task": 1}
    assert manifest["inputs"]["instances"]["lines"] == 19
    assert manifest["inputs"]["iat"] == {
        "tests/fixtures/run_small/tasks.iat": manifest["inputs"]["iat"][
            "tests/fixtures/run_small/tasks.iat"
        ]
    }
    assert manifest["tasks"]["VQA_color"]["errors"] == 2
    assert manifest["outputs"]["data"] == "train.jsonl"
    assert "no kept rewrites" in " ".join(manifest["warnings"])


def test_strict_fails_naming_the_record_and_leaves_no_partial_files(
    runner: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["materialize", str(RUN), "--instances", str(INSTANCES), "-o", str(out), "--strict"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "instances.jsonl:3: record color-3: question: missing required field" in result.output
    assert list(out.iterdir()) == []


def test_equal_seeds_give_identical_bytes_and_other_seeds_differ(run: Run, tmp_path: Path) -> None:
    outs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        build(run, tmp_path / name, seed=seed)
        outs[name] = {p.name: p.read_bytes() for p in (tmp_path / name).iterdir()}
    assert outs["a"] == outs["b"]
    assert outs["a"]["train.jsonl"] != outs["c"]["train.jsonl"]
    assert outs["a"]["dropped.jsonl"] == outs["c"]["dropped.jsonl"]


def _many(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "many.jsonl"
    with path.open("w") as fh:
        for i in range(n):
            rec = {
                "unique_id": f"c{i}",
                "task_name": "VQA_color",
                "question": f"q{i}?",
                "options": ["red", "blue", "green"],
                "target": "blue",
            }
            fh.write(json.dumps(rec) + "\n")
    return path


@pytest.mark.parametrize(
    ("raw_share", "uniform"), [(0.5, False), (0.2, False), (0.9, False), (0.5, True)]
)
def test_raw_share_is_honoured(run: Run, tmp_path: Path, raw_share: float, uniform: bool) -> None:
    n = 6000
    build(
        run,
        tmp_path / "out",
        _many(tmp_path, n),
        raw_share=raw_share,
        mode="uniform" if uniform else "mixed",
    )
    data = rows(tmp_path / "out" / "train.jsonl")
    kinds = Counter(r["instruction_kind"] for r in data)
    # uniform: 5 originals out of 5 + 3 kept rewrites, whatever raw_share says
    p = 5 / 8 if uniform else raw_share
    assert abs(kinds["original"] / n - p) < 5 * math.sqrt(p * (1 - p) / n)
    # within each kind, every instruction is drawn, roughly uniformly
    for kind, size in (("original", 5), ("generated", 3)):
        ids = Counter(r["instruction_id"] for r in data if r["instruction_kind"] == kind)
        assert len(ids) == size
        mean = kinds[kind] / size
        assert all(abs(c - mean) < 6 * math.sqrt(mean) for c in ids.values())


def test_raw_share_extremes(run: Run, tmp_path: Path) -> None:
    many = _many(tmp_path, 300)
    build(run, tmp_path / "one", many, raw_share=1.0)
    build(run, tmp_path / "zero", many, raw_share=0.0)
    assert {r["instruction_kind"] for r in rows(tmp_path / "one" / "train.jsonl")} == {"original"}
    assert {r["instruction_kind"] for r in rows(tmp_path / "zero" / "train.jsonl")} == {"generated"}
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert manifest["tasks"]["image_caption"]["fallback"] == 0


def test_shuffled_options_keep_the_target(run: Run, tmp_path: Path) -> None:
    build(run, tmp_path / "out", _many(tmp_path, 200), raw_share=1.0)
    orders = set()
    for row in rows(tmp_path / "out" / "train.jsonl"):
        if row["instruction_id"] == "VQA_color/i4":  # the one instruction without options
            continue
        shown = row["prompt"].split("\n\n[Options]: ")[1].split("||||")
        assert sorted(shown) == ["blue", "green", "red"] and row["target"] == "blue"
        orders.add(tuple(shown))
    assert len(orders) == 6


def test_no_shuffle_keeps_record_order(run: Run, tmp_path: Path) -> None:
    build(run, tmp_path / "out", _many(tmp_path, 50), shuffle_options=False, raw_share=1.0)
    for row in rows(tmp_path / "out" / "train.jsonl"):
        if row["instruction_id"] != "VQA_color/i4":
            assert row["prompt"].endswith("\n\n[Options]: red||||blue||||green")


def test_per_task_budget_keeps_the_first_rendered_records(run: Run, tmp_path: Path) -> None:
    manifest = build(run, tmp_path / "out", per_task=1)
    data = rows(tmp_path / "out" / "train.jsonl")
    assert Counter(r["task"] for r in data).most_common(1)[0][1] == 1
    by_task = {r["task"]: r["unique_id"] for r in data}
    assert by_task["VQA_color"] == "color-1" and by_task["wikihow_next_step"] == "step-1"
    # records after the budget is full are not even rendered (color-3/4 are not errors here)
    assert manifest["tasks"]["VQA_color"]["over_budget"] == 3
    assert manifest["tasks"]["VQA_color"]["errors"] == 0
    assert manifest["counts"]["over_budget"] == 6


def test_held_out_tasks_never_reach_training_rows(run: Run, tmp_path: Path) -> None:
    build(run, tmp_path / "out", raw_share=0.0)
    data = rows(tmp_path / "out" / "train.jsonl")
    held_out = {n for n, t in run.catalog.tasks.items() if t.split == "test"}
    assert not {r["task"] for r in data} & held_out
    assert not any("Regions:" in r["prompt"] for r in data)


def test_malicious_values_come_out_literally(run: Run, tmp_path: Path) -> None:
    marker = Path("/tmp/pwned")
    existed = marker.exists()
    with_options = 0
    for seed in range(8):
        build(run, tmp_path / f"o{seed}", seed=seed)
        data = rows(tmp_path / f"o{seed}" / "train.jsonl")
        row = next(r for r in data if r["unique_id"] == "color-2")
        assert "{__class__}" in row["prompt"]
        if "[Options]" in row["prompt"]:
            with_options += 1
            assert "{{7*7}}" in row["prompt"] and "{0.__class__}" in row["prompt"]
            assert "__import__('os').system('touch /tmp/pwned') #" in row["prompt"]
        assert row["target"] == "{{7*7}}"
    assert with_options >= 3
    assert marker.exists() == existed


def test_generated_instruction_with_code_is_plain_text(run: Run, tmp_path: Path) -> None:
    pools, _ = run_pools(run)
    code = next(c for c in pools["VQA_color"].kept if "os.system" in c.plan.text)
    build(run, tmp_path / "out", _many(tmp_path, 300), raw_share=0.0)
    used = [r for r in rows(tmp_path / "out" / "train.jsonl") if r["instruction_id"] == code.id]
    assert len(used) > 50
    for row in used:
        question = row["prompt"].split("then answer ")[1].split("\n\n[Options]")[0]
        assert row["prompt"].startswith(
            'Reply with ""); import os; os.system(\'touch /tmp/pwned\') #"'
        )
        assert question.startswith("q") and question.endswith("?")


def test_parquet_and_jsonl_load_with_arrow(run: Run, tmp_path: Path) -> None:
    pa_json = pytest.importorskip("pyarrow.json")
    pq = pytest.importorskip("pyarrow.parquet")
    build(run, tmp_path / "j", seed=3)
    build(run, tmp_path / "p", seed=3, format="parquet")
    table = pq.read_table(tmp_path / "p" / "train.parquet")
    assert table.to_pylist() == rows(tmp_path / "j" / "train.jsonl")
    assert pa_json.read_json(tmp_path / "j" / "train.jsonl").num_rows == 11
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["outputs"]["data"] == "train.parquet"


def test_datasets_loads_the_output(run: Run, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    build(run, tmp_path / "j")
    build(run, tmp_path / "p", format="parquet")
    for kind, path in (("json", "j/train.jsonl"), ("parquet", "p/train.parquet")):
        ds = datasets.load_dataset(kind, data_files=str(tmp_path / path), split="train")
        assert ds.num_rows == 11 and "prompt" in ds.column_names


def test_bad_inputs_are_clear_errors(run: Run, tmp_path: Path, runner: CliRunner) -> None:
    with pytest.raises(DataError, match="no such instance file"):
        build(run, tmp_path / "out", tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="raw-share"):
        build(run, tmp_path / "out", raw_share=1.5)
    result = runner.invoke(
        app,
        ["materialize", str(tmp_path), "--instances", str(INSTANCES), "-o", str(tmp_path / "o")],
    )
    assert result.exit_code == 2 and "compiled/manifest.json" in result.output
    result = runner.invoke(
        app,
        [
            "materialize",
            str(RUN),
            "--instances",
            str(INSTANCES),
            "-o",
            str(tmp_path / "o"),
            "--format",
            "csv",
        ],
    )
    assert result.exit_code == 2 and "--format must be one of jsonl, parquet" in result.output


def test_iat_override_directory(run: Run, tmp_path: Path, runner: CliRunner) -> None:
    shutil.copytree(RUN, tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "compiled")
    out = tmp_path / "out"
    args = [
        "materialize",
        str(tmp_path / "run"),
        "--instances",
        str(INSTANCES),
        "-o",
        str(out),
        "--iat",
        str(RUN),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["plan"] is None and manifest["options"]["dedup_threshold"] == 0.7
    assert list(manifest["inputs"]["iat"]) == [str(RUN / "tasks.iat")]
