"""The paper's job end to end, as a new user runs it: the real CLI, from outside the checkout.

GIVEN the shipped MultiInstruct library copied to a scratch folder and the 70 MultiInstruct
samples preceded by 30,000 instances of tasks without rewrites (their provenance columns
are null), WHEN a user compiles and augments with no --plan (the library's default plan),
moves the run directory elsewhere, deletes the sources, and materializes and inspects it
from yet another working directory, THEN every stage works with no extra flag, and both
outputs load with HF ``datasets``.  The same flow runs through the Python API inside a
running event loop (and inside a real Jupyter kernel, in test_notebook.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from cli_support import cli as iatc
from cli_support import ok

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "examples" / "multiinstruct" / "samples.jsonl"
NO_REWRITES = ("VQA", "open-domain_VQA")  # `augment false` in the library
LEADING_ROWS = 30_000

pytestmark = pytest.mark.slow


def write_instances(path: Path) -> int:
    """30,000 rows of tasks without rewrites first, then the 70 real samples."""
    samples = [json.loads(line) for line in SAMPLES.read_text(encoding="utf-8").splitlines()]
    plain = [s for s in samples if s["task_name"] in NO_REWRITES]
    with path.open("w", encoding="utf-8") as out:
        for i in range(LEADING_ROWS):
            record = dict(plain[i % len(plain)], unique_id=f"lead-{i}")
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        for record in samples:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return LEADING_ROWS + len(samples)


def load_both(folder: Path, cache: Path) -> dict[str, int]:
    """Load a dataset folder with HF datasets (its card declares splits and features)."""
    import datasets

    loaded = datasets.load_dataset(str(folder), cache_dir=str(cache))
    train = loaded["train"]
    assert train.features["temperature"].dtype == "float64"
    assert train.features["metaprompt"].dtype == "string"
    # the early rows are null in the provenance columns, later ones are not
    assert train[0]["metaprompt"] is None
    assert any(m is not None for m in train["metaprompt"][-70:])
    return {split: loaded[split].num_rows for split in loaded}


def test_the_paper_flow_from_a_folder_outside_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    home = tmp_path / "home"  # where the user works: no checkout above it
    home.mkdir()
    assert REPO not in home.resolve().parents
    src = home / "lib"
    shutil.copytree(REPO / "templates", src)
    library = src / "multiinstruct"

    # compile: the library's default plan is the paper's single run
    out = ok(iatc("compile", library, "-o", "compiled", cwd=home))
    assert "compiled plan `paper`: 2970 requests" in out

    # augment, no --plan: the same default
    out = ok(iatc("augment", library, "--model", "offline/rules", "-o", "mi-run", "-q", cwd=home))
    summary = json.loads((home / "mi-run" / "summary.json").read_text(encoding="utf-8"))
    assert summary["plan"] == "paper" and summary["totals"]["requests"] == 2970
    assert summary["totals"]["reconciled"]

    # the run directory moves to another machine; the sources are gone
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(str(home / "mi-run"), str(elsewhere / "moved-run"))
    shutil.rmtree(src)
    instances = elsewhere / "instances.jsonl"
    total = write_instances(instances)

    # materialize and stats from yet another working directory
    work = tmp_path / "work"
    work.mkdir()
    run = elsewhere / "moved-run"
    out = ok(iatc("materialize", run, "--instances", instances, "-o", "mins", cwd=work))
    assert "wrote" in out and "rows to" in out
    ok(
        iatc(
            "materialize",
            run,
            "--instances",
            instances,
            "-o",
            "mins-pq",
            "--format",
            "parquet",
            cwd=work,
        )
    )
    out = ok(iatc("stats", run, "--html", "report.html", cwd=work))
    assert "TOTAL" in out
    html = (work / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html

    manifest = json.loads((work / "mins" / "manifest.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    assert manifest["inputs"]["instances"]["lines"] == total
    assert counts["written"] >= LEADING_ROWS and counts["errors"] == 0
    assert counts["generated"] > 0  # rewrites reached training rows
    assert counts["test_written"] > 0  # the held-out tasks, original instructions only

    sizes = load_both(work / "mins", tmp_path / "hf-cache-jsonl")
    assert sizes["train"] == counts["written"] and sizes["test"] == counts["test_written"]
    assert load_both(work / "mins-pq", tmp_path / "hf-cache-parquet") == sizes

    # the held-out split holds original instructions only
    test_rows = [
        json.loads(line)
        for line in (work / "mins" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert test_rows and {r["instruction_kind"] for r in test_rows} == {"original"}


def test_the_python_api_inside_a_running_event_loop(tmp_path: Path) -> None:
    """The staged API in an async program: the async variant awaits in the loop, the plain
    variant (what a notebook user calls first) works there too."""
    import instraug_dsl as iat

    library = REPO / "templates" / "multiinstruct"
    instances = tmp_path / "instances.jsonl"
    shutil.copy(SAMPLES, instances)

    async def main() -> tuple[int, int, int]:
        backend = iat.Backend(model="offline/rules")
        first = await iat.augment_async(
            [library], tmp_path / "run-a", backend=backend, tasks=["ITM", "VQA_color"]
        )
        second = iat.augment(  # a plain call inside the running loop
            [library], tmp_path / "run-b", backend=backend, tasks=["ITM", "VQA_color"]
        )
        data = iat.materialize(tmp_path / "run-a", instances, tmp_path / "data")
        stats = iat.stats(tmp_path / "run-a")
        assert stats.totals.kept > 0
        return (
            first.summary.totals.requests,
            second.summary.totals.requests,
            (data.manifest.counts.written),
        )

    a, b, written = asyncio.run(main())
    assert a == b == 90  # 9 paraphrasable instructions x 10 requests of the paper plan
    assert written > 0
    a_rows = (tmp_path / "run-a" / "instructions.jsonl").read_bytes()
    assert a_rows == (tmp_path / "run-b" / "instructions.jsonl").read_bytes()
