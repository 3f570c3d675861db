"""``iatc stats``: per-task numbers, diversity measures and the HTML report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.dataset.report import html_report, text_table
from instraug_dsl.dataset.rouge import tokenize
from instraug_dsl.dataset.run import load_run
from instraug_dsl.dataset.stats import distinct_n, mean_pairwise_rouge_l, run_stats

RUN = Path(__file__).parent / "fixtures" / "run_small"


@pytest.fixture(scope="module")
def stats() -> dict[str, object]:
    return run_stats(load_run(RUN))


def test_per_task_numbers(stats: dict) -> None:  # type: ignore[type-arg]
    colour = stats["tasks"]["VQA_color"]
    assert colour["originals"] == 5
    assert colour["accepted"] == 9 and colour["rejected"] == 2 and colour["generated"] == 11
    assert colour["rejected_by_reason"] == {"chat_preamble": 1, "placeholders": 1}
    assert colour["deduplicated"] == {
        "copy_of_original": 1,
        "exact_duplicate": 1,
        "invalid_template": 2,
        "normalized_duplicate": 1,
        "rouge_l_near_duplicate": 1,
    }
    assert colour["kept"] == 3 and colour["expansion_factor"] == pytest.approx(0.6)
    caption = stats["tasks"]["image_caption"]
    assert caption["failed"] == 1
    assert caption["rejected_by_reason"] == {"length_ratio": 1, "no_letters": 1}
    assert stats["tasks"]["commonsense_VQA"]["deduplicated"] == {"held_out_task": 1}
    totals = stats["totals"]
    assert totals["kept"] == 11 and totals["originals"] == 65 and totals["failed"] == 1
    assert totals["rejected"] == 4 and totals["accepted"] == 18  # no_such_task not counted
    assert stats["unknown_tasks"] == {"names": ["no_such_task"], "rewrites": 1}


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


def test_text_table(stats: dict) -> None:  # type: ignore[type-arg]
    table = text_table(stats)
    assert table.splitlines()[0].split() == [
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
    assert "TOTAL" in table and "rejected by reason: chat_preamble 1" in table


def test_html_report_is_wellformed_svg_and_escaped(stats: dict) -> None:  # type: ignore[type-arg]
    evil = json.loads(json.dumps(stats))
    evil["tasks"]["<script>alert(1)</script>"] = evil["tasks"]["VQA_color"]
    page = html_report(evil)
    assert "<script>" not in page and "&lt;script&gt;" in page
    svgs = page.split("<svg")[1:]
    assert len(svgs) == 2
    for chunk in svgs:
        ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")  # well-formed XML
    assert "expansion factor per task" in page and "filtered: invalid_template" in page


def test_cli(tmp_path: Path) -> None:
    _register_commands()
    runner = CliRunner()
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["stats", str(RUN), "--html", str(report)])
    assert result.exit_code == 0, result.output
    assert "VQA_color" in result.output and report.read_text().startswith("<!DOCTYPE html>")
    result = runner.invoke(app, ["stats", str(RUN), "--format", "json"])
    assert json.loads(result.stdout)["totals"]["kept"] == 11
