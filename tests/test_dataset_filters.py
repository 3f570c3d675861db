"""Corpus filters over a run's accepted rewrites (instraug_dsl.dataset.filters).

Exactness of the ROUGE-L kernel against rouge_score is tests/test_rouge.py's job; here the
per-task pools, the reasons, the collided-with ids and the order independence are checked
on the hand-made run in tests/fixtures/run_small (regenerate with its make_run.py).
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from instraug_dsl.dataset.filters import build_pools, run_pools
from instraug_dsl.dataset.run import InstructionRow, Run, load_run
from instraug_dsl.errors import DataError

RUN = Path(__file__).parent / "fixtures" / "run_small"


@pytest.fixture(scope="module")
def run() -> Run:
    return load_run(RUN)


def _texts(run: Run) -> dict[str, str]:
    return {row.id: row.template for row in run.instructions}


def test_fixture_run_loads_with_its_plan(run: Run) -> None:
    assert run.plan is not None and run.plan.name == "small"
    assert run.dedup_threshold == 0.7
    assert run.warnings == []
    assert list(run.iat_files) == ["tests/fixtures/run_small/tasks.iat"]


def test_every_drop_has_its_reason_and_collision(run: Run) -> None:
    pools, drops = run_pools(run)
    texts = _texts(run)
    by_text = {(d.reason, d.text): d for d in drops}
    colour = "This task asks about the colour of an object shown in the picture. Question: "
    original = "In this task, you are asked the color of some object in the image. Question: "
    kept_colour = next(c for c in pools["VQA_color"].kept if c.plan.text.startswith(colour))

    exact = by_text[("exact_duplicate", colour + "{question}{options}")]
    assert exact.collided_with == kept_colour.id and exact.score == 1.0
    norm = next(d for d in drops if d.reason == "normalized_duplicate")
    assert norm.collided_with == kept_colour.id and norm.collided_text == texts[kept_colour.id]
    copy = by_text[("copy_of_original", original + "{question}{options}")]
    assert copy.collided_with == "VQA_color/i1"
    near = next(d for d in drops if d.reason == "rouge_l_near_duplicate")
    assert near.collided_with == "VQA_color/i1" and near.score is not None and 0.7 < near.score < 1
    assert near.collided_text == original + "{question}{options}"

    invalid = sorted(d.text for d in drops if d.reason == "invalid_template")
    assert invalid == [
        "Answer {{7*7}} {question}{options}",
        "Tell me {__class__} about {question}{options}",
    ]
    assert all(d.detail for d in drops if d.reason == "invalid_template")
    assert [d.task for d in drops if d.reason == "held_out_task"] == ["commonsense_VQA"]
    assert [d.task for d in drops if d.reason == "unknown_task"] == ["no_such_task"]
    assert len(drops) == 8


def test_kept_pools_and_counts(run: Run) -> None:
    pools, _ = run_pools(run)
    assert {n: len(p.kept) for n, p in pools.items() if p.kept} == {
        "VQA_color": 3,
        "image_caption": 4,
        "object_match": 1,
        "wikihow_next_step": 1,
        "select_overlap_most_region": 1,
        "VQA_positional_reasoning": 1,
    }
    assert pools["VQA_color"].accepted == 9
    assert all(len(p.originals) == 5 for p in pools.values())
    code = next(c for c in pools["VQA_color"].kept if "os.system" in c.plan.text)
    assert code.kind == "generated" and code.root == "VQA_color/i3"
    assert (
        code.metaprompt == "direct" and code.temperature == 0.6 and code.model == "offline/fixture"
    )


def test_result_does_not_depend_on_row_order(run: Run) -> None:
    baseline = build_pools(run.catalog, run.instructions, 0.7)
    rows = list(run.instructions)
    for seed in range(5):
        random.Random(seed).shuffle(rows)
        pools, drops = build_pools(run.catalog, rows, 0.7)
        assert [d.to_json() for d in drops] == [d.to_json() for d in baseline[1]]
        assert {n: [c.id for c in p.kept] for n, p in pools.items()} == {
            n: [c.id for c in p.kept] for n, p in baseline[0].items()
        }


def test_threshold_is_honoured(run: Run) -> None:
    loose = build_pools(run.catalog, run.instructions, 1.0)[0]
    strict = build_pools(run.catalog, run.instructions, 0.0)[0]
    # at 1.0 only exact/normalized copies go; at 0.0 any shared token is too close
    assert len(loose["VQA_color"].kept) == 4
    assert sum(len(p.kept) for p in strict.values()) < sum(len(p.kept) for p in loose.values())


def test_the_earlier_rewrite_wins_a_collision(run: Run) -> None:
    rows = [r for r in run.instructions if r.task == "image_caption" and r.kind == "generated"]
    twin = replace(rows[0], id="g-twin", sample=99)  # same text, sorts after the original row
    pools, drops = build_pools(run.catalog, [twin, *rows], 0.7)
    assert rows[0].id in [c.id for c in pools["image_caption"].kept]
    assert (drops[0].id, drops[0].collided_with) == ("g-twin", rows[0].id)


def test_original_rows_of_the_run_are_ignored(run: Run) -> None:
    rows = [InstructionRow("x/i0", "VQA_color", "original", "{question}{options}")]
    pools, drops = build_pools(run.catalog, rows, 0.7)
    assert drops == [] and all(not p.kept for p in pools.values())


def test_malformed_instruction_rows_name_file_line_and_field(tmp_path: Path) -> None:
    shutil.copytree(RUN, tmp_path / "run")
    path = tmp_path / "run" / "instructions.jsonl"
    lines = path.read_text().splitlines()
    bad = json.loads(lines[3])
    bad["template"] = ["not", "a", "string"]
    lines[3] = json.dumps(bad)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"instructions\.jsonl:4: field `template` must be a string"
    ):
        load_run(tmp_path / "run")
    path.write_text("{not json\n")
    with pytest.raises(DataError, match=r"instructions\.jsonl:1: not valid JSON"):
        load_run(tmp_path / "run")


def test_changed_sources_warn_and_iat_override(tmp_path: Path) -> None:
    shutil.copytree(RUN, tmp_path / "run")
    manifest = tmp_path / "run" / "compiled" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["sources"] = {"tests/fixtures/run_small/tasks.iat": "0" * 64}
    manifest.write_text(json.dumps(data))
    run = load_run(tmp_path / "run")
    assert run.warnings == [
        "tests/fixtures/run_small/tasks.iat changed since the run was compiled (sha256 differs)"
    ]
    run = load_run(tmp_path / "run", [RUN / "tasks.iat"])
    assert run.warnings == ["the --iat files differ from the sources the run was compiled from"]
    data["sources"] = {"nowhere/tasks.iat": "0" * 64}
    manifest.write_text(json.dumps(data))
    with pytest.raises(DataError, match="cannot find nowhere/tasks.iat .*with --iat PATH"):
        load_run(tmp_path / "run")


def test_manifest_plan_object_and_source_root(tmp_path: Path) -> None:
    """The compiler writes `plan` as the plan's JSON and may key sources by a common root."""
    shutil.copytree(RUN, tmp_path / "run")
    manifest = tmp_path / "run" / "compiled" / "manifest.json"
    digest = json.loads(manifest.read_text())["sources"]["tests/fixtures/run_small/tasks.iat"]
    data = {
        "plan": {"name": "small", "dedup": 0.5},
        "sources": {"tasks.iat": digest},
        "source_root": str(RUN),
    }
    manifest.write_text(json.dumps(data))
    run = load_run(tmp_path / "run")
    assert run.plan is not None and run.dedup_threshold == 0.7 and run.warnings == []
    assert run.iat_files == {"tasks.iat": digest}
    data["plan"] = {"name": "gone", "dedup": 0.5}
    manifest.write_text(json.dumps(data))
    run = load_run(tmp_path / "run")
    assert run.plan is None and run.dedup_threshold == 0.5
    assert run.warnings == ["plan 'gone' not found in the task declarations; dedup threshold 0.5"]
