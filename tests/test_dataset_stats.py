"""``iatc stats``: per-task numbers, diversity measures and the HTML report.

The numbers are those of the run the real runtime writes (fixture ``run_small``,
tests/run_small_support.py): ``rejected`` counts the rejected replies of
``rejected.jsonl`` (every attempt), ``accepted`` the rewrites of ``instructions.jsonl``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from run_small_support import edited_tasks
from typer.testing import CliRunner

from instraug_dsl import api
from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.contract.codec import encode
from instraug_dsl.contract.run import read_summary
from instraug_dsl.dataset.report import html_report, text_table
from instraug_dsl.dataset.rouge import tokenize
from instraug_dsl.dataset.stats import RunStats, distinct_n, mean_pairwise_rouge_l


@pytest.fixture(scope="module")
def stats(run_small: Path) -> RunStats:
    return api.stats(run_small)


def test_per_task_numbers(stats: RunStats) -> None:
    colour = stats.tasks["VQA_color"]
    assert colour.split == "train" and colour.augment and colour.originals == 5
    assert colour.accepted == 10 and colour.rejected == 10 and colour.generated == 20
    assert colour.rejected_by_reason == {
        "answer": 4,
        "foreign_token": 2,
        "identical_source": 2,
        "preamble": 2,
        "token_altered": 2,
    }
    assert colour.deduplicated == {
        "exact_duplicate": 3,
        "normalized_duplicate": 2,
        "rouge_l_near_duplicate": 2,
    }
    assert colour.kept == 3 and colour.expansion_factor == pytest.approx(0.6)
    assert colour.distinct_1 == pytest.approx(30 / 41)
    assert colour.distinct_2 == pytest.approx(37 / 38)
    assert colour.mean_pairwise_rouge_l is not None and 0 < colour.mean_pairwise_rouge_l < 0.7
    caption = stats.tasks["image_caption"]
    assert caption.failed == 2 and caption.kept == 4
    assert caption.rejected_by_reason == {"answer": 6, "length_ratio": 6}
    assert caption.deduplicated == {"exact_duplicate": 4}
    # an empty reply, fixed on the re-ask: a rejected reply of an accepted request
    assert stats.tasks["object_match"].rejected_by_reason == {"unparseable": 2}
    # a task whose rewrites were all dropped, a held-out task (never augmented)
    lazy = stats.tasks["text_legibility"]
    assert (lazy.accepted, lazy.kept, lazy.expansion_factor) == (10, 0, 0.0)
    assert lazy.deduplicated == {"rouge_l_near_duplicate": 10} and lazy.distinct_1 is None
    held_out = stats.tasks["commonsense_VQA"]
    assert held_out.split == "test" and held_out.generated == 0 and held_out.deduplicated == {}
    totals = stats.totals
    assert totals.tasks == 13 and totals.kept == 11 and totals.originals == 65
    assert totals.failed == 2 and totals.rejected == 18 and totals.accepted == 94
    assert totals.generated == 112
    assert totals.deduplicated == {
        "exact_duplicate": 11,
        "normalized_duplicate": 2,
        "rouge_l_near_duplicate": 70,
    }
    assert totals.expansion_factor == pytest.approx(11 / 65)
    assert encode(stats.unknown_tasks) == {"names": [], "rewrites": 0}
    assert stats.plan == "small" and stats.dedup_threshold == 0.7 and stats.warnings == ()


def test_numbers_agree_with_the_run_summary(run_small: Path, stats: RunStats) -> None:
    summary = read_summary(run_small / "summary.json")
    assert stats.totals.accepted == summary.totals.generated == summary.outputs.generated
    assert stats.totals.failed == summary.totals.failed == summary.outputs.failed_rows
    assert stats.totals.rejected == summary.outputs.rejected_rows
    for name, tally in summary.totals.per_task.items():
        assert stats.tasks[name].accepted == tally.generated
        assert stats.tasks[name].failed == tally.failed


def test_tasks_the_override_does_not_declare(run_small: Path, tmp_path: Path) -> None:
    override = edited_tasks(tmp_path, remove_tasks=("select_overlap_most_region", "object_match"))
    stats = api.stats(run_small, iat=str(override))  # one path, or a list of them
    assert encode(stats) == encode(api.stats(run_small, iat=[override]))
    assert stats.unknown_tasks.names == ("object_match", "select_overlap_most_region")
    assert stats.unknown_tasks.rewrites == 20
    assert "object_match" not in stats.tasks and stats.totals.kept == 9
    assert "differ from those the run was compiled from" in stats.warnings[0]


def test_diversity_measures() -> None:
    texts = [tokenize(t) for t in ("a b c", "a b d", "x y")]
    assert distinct_n(texts, 1) == pytest.approx(6 / 8)
    assert distinct_n(texts, 2) == pytest.approx(4 / 5)
    assert distinct_n([], 1) is None
    rouge = pytest.importorskip("rouge_score.rouge_scorer").RougeScorer(["rougeL"])
    pairs = [("a b c", "a b d"), ("a b c", "x y"), ("a b d", "x y")]
    expected = sum(rouge.score(a, b)["rougeL"].fmeasure for a, b in pairs) / 3
    assert mean_pairwise_rouge_l(texts) == pytest.approx(expected)
    assert mean_pairwise_rouge_l(texts[:1]) is None
    many = [tokenize(f"word{i % 7} common text {i}") for i in range(300)]  # > MAX_PAIRS pairs
    assert mean_pairwise_rouge_l(many) == mean_pairwise_rouge_l(many)  # seeded estimate


def test_text_table(stats: RunStats) -> None:
    table = text_table(stats)
    lines = table.splitlines()
    assert lines[0].split() == [
        "task",
        "split",
        "orig",
        "gen",
        "acc",
        "rej",
        "dedup",
        "kept",
        "exp",
        "dist-2",
        "rougeL",
    ]
    colour = next(line for line in lines if line.startswith("VQA_color "))
    assert colour.split()[:9] == ["VQA_color", "train", "5", "20", "10", "10", "7", "3", "0.60"]
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert total.split() == ["TOTAL", "65", "112", "94", "18", "83", "11", "0.17"]
    assert "rejected by reason: answer 10, foreign_token 2" in table
    assert "filtered by reason: exact_duplicate 11, normalized_duplicate 2" in table


def test_html_report_is_wellformed_svg_and_escaped(stats: RunStats) -> None:
    evil = replace(
        stats,
        tasks={**stats.tasks, "<script>alert(1)</script>": stats.tasks["VQA_color"]},
        warnings=("<b>careful</b>",),
    )
    page = html_report(evil)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>" not in page and "&lt;b&gt;careful&lt;/b&gt;" in page
    svgs = page.split("<svg")[1:]
    assert len(svgs) == 2
    for chunk in svgs:
        ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")  # well-formed XML
    assert "expansion factor per task" in page and "filtered: rouge_l_near_duplicate" in page
    assert "rejected: token_altered" in page


def test_cli(run_small: Path, tmp_path: Path) -> None:
    _register_commands()
    runner = CliRunner()
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["stats", str(run_small), "--html", str(report)])
    assert result.exit_code == 0, result.output
    assert "VQA_color" in result.output and report.read_text().startswith("<!DOCTYPE html>")
    result = runner.invoke(app, ["stats", str(run_small), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["totals"]["kept"] == 11
    assert data == encode(api.stats(run_small))
    result = runner.invoke(app, ["stats", str(tmp_path)])
    assert result.exit_code == 2 and "compiled/manifest.json" in result.output
    result = runner.invoke(app, ["stats", str(run_small), "--format", "yaml"])
    assert result.exit_code == 2 and "--format must be `text` or `json`" in result.output


def test_html_never_replaces_a_file_that_is_not_a_report(run_small: Path, tmp_path: Path) -> None:
    """A report is rewritten in place; someone else's file needs --force."""
    _register_commands()
    runner = CliRunner()
    report = tmp_path / "report.html"
    for _ in range(2):  # the second run replaces its own report
        result = runner.invoke(app, ["stats", str(run_small), "--html", str(report)])
        assert result.exit_code == 0, result.output
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    result = runner.invoke(app, ["stats", str(run_small), "--html", str(mine)])
    assert result.exit_code == 2
    assert f"--html {mine} exists and is not a report of `iatc stats`" in result.output
    assert mine.read_text() == "<p>my notes</p>"
    result = runner.invoke(app, ["stats", str(run_small), "--html", str(mine), "--force"])
    assert result.exit_code == 0 and mine.read_text().startswith("<!DOCTYPE html>")
