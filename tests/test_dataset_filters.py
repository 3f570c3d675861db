"""Corpus filters over a run's accepted rewrites (instraug_dsl.dataset.filters).

Exactness of the ROUGE-L kernel against rouge_score is tests/test_rouge.py's job; here the
per-task pools, the reasons, the collided-with ids and the order independence are checked
on the run the real runtime writes (fixture ``run_small``, tests/run_small_support.py).
Rewrites a real run cannot hold (undeclared tasks or slots, copies of originals, held-out
tasks) reach the filters as in-memory rows, or through ``iat=`` declarations that differ
from the run's.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from run_small_support import (
    CODE,
    COLOUR,
    MODEL,
    NEAR_I1,
    NORMALIZED,
    ORIGINAL_I1,
    TASKS,
    edited_tasks,
)

from instraug_dsl.contract.codec import ContractError, encode
from instraug_dsl.contract.run import InstructionRow
from instraug_dsl.dataset.filters import build_pools, run_pools
from instraug_dsl.dataset.run import Run, load_run
from instraug_dsl.errors import DataError, IatCheckError, UsageError
from instraug_dsl.fsio import sha256_file

QO = "{question}{options}"


@pytest.fixture(scope="module")
def run(run_small: Path) -> Run:
    return load_run(run_small)


def _texts(run: Run) -> dict[str, str]:
    return {row.id: row.template for row in run.instructions}


def _generated(run: Run, task: str) -> list[InstructionRow]:
    return [r for r in run.instructions if r.task == task and r.kind == "generated"]


def test_fixture_run_loads_from_its_snapshot(run: Run) -> None:
    """The sources were deleted after the run: the declarations come from the snapshot."""
    assert run.plan is not None and run.plan.name == "small"
    assert run.dedup_threshold == 0.7
    assert run.warnings == []
    assert run.sources == {"tasks.iat": sha256_file(TASKS)}
    assert list(run.catalog.tasks)[:2] == ["VQA_color", "VQA_object_recognition"]
    kinds = Counter(r.kind for r in run.instructions)
    assert kinds == {"original": 50, "generated": 94}  # originals of the 10 training tasks
    assert {r.model for r in run.instructions if r.kind == "generated"} == {MODEL}
    # the compiler never sends a held-out task: the run has no rewrite of one
    held_out = {n for n, t in run.catalog.tasks.items() if t.split == "test"}
    assert held_out and not {r.task for r in run.instructions} & held_out


def test_every_drop_has_its_reason_and_collision(run: Run) -> None:
    pools, drops = run_pools(run)
    texts = _texts(run)
    kept_colour = next(c for c in pools["VQA_color"].kept if c.plan.text.startswith(COLOUR))
    colour = [d for d in drops if d.task == "VQA_color"]
    assert Counter(d.reason for d in colour) == {
        "exact_duplicate": 3,
        "normalized_duplicate": 2,
        "rouge_l_near_duplicate": 2,
    }

    exact = next(d for d in colour if d.text == COLOUR + QO)
    assert exact.reason == "exact_duplicate"
    assert exact.collided_with == kept_colour.id and exact.score == 1.0
    norm = next(d for d in colour if d.reason == "normalized_duplicate")
    assert norm.text == NORMALIZED + QO
    assert norm.collided_with == kept_colour.id and norm.collided_text == texts[kept_colour.id]
    near = next(d for d in colour if d.reason == "rouge_l_near_duplicate")
    assert near.text == NEAR_I1 + QO
    assert near.collided_with == "VQA_color/i1" and near.score is not None and 0.7 < near.score < 1
    assert near.collided_text == ORIGINAL_I1 + QO

    # a real run holds only rewrites its validators accepted for declared training tasks
    assert {d.reason for d in drops} == {
        "exact_duplicate",
        "normalized_duplicate",
        "rouge_l_near_duplicate",
    }
    assert all(d.collided_with and d.collided_text and d.score for d in drops)
    # the lazy "Please ..." replies are accepted by the runtime and dropped here, each as a
    # near duplicate of the original it rewrote
    rows = {r.id: r for r in run.instructions}
    lazy = [d for d in drops if d.text.startswith("Please ")]
    assert len(lazy) == 68
    assert all(d.reason == "rouge_l_near_duplicate" for d in lazy)
    assert all(d.collided_with == rows[d.id].root for d in lazy)
    assert len(drops) == 83


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
    assert pools["VQA_color"].accepted == 10
    assert all(len(p.originals) == 5 for p in pools.values())
    code = next(c for c in pools["VQA_color"].kept if "os.system" in c.plan.text)
    assert code.plan.text == CODE + "{question} {options}"
    assert code.kind == "generated" and code.root == "VQA_color/i3"
    assert code.metaprompt == "direct" and code.temperature == 0.6 and code.model == MODEL


def test_result_does_not_depend_on_row_order(run: Run) -> None:
    baseline = build_pools(run.catalog, run.instructions, 0.7)
    rows = list(run.instructions)
    for seed in range(5):
        random.Random(seed).shuffle(rows)
        pools, drops = build_pools(run.catalog, rows, 0.7)
        assert encode(drops) == encode(baseline[1])
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
    rows = _generated(run, "image_caption")
    first = rows[0]
    assert first.sample == 0
    later = replace(first, id="g-later", sample=99)  # same text, sorts after the run's row
    pools, drops = build_pools(run.catalog, [later, *rows], 0.7)
    assert first.id in [c.id for c in pools["image_caption"].kept]
    drop = next(d for d in drops if d.id == "g-later")
    assert (drop.reason, drop.collided_with) == ("exact_duplicate", first.id)
    earlier = replace(first, id="g-earlier", sample=-1)  # sorts before it
    pools, drops = build_pools(run.catalog, [*rows, earlier], 0.7)
    assert "g-earlier" in [c.id for c in pools["image_caption"].kept]
    drop = next(d for d in drops if d.id == first.id)
    assert (drop.reason, drop.collided_with) == ("exact_duplicate", "g-earlier")


def test_original_rows_of_the_run_are_ignored(run: Run) -> None:
    rows = [InstructionRow("x/i0", "VQA_color", "original", QO)]
    pools, drops = build_pools(run.catalog, rows, 0.7)
    assert drops == [] and all(not p.kept for p in pools.values())


def _row(ident: str, task: str, template: str, root: str, sample: int = 0) -> InstructionRow:
    return InstructionRow(
        ident,
        task,
        "generated",
        template,
        root=root,
        metaprompt="direct",
        temperature=0.6,
        sample=sample,
        attempt=1,
        iteration=0,
        model=MODEL,
    )


def test_rows_no_real_run_holds_are_dropped_with_reasons(run: Run) -> None:
    """Templates that must never be rendered, copies of originals, undeclared and held-out
    tasks: the runtime's validators keep them out of a run, the filters still drop them."""
    rows = [
        _row("g-class", "VQA_color", "Tell me {__class__} about " + QO, "VQA_color/i3"),
        _row("g-jinja", "VQA_color", "Answer {{7*7}} " + QO, "VQA_color/i3", 1),
        _row("g-brace", "VQA_color", "Answer {question " + QO, "VQA_color/i3", 2),
        _row("g-copy", "VQA_color", ORIGINAL_I1 + QO, "VQA_color/i1"),
        _row("g-norm", "VQA_color", ORIGINAL_I1.upper() + QO, "VQA_color/i1", 1),
        _row("g-kept", "VQA_color", COLOUR + QO, "VQA_color/i1", 2),
        _row("g-held", "commonsense_VQA", "Regions: {region_info}\n{question}", "x/i1"),
        _row("g-nobody", "no_such_task", "An instruction nobody declared.", "no_such_task/i0"),
    ]
    pools, drops = build_pools(run.catalog, rows, 0.7)
    by_id = {d.id: d for d in drops}
    assert [c.id for c in pools["VQA_color"].kept] == ["g-kept"]
    invalid = {i: d for i, d in by_id.items() if d.reason == "invalid_template"}
    assert sorted(invalid) == ["g-brace", "g-class", "g-jinja"]
    assert all(d.detail for d in invalid.values())
    assert "__class__" in invalid["g-class"].detail  # type: ignore[operator]
    assert (by_id["g-copy"].reason, by_id["g-copy"].collided_with) == (
        "copy_of_original",
        "VQA_color/i1",
    )
    assert by_id["g-norm"].reason == "copy_of_original"
    assert by_id["g-held"].reason == "held_out_task" and by_id["g-held"].detail
    assert pools["commonsense_VQA"].accepted == 1 and not pools["commonsense_VQA"].kept
    assert by_id["g-nobody"].reason == "unknown_task"
    assert by_id["g-nobody"].detail == "task `no_such_task` is not declared"
    assert drops[-1].id == "g-nobody"  # strays come last
    assert len(drops) == 7


