"""Scale-out: shards and ``iatc merge``, ``--workers``, a cache key without the address.

The promise under test: however a run is split (shards made anywhere, merged later; worker
processes sharing one cache), its files are byte-identical to one process's run of the same
command.  Shards and workers are run on real data (the MultiInstruct library, the
quickstart) through the real CLI; the judge and MIns+_Iter rounds go through a loopback
server.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cli_support import RUN_FILES, cli, same_files
from cli_support import in_process as iatc
from fakeserver import FakeServer
from test_judge import picky, sources

from instraug_dsl.commands import exitcodes
from instraug_dsl.contract.run import read_summary
from instraug_dsl.errors import UsageError
from instraug_dsl.runtime.shards import Shard, shard_of

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "templates" / "multiinstruct"
QUICKSTART = ROOT / "examples" / "quickstart"
TASKS = "GC,GC_selection,ITM"
FILES = RUN_FILES


# ------------------------------------------------------------------ shards


def test_shard_split_is_deterministic_and_parsed_strictly() -> None:
    ids = [f"req-{i}" for i in range(400)]
    parts = [[i for i in ids if Shard(k, 4).holds(i)] for k in range(1, 5)]
    assert sorted(sum(parts, [])) == sorted(ids)  # every request in exactly one shard
    assert all(60 < len(p) < 140 for p in parts)  # and roughly evenly
    assert shard_of("req-7", 4) == shard_of("req-7", 4)
    assert str(Shard.parse(" 2/8 ")) == "2/8"
    for bad, says in (
        ("2", "expected I/N"),
        ("0/3", "between 1 and N"),
        ("4/3", "between 1 and N"),
        ("a/b", "expected I/N"),
    ):
        with pytest.raises(UsageError, match=says):
            Shard.parse(bad)


def test_shards_merged_are_the_unsharded_run_byte_for_byte(tmp_path: Path) -> None:
    """MIns+_Iter (a derived round) on three MultiInstruct tasks, through the real CLI."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    common = ("--plan", "iter", "--tasks", TASKS, "--model", "offline/rules", "-q")
    done = cli("augment", LIBRARY, *common, "-o", "full", cwd=work)
    assert done.returncode == 0, done.stderr
    for i in (1, 2, 3):
        done = cli("augment", LIBRARY, *common, "--shard", f"{i}/3", "-o", f"s{i}", cwd=work)
        assert done.returncode == 0, done.stderr
        assert read_summary(work / f"s{i}" / "summary.json").selection.shard == f"{i}/3"
    # Shards go anywhere: merge them from another folder, in any order.
    for i in (1, 2, 3):
        (work / f"s{i}").rename(tmp_path / f"shard-{i}")
    done = cli("merge", "shard-3", "shard-1", "shard-2", "-o", "merged", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    full, merged = work / "full", tmp_path / "merged"
    same_files(full, merged)
    assert (merged / "compiled" / "requests.iter1.jsonl").stat().st_size > 0
    one, many = read_summary(full / "summary.json"), read_summary(merged / "summary.json")
    assert many.totals == one.totals and many.rounds == one.rounds
    assert many.outputs == one.outputs and many.selection == one.selection
    # A rewrite two shards both produced is rephrased by both in the derived round.
    assert many.run.calls_made >= one.run.calls_made
    assert many.run.merged_from == ("shard-3", "shard-1", "shard-2")
    assert not list(tmp_path.glob(".merged.merging-*"))  # the staging folder is gone


def test_judged_iterative_run_is_the_same_with_workers_and_shards(tmp_path: Path) -> None:
    """A judge (logprobs from a loopback server) and a derived round: one process, two
    worker processes, and two shards merged write the same files."""
    plan = (
        "plan judged {\n  use direct samples 2\n  iterations 1\n"
        '  model "offline/rules"\n  judge same_task\n}\n'
    )
    src = sources(tmp_path, plan)
    files = (*FILES, "judged.jsonl")
    with FakeServer(judge=picky) as srv:
        base = ("--api-base", srv.base_url, "-q")
        assert iatc("augment", src, "-o", tmp_path / "one", *base)[0] == 0
        calls = len(srv.log)
        code, out = iatc("augment", src, "-o", tmp_path / "two", "--workers", "2", *base)
        assert code == 0, out
        # Each judge call made by one worker (two that judge the same pair both ask).
        assert calls <= len(srv.log) - calls < calls + 10
        for i in (1, 2):
            code, out = iatc("augment", src, "-o", tmp_path / f"s{i}", "--shard", f"{i}/2", *base)
            assert code == 0, out
    code, out = iatc("merge", tmp_path / "s1", tmp_path / "s2", "-o", tmp_path / "merged", "-q")
    assert code == 0, out
    for other in ("two", "merged"):
        same_files(tmp_path / "one", tmp_path / other, files)
    judged = (tmp_path / "one" / "judged.jsonl").read_text()
    assert '"judged_out"' in judged and '"iteration": 1' in judged
    two = read_summary(tmp_path / "two" / "summary.json")
    one = read_summary(tmp_path / "one" / "summary.json")
    assert two.run.workers == 2 and two.judge == one.judge
    assert two.run.calls_made >= one.run.calls_made
    assert two.run.judge_calls_made >= one.run.judge_calls_made > 0


def test_workers_against_a_loopback_server_match_one_process(tmp_path: Path) -> None:
    with FakeServer(latency=0.01) as srv:
        base = ("--model", "openai/fake", "--api-base", srv.base_url, "-q")
        assert iatc("augment", QUICKSTART, "-o", tmp_path / "one", *base)[0] == 0
        code, out = iatc("augment", QUICKSTART, "-o", tmp_path / "three", "--workers", "3", *base)
        assert code == 0, out
        sent = len(srv.log)
        # A resume of the worker run makes no call and writes the same files again.
        code, out = iatc("augment", QUICKSTART, "-o", tmp_path / "three", "--workers", "3", *base)
        assert code == 0 and len(srv.log) == sent
    same_files(tmp_path / "one", tmp_path / "three")
    assert read_summary(tmp_path / "three" / "summary.json").run.calls_made == 0


def test_a_worker_that_cannot_reach_its_model_is_a_clean_error(tmp_path: Path) -> None:
    code, out = iatc(
        "augment", QUICKSTART, "-o", tmp_path / "run", "--workers", "2", "-q",
        "--model", "openai/fake", "--api-base", "http://127.0.0.1:9/v1", "--timeout", "2",
    )  # fmt: skip
    assert code == exitcodes.RUNTIME, out
    assert "Traceback" not in out and "127.0.0.1:9" in out


# ------------------------------------------------------------------ merge refusals


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Quickstart in three shards (offline model), made once for the refusal tests."""
    root = tmp_path_factory.mktemp("shards")
    for i in (1, 2, 3):
        code, out = iatc(
            "augment", QUICKSTART, "--model", "offline/rules", "-q",
            "--shard", f"{i}/3", "-o", root / f"s{i}",
        )  # fmt: skip
        assert code == 0, out
    code, out = iatc("augment", QUICKSTART, "--model", "offline/rules", "-q", "-o", root / "plain")
    assert code == 0, out
    code, out = iatc(
        "augment", QUICKSTART, "--model", "offline/rules", "-q", "--limit", "5",
        "--shard", "3/3", "-o", root / "limited",
    )  # fmt: skip
    assert code == 0, out
    return root


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (("s1", "s2"), "shards missing: 3/3 (every shard of 3 is needed)"),
        (("s1", "s2", "s2", "s3"), "are both shard 2/3"),
        (("s1", "s2", "plain"), "was not made with --shard"),
        (("s1", "s2", "limited"), "are not shards of one run: --limit 5 vs None"),
        (("s1", "s2", "nowhere"), "nowhere: no such run directory"),
    ],
)
def test_merge_refuses_what_is_not_one_run(
    shards: Path, tmp_path: Path, given: tuple[str, ...], says: str
) -> None:
    code, out = iatc("merge", *(shards / g for g in given), "-o", tmp_path / "merged")
    assert code != 0 and says in " ".join(out.split()), out
    assert "Traceback" not in out
    assert not (tmp_path / "merged").exists()


def test_merge_never_writes_over_a_folder(shards: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    code, out = iatc("merge", *(shards / f"s{i}" for i in (1, 2, 3)), "-o", tmp_path / "taken")
    assert code == exitcodes.USAGE and "choose a new -o" in out
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_a_shard_that_stopped_early_is_named_and_resumes(shards: Path, tmp_path: Path) -> None:
    import shutil

    for i in (1, 2, 3):
        shutil.copytree(shards / f"s{i}", tmp_path / f"s{i}")
    summary = json.loads((tmp_path / "s2" / "summary.json").read_text())
    db = sqlite3.connect(tmp_path / "s2" / "cache.sqlite")
    with db:
        db.execute("DELETE FROM calls WHERE rowid IN (SELECT rowid FROM calls LIMIT 3)")
    db.close()
    given = [tmp_path / f"s{i}" for i in (1, 2, 3)]
    code, out = iatc("merge", *given, "-o", tmp_path / "merged")
    text = " ".join(out.split())
    assert code == exitcodes.USAGE, out
    assert "calls are missing" in text and "from shard 2/3" in text
    assert not (tmp_path / "merged").exists()
    # Running the shard again makes only the missing calls; then the merge goes through.
    code, out = iatc(
        "augment", QUICKSTART, "--model", "offline/rules", "-q", "--shard", "2/3",
        "-o", tmp_path / "s2",
    )  # fmt: skip
    assert code == 0, out
    assert read_summary(tmp_path / "s2" / "summary.json").run.calls_made == 3
    assert summary["totals"] == json.loads((tmp_path / "s2" / "summary.json").read_text())["totals"]
    code, out = iatc("merge", *given, "-o", tmp_path / "merged", "-q")
    assert code == 0, out
    same_files(shards / "plain", tmp_path / "merged")
