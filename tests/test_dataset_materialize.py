"""``iatc materialize``: sampling, rendering, errors, budgets, determinism and output formats.

Every test reads the run the real runtime writes (fixture ``run_small``,
tests/run_small_support.py) and the instance file tests/fixtures/run_small/instances.jsonl.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from run_small_support import CODE, INSTANCES, MODEL, TASKS, edited_tasks
from typer.testing import CliRunner

from instraug_dsl import api
from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.contract.codec import encode
from instraug_dsl.contract.dataset import MaterializeManifest, MaterializeOptions, read_manifest
from instraug_dsl.dataset.filters import run_pools
from instraug_dsl.dataset.run import load_run
from instraug_dsl.errors import UsageError
from instraug_dsl.fsio import sha256_file

TRAIN_IDS = [
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
COLUMNS = [
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


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    _register_commands()
    return CliRunner()


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def build(
    run: Path,
    out: Path,
    instances: Path = INSTANCES,
    iat: list[Path] | None = None,
    **options: Any,
) -> MaterializeManifest:
    result = api.materialize(run, instances, out, options=MaterializeOptions(**options), iat=iat)
    assert result.out == out
    return result.manifest


def test_cli_writes_rows_errors_drops_card_and_manifest(
    runner: CliRunner, run_small: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["materialize", str(run_small), "--instances", str(INSTANCES), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 11 rows" in result.output and "10 held-out rows" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "dropped.jsonl",
        "errors.jsonl",
        "manifest.json",
        "test.jsonl",
        "train.jsonl",
    ]
    data = rows(out / "train.jsonl")
    assert [r["unique_id"] for r in data] == TRAIN_IDS
    assert list(data[0]) == COLUMNS
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
    assert len(rows(out / "dropped.jsonl")) == 83

    manifest = read_manifest(out)
    assert manifest.counts.written == 11 and manifest.counts.errors == 5
    assert manifest.counts.test_written == 10
    assert manifest.held_out == {"commonsense_VQA": 1, "visual_dialog_has_hist": 1}
    assert manifest.unmatched == {"some_unknown_task": 1}
    assert manifest.inputs.instances.lines == 19
    assert manifest.inputs.iat == {"tasks.iat": sha256_file(TASKS)}  # as compiled
    assert manifest.inputs.plan == "small"
    assert manifest.inputs.instructions.sha256 == sha256_file(run_small / "instructions.jsonl")
    assert manifest.tasks["VQA_color"].errors == 2
    assert (manifest.outputs.data, manifest.outputs.test, manifest.outputs.card) == (
        "train.jsonl",
        "test.jsonl",
        "README.md",
    )
    assert manifest.outputs.test_sha256 == sha256_file(out / "test.jsonl")
    assert manifest.warnings == (
        "2 task(s) with no kept rewrites fell back to original instructions for 2 "
        "instance(s): multimodal_factual_checking, wikihow_text_image_step_order",
    )


def test_held_out_tasks_go_to_the_test_split_with_original_instructions(
    run_small: Path, tmp_path: Path
) -> None:
    manifest = build(run_small, tmp_path / "out", raw_share=0.0)
    train = rows(tmp_path / "out" / "train.jsonl")
    test = rows(tmp_path / "out" / "test.jsonl")
    held_out = {n for n, t in load_run(run_small).catalog.tasks.items() if t.split == "test"}
    assert not {r["task"] for r in train} & held_out
    assert not any("Regions:" in r["prompt"] or "is in 1 2 3 4" in r["prompt"] for r in train)
    # by default one row per original instruction of the held-out task
    assert [(r["unique_id"], r["instruction_id"]) for r in test] == [
        ("vcr-1", f"commonsense_VQA/i{i}") for i in range(5)
    ] + [("dial-1", f"visual_dialog_has_hist/i{i}") for i in range(5)]
    assert {r["instruction_kind"] for r in test} == {"original"}
    assert {r["metaprompt"] for r in test} == {None} and {r["model"] for r in test} == {None}
    assert {r["task"] for r in test} <= held_out
    assert test[5]["prompt"] == (
        "Dialogue history: is it big, yes;\nBased on the image and dialogue history, answer: "
        "is it red?"
    )
    assert all(r["target"] == "a" for r in test[:5])
    assert manifest.counts.test_written == 10 and manifest.counts.held_out == 2
    assert manifest.counts.written == 11  # the test split is not counted as training rows

    one = build(run_small, tmp_path / "one", test_instructions="one")
    picked = rows(tmp_path / "one" / "test.jsonl")
    assert [r["unique_id"] for r in picked] == ["vcr-1", "dial-1"]
    assert picked[0]["instruction_id"].startswith("commonsense_VQA/i")
    assert one.counts.test_written == 2

    none = build(run_small, tmp_path / "none", test_instructions="none")
    assert not (tmp_path / "none" / "test.jsonl").exists()
    assert none.outputs.test is None and none.outputs.test_sha256 is None
    assert none.counts.test_written == 0 and none.counts.held_out == 2
    card = (tmp_path / "none" / "README.md").read_text()
    assert "split: train" in card and "split: test" not in card


def test_cli_test_instructions(runner: CliRunner, run_small: Path, tmp_path: Path) -> None:
    base = ["materialize", str(run_small), "--instances", str(INSTANCES)]
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "one"), "--test-instructions", "one"])
    assert result.exit_code == 0, result.output
    assert "2 held-out rows" in result.output
    assert len(rows(tmp_path / "one" / "test.jsonl")) == 2
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "no"), "--test-instructions", "none"])
    assert result.exit_code == 0, result.output
    assert "held-out rows" not in result.output and not (tmp_path / "no" / "test.jsonl").exists()


def test_dataset_card_declares_splits_and_features(run_small: Path, tmp_path: Path) -> None:
    build(run_small, tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    front = card.split("---\n")[1]
    assert "  - split: train\n    path: train.jsonl\n" in front
    assert "  - split: test\n    path: test.jsonl\n" in front
    assert "  - name: temperature\n    dtype: float64\n" in front
    assert front.count("  - name: ") == len(COLUMNS)
    assert "plan `small`" in card


def test_strict_fails_naming_the_record_and_leaves_no_partial_files(
    runner: CliRunner, run_small: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["materialize", str(run_small), "--instances", str(INSTANCES), "-o", str(out)]
    result = runner.invoke(app, [*args, "--strict"])
    assert result.exit_code == 1
    assert "instances.jsonl:3: record color-3: question: missing required field" in result.output
    assert list(out.iterdir()) == []


def test_rewriting_a_dataset_folder_leaves_only_its_files(run_small: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    out = tmp_path / "out"
    build(run_small, out)
    build(run_small, out, format="parquet", test_instructions="none")
    # the earlier train.jsonl/test.jsonl would pass for part of the new dataset
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "dropped.jsonl",
        "errors.jsonl",
        "manifest.json",
        "train.parquet",
    ]
    # in a folder that is not iatc's (--force), files the dataset does not write are kept
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "test.jsonl").write_text("mine\n")
    options = MaterializeOptions(test_instructions="none")
    api.materialize(run_small, INSTANCES, foreign, options=options, force=True)
    assert (foreign / "test.jsonl").read_text() == "mine\n"


def test_equal_seeds_give_identical_bytes_and_other_seeds_differ(
    run_small: Path, tmp_path: Path
) -> None:
    outs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        build(run_small, tmp_path / name, seed=seed)
        outs[name] = {p.name: p.read_bytes() for p in (tmp_path / name).iterdir()}
    assert sorted(outs["a"]) == [
        "README.md",
        "dropped.jsonl",
        "errors.jsonl",
        "manifest.json",
        "test.jsonl",
        "train.jsonl",
    ]
    assert outs["a"] == outs["b"]
    assert outs["a"]["train.jsonl"] != outs["c"]["train.jsonl"]
    assert outs["a"]["test.jsonl"] != outs["c"]["test.jsonl"]  # options shuffled per seed
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
def test_raw_share_is_honoured(
    run_small: Path, tmp_path: Path, raw_share: float, uniform: bool
) -> None:
    n = 6000
    build(
        run_small,
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


def test_raw_share_extremes(run_small: Path, tmp_path: Path) -> None:
    many = _many(tmp_path, 300)
    one = build(run_small, tmp_path / "one", many, raw_share=1.0)
    build(run_small, tmp_path / "zero", many, raw_share=0.0)
    assert {r["instruction_kind"] for r in rows(tmp_path / "one" / "train.jsonl")} == {"original"}
    assert {r["instruction_kind"] for r in rows(tmp_path / "zero" / "train.jsonl")} == {"generated"}
    assert one.tasks["VQA_color"].fallback == 0 and one.warnings == ()
    # raw_share 1 never draws a rewrite, so tasks without one are no fallback either
    full = build(run_small, tmp_path / "full", raw_share=1.0)
    assert all(t.fallback == 0 for t in full.tasks.values()) and full.warnings == ()


def test_shuffled_options_keep_the_target(run_small: Path, tmp_path: Path) -> None:
    build(run_small, tmp_path / "out", _many(tmp_path, 200), raw_share=1.0)
    orders = set()
    for row in rows(tmp_path / "out" / "train.jsonl"):
        if row["instruction_id"] == "VQA_color/i4":  # the one instruction without options
            continue
        shown = row["prompt"].split("\n\n[Options]: ")[1].split("||||")
        assert sorted(shown) == ["blue", "green", "red"] and row["target"] == "blue"
        orders.add(tuple(shown))
    assert len(orders) == 6


def test_no_shuffle_keeps_record_order(run_small: Path, tmp_path: Path) -> None:
    build(run_small, tmp_path / "out", _many(tmp_path, 50), shuffle_options=False, raw_share=1.0)
    for row in rows(tmp_path / "out" / "train.jsonl"):
        if row["instruction_id"] != "VQA_color/i4":
            assert row["prompt"].endswith("\n\n[Options]: red||||blue||||green")


def test_per_task_budget_keeps_the_first_rendered_records(run_small: Path, tmp_path: Path) -> None:
    manifest = build(run_small, tmp_path / "out", per_task=1)
    data = rows(tmp_path / "out" / "train.jsonl")
    assert Counter(r["task"] for r in data).most_common(1)[0][1] == 1
    by_task = {r["task"]: r["unique_id"] for r in data}
    assert by_task["VQA_color"] == "color-1" and by_task["wikihow_next_step"] == "step-1"
    # records after the budget is full are not even rendered (color-3/4 are not errors here)
    assert manifest.tasks["VQA_color"].over_budget == 3
    assert manifest.tasks["VQA_color"].errors == 0
    assert manifest.counts.over_budget == 6
    assert manifest.counts.test_written == 10  # the budget is a training-split rule


def test_held_out_by_the_iat_override(run_small: Path, tmp_path: Path) -> None:
    """A training task of the run declared ``split test`` by ``--iat``: its rewrites are
    dropped and its instances go to the test split with original instructions only."""
    override = edited_tasks(
        tmp_path / "iat",
        replace={'category "Captioning"\n  split train': 'category "Captioning"\n  split test'},
    )
    manifest = build(run_small, tmp_path / "out", iat=[override], raw_share=0.0)
    train = rows(tmp_path / "out" / "train.jsonl")
    test = rows(tmp_path / "out" / "test.jsonl")
    assert "image_caption" not in {r["task"] for r in train}
    captions = [r for r in test if r["task"] == "image_caption"]
    assert [(r["unique_id"], r["instruction_id"]) for r in captions] == [
        (uid, f"image_caption/i{i}") for uid in ("cap-1", "cap-2") for i in range(5)
    ]
    assert {r["instruction_kind"] for r in captions} == {"original"}
    assert manifest.held_out["image_caption"] == 2
    assert manifest.counts.dropped_instructions["held_out_task"] == 8
    dropped = [r for r in rows(tmp_path / "out" / "dropped.jsonl") if r["task"] == "image_caption"]
    assert {r["reason"] for r in dropped} == {"held_out_task"} and len(dropped) == 8
    assert manifest.inputs.iat == {str(override): sha256_file(override)}
    assert "differ from those the run was compiled from" in manifest.warnings[0]


def test_malicious_values_come_out_literally(run_small: Path, tmp_path: Path) -> None:
    marker = Path("/tmp/pwned")
    existed = marker.exists()
    with_options = 0
    for seed in range(8):
        build(run_small, tmp_path / f"o{seed}", seed=seed)
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


def test_generated_instruction_with_code_is_plain_text(run_small: Path, tmp_path: Path) -> None:
    pools, _ = run_pools(load_run(run_small))
    code = next(c for c in pools["VQA_color"].kept if "os.system" in c.plan.text)
    build(run_small, tmp_path / "out", _many(tmp_path, 300), raw_share=0.0)
    used = [r for r in rows(tmp_path / "out" / "train.jsonl") if r["instruction_id"] == code.id]
    assert len(used) > 50
    for row in used:
        assert row["prompt"].startswith(CODE)
        question = row["prompt"].removeprefix(CODE).split(" \n\n[Options]: ")[0]
        assert question.startswith("q") and question.endswith("?") and question[1:-1].isdigit()
        assert (row["instruction_kind"], row["root"], row["model"]) == (
            "generated",
            "VQA_color/i3",
            MODEL,
        )
        assert (row["metaprompt"], row["temperature"]) == ("direct", 0.6)


def test_parquet_and_jsonl_load_with_arrow(run_small: Path, tmp_path: Path) -> None:
    pa_json = pytest.importorskip("pyarrow.json")
    pq = pytest.importorskip("pyarrow.parquet")
    build(run_small, tmp_path / "j", seed=3)
    manifest = build(run_small, tmp_path / "p", seed=3, format="parquet")
    for split, n in (("train", 11), ("test", 10)):
        table = pq.read_table(tmp_path / "p" / f"{split}.parquet")
        assert table.column_names == COLUMNS
        assert table.to_pylist() == rows(tmp_path / "j" / f"{split}.jsonl")
        assert pa_json.read_json(tmp_path / "j" / f"{split}.jsonl").num_rows == n
    assert (manifest.outputs.data, manifest.outputs.test) == ("train.parquet", "test.parquet")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "README.md",
        "dropped.jsonl",
        "errors.jsonl",
        "manifest.json",
        "test.parquet",
        "train.parquet",
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_datasets_loads_the_output_folder(run_small: Path, tmp_path: Path, fmt: str) -> None:
    datasets = pytest.importorskip("datasets")
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / "out"
    build(run_small, out, format=fmt)
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(loaded) == ["test", "train"]
    assert (loaded["train"].num_rows, loaded["test"].num_rows) == (11, 10)
    for split in ("train", "test"):
        assert loaded[split].column_names == COLUMNS
        assert loaded[split].features["temperature"].dtype == "float64"
    assert loaded["test"]["temperature"] == [None] * 10  # typed by the card, not guessed
    assert loaded["train"]["unique_id"] == TRAIN_IDS


def test_bad_inputs_are_clear_errors(run_small: Path, tmp_path: Path, runner: CliRunner) -> None:
    with pytest.raises(UsageError, match="no such instance file"):
        build(run_small, tmp_path / "out", tmp_path / "missing.jsonl")
    with pytest.raises(UsageError, match="raw-share"):
        build(run_small, tmp_path / "out", raw_share=1.5)
    with pytest.raises(UsageError, match="--test-instructions"):
        build(run_small, tmp_path / "out", test_instructions="some")
    assert not (tmp_path / "out").exists()
    base = ["--instances", str(INSTANCES), "-o", str(tmp_path / "o")]
    result = runner.invoke(app, ["materialize", str(tmp_path), *base])
    assert result.exit_code == 2 and "compiled/manifest.json" in result.output
    result = runner.invoke(app, ["materialize", str(run_small), *base, "--format", "csv"])
    assert result.exit_code == 2 and "--format must be one of jsonl, parquet" in result.output
    result = runner.invoke(
        app, ["materialize", str(run_small), *base, "--test-instructions", "some"]
    )
    assert result.exit_code == 2 and "--test-instructions must be" in result.output
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    base[-1] = str(tmp_path / "taken")
    result = runner.invoke(app, ["materialize", str(run_small), *base])
    assert result.exit_code == 2 and "not an iatc dataset folder" in result.output
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_iat_override_directory(runner: CliRunner, run_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "materialize",
        str(run_small),
        "--instances",
        str(INSTANCES),
        "-o",
        str(out),
        "--iat",
        str(TASKS.parent),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "warning: the --iat sources differ" not in result.output  # same contents
    manifest = read_manifest(out)
    assert manifest.inputs.plan == "small" and manifest.dedup_threshold == 0.7
    assert [(Path(p).resolve(), h) for p, h in manifest.inputs.iat.items()] == [
        (TASKS, sha256_file(TASKS))
    ]
    build(run_small, tmp_path / "recorded")  # the run's own declarations give the same rows
    for name in ("train.jsonl", "test.jsonl", "dropped.jsonl"):
        assert (out / name).read_bytes() == (tmp_path / "recorded" / name).read_bytes()


def test_moved_run_directory_without_sources(run_small: Path, tmp_path: Path) -> None:
    """A run directory copied elsewhere, its .iat sources gone, used from another cwd."""
    assert not (run_small.parent / "sources").exists()  # the sources were deleted after the run
    moved = Path(shutil.copytree(run_small, tmp_path / "elsewhere" / "moved-run"))
    shutil.copyfile(INSTANCES, tmp_path / "instances.jsonl")
    cwd = tmp_path / "work"
    cwd.mkdir()

    def iatc(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "instraug_dsl", *args]
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)

    made = iatc(
        "materialize", "../elsewhere/moved-run", "--instances", "../instances.jsonl", "-o", "out"
    )
    assert made.returncode == 0, made.stderr
    assert "wrote 11 rows" in made.stdout
    manifest = read_manifest(cwd / "out")
    assert manifest.inputs.run_dir == "../elsewhere/moved-run"
    assert manifest.warnings[0].startswith("2 task(s) with no kept rewrites")
    build(run_small, tmp_path / "here")
    for name in ("train.jsonl", "test.jsonl", "dropped.jsonl", "errors.jsonl"):
        assert (cwd / "out" / name).read_bytes() == (tmp_path / "here" / name).read_bytes(), name
    assert "`moved-run`" in (cwd / "out" / "README.md").read_text()

    stats = iatc("stats", "../elsewhere/moved-run", "--format", "json")
    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)
    expected = encode(api.stats(moved))
    assert data == {**expected, "run_dir": "../elsewhere/moved-run"}
    assert data["totals"]["kept"] == 11


def test_no_held_out_instances_means_no_test_split_and_the_folder_still_loads(
    run_small: Path, tmp_path: Path
) -> None:
    """An empty test file would not load as a split: without held-out instances there is none."""
    from instraug_dsl.dataset.records import iter_records

    train_only = tmp_path / "train-only.jsonl"
    held = {"commonsense_VQA", "visual_dialog"}
    with train_only.open("w", encoding="utf-8") as out:
        for _, record in iter_records(INSTANCES):
            if isinstance(record, dict) and record.get("task_name") not in held:
                out.write(json.dumps(record) + "\n")
    manifest = build(run_small, tmp_path / "out", instances=train_only)
    assert manifest.outputs.test is None and manifest.counts.test_written == 0
    assert not (tmp_path / "out" / "test.jsonl").exists()
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "split: train" in card and "split: test" not in card
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "hf"))
    assert list(loaded) == ["train"] and loaded["train"].num_rows == manifest.counts.written