def test_declarations_that_differ_from_the_run(run_small: Path, tmp_path: Path) -> None:
    """``iat=``: a task dropped (unknown_task), slots removed (invalid_template), a task
    held out (held_out_task), an original reworded to a kept rewrite (copy_of_original)."""
    override = edited_tasks(
        tmp_path,
        remove_tasks=("select_overlap_most_region",),
        replace={
            # object_match without region_0/region_1 (and the originals that used them)
            "  slot region_0: bbox from region[0]\n  slot region_1: bbox from region[1]\n": "",
            '  instruction i0 = "Are the object in {region_0} and object in {region_1} the same'
            ' type? " pin "{options}"\n': "",
            '  instruction i1 = "In this task you are given two objects. Each object is '
            "specified by its location in the image. One object is in {region_0} and another "
            'object is in {region_1}. Decide if two objects have the same type. " pin '
            '"{options}"\n': "",
            'category "Captioning"\n  split train': 'category "Captioning"\n  split test',
            'instruction i4 = "Answer the question: \\"{question}\\" based on the color of an '
            'object."': f'instruction i4 = "{COLOUR}{{question}}" pin "{{options}}"',
        },
    )
    run = load_run(run_small, [override])
    assert run.warnings == [
        "the --iat sources differ from those the run was compiled from (not as compiled: "
        f"{override}; compiled from but not given: tasks.iat); their declarations are used"
    ]
    pools, drops = run_pools(run)
    reasons: dict[str, Counter[str]] = {}
    for d in drops:
        reasons.setdefault(d.task, Counter())[d.reason] += 1
    assert reasons["select_overlap_most_region"] == {"unknown_task": 10}
    assert "select_overlap_most_region" not in pools
    # the kept "Are {region_0} and {region_1} ...", its duplicate, two lazy i1 rewrites
    assert reasons["object_match"]["invalid_template"] == 4
    assert not pools["object_match"].kept
    assert reasons["image_caption"] == {"held_out_task": 8}
    assert pools["image_caption"].task.split == "test" and not pools["image_caption"].kept
    # the kept colour rewrite, its exact and its normalized duplicates now copy i4
    copies = [d for d in drops if d.reason == "copy_of_original"]
    assert len(copies) == 4 and {d.collided_with for d in copies} == {"VQA_color/i4"}
    assert not any(c.plan.text.startswith(COLOUR) for c in pools["VQA_color"].kept)


def test_unchanged_iat_override_is_silent(run_small: Path) -> None:
    run = load_run(run_small, [TASKS.parent])  # a folder works too
    assert run.warnings == []
    assert [(Path(p).resolve(), h) for p, h in run.sources.items()] == [(TASKS, sha256_file(TASKS))]
    (pools, drops), (recorded, recorded_drops) = run_pools(run), run_pools(load_run(run_small))
    assert encode(drops) == encode(recorded_drops)
    assert {n: [c.id for c in p.kept] for n, p in pools.items()} == {
        n: [c.id for c in p.kept] for n, p in recorded.items()
    }


def test_plan_missing_from_the_override_uses_the_compiled_plan(
    run_small: Path, tmp_path: Path
) -> None:
    renamed = edited_tasks(tmp_path / "a", replace={"plan small {": "plan other {"})
    run = load_run(run_small, [renamed])
    assert run.plan is not None and run.plan.name == "small" and run.dedup_threshold == 0.7
    assert run.warnings[-1] == (
        "plan `small` is not declared in the --iat sources; the compiled plan's settings are used"
    )
    looser = edited_tasks(tmp_path / "b", replace={"dedup 0.7": "dedup 0.99"})
    run = load_run(run_small, [looser])
    assert run.dedup_threshold == 0.99  # the override's plan decides
    assert len(run_pools(run)[0]["VQA_color"].kept) == 4


def test_malformed_instruction_rows_name_file_line_and_field(run_small_copy: Path) -> None:
    path = run_small_copy / "instructions.jsonl"
    lines = path.read_text().splitlines()
    bad = json.loads(lines[3])
    bad["template"] = ["not", "a", "string"]
    lines[3] = json.dumps(bad)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ContractError, match=r"instructions\.jsonl:4: template: expected a string, got list"
    ):
        load_run(run_small_copy)
    path.write_text("{not json\n")
    with pytest.raises(DataError, match=r"instructions\.jsonl:1: not valid JSON"):
        load_run(run_small_copy)
    path.unlink()
    with pytest.raises(DataError, match=r"instructions\.jsonl is missing"):
        load_run(run_small_copy)


def test_damaged_run_directories_are_clear_errors(run_small_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such run directory"):
        load_run(tmp_path / "nowhere")
    catalog = run_small_copy / "compiled" / "catalog.json"
    data = json.loads(catalog.read_text())
    catalog.write_text(json.dumps({**data, "format": "iatc-catalog/0"}))
    with pytest.raises(ContractError, match=r"catalog\.json: format 'iatc-catalog/0'"):
        load_run(run_small_copy)
    catalog.unlink()
    with pytest.raises(DataError, match=r"catalog\.json: missing"):
        load_run(run_small_copy)
    with pytest.raises(IatCheckError):  # an override must check
        bad = tmp_path / "bad.iat"
        bad.write_text("task t {\n")
        load_run(run_small_copy, [bad])
    with pytest.raises(UsageError, match="--iat: no such file or directory"):
        load_run(run_small_copy, [tmp_path / "missing.iat"])
    (run_small_copy / "compiled" / "manifest.json").unlink()
    with pytest.raises(DataError, match=r"compiled/manifest\.json is missing"):
        load_run(run_small_copy)
