"""``--executor ray``: augment parts as Ray tasks, materialize with Ray Data.

The promise under test: the Ray executor writes what one local process writes.  For
``augment`` the files are byte-identical (a MIns+_Iter plan with a judge, through the real
CLI from a folder outside the checkout, against the loopback server), and a resumed run
sends nothing.  For ``materialize`` (the 70 real MultiInstruct samples, with bad lines
added, on a real run of the MultiInstruct library) the rows are the same set, the errors
file the same bytes and the counts the same.

One local Ray instance serves the module: started here with the executor's own session
helper (2 CPUs, a 150 MB object store, no dashboard) and stopped at the end; the CLI
subprocesses connect to it with ``--ray-address``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli, same_files
from cli_support import in_process as iatc
from fakeserver import FakeServer
from test_judge import picky, sources

from instraug_dsl import api
from instraug_dsl.commands import exitcodes
from instraug_dsl.contract.dataset import MaterializeOptions
from instraug_dsl.contract.run import read_summary
from instraug_dsl.errors import RecordError

if os.environ.get("CI", "").lower() != "true":
    pytest.importorskip("ray")  # CI installs the [ray] extra (in `test`): never skipped there

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "templates" / "multiinstruct"
QUICKSTART = ROOT / "examples" / "quickstart"
SAMPLES = ROOT / "examples" / "multiinstruct" / "samples.jsonl"
FILES = ("instructions.jsonl", "rejected.jsonl", "failed.jsonl", "judged.jsonl")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray instance for the module; yields its address."""
    from instraug_dsl.cluster import ray_session

    with ExitStack() as stack:
        ray = stack.enter_context(ray_session(None, cpus=2, object_store_mb=150))
        yield str(ray.get_runtime_context().gcs_address)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("augment", QUICKSTART, "-o", "run", "--executor", "dask"), "--executor must be"),
        (("augment", QUICKSTART, "-o", "run", "--ray-address", "auto"), "goes with --executor"),
        (
            ("materialize", "run", "--instances", SAMPLES, "-o", "d", "--executor", "ray",
             "--format", "jsonl"),
            "--executor ray writes Parquet shards",
        ),
    ],
)  # fmt: skip
def test_executor_flags_are_checked_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[object, ...], says: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if args[0] == "materialize":
        assert iatc("augment", QUICKSTART, "--model", "offline/rules", "-q", "-o", "run")[0] == 0
    code, out = iatc(*args)
    assert code == exitcodes.USAGE and says in " ".join(out.split()), out
    assert not (tmp_path / "d").exists()


def test_an_unreachable_cluster_is_a_clean_error_at_once(tmp_path: Path) -> None:
    code, out = iatc(
        "augment", QUICKSTART, "-o", tmp_path / "run", "--model", "offline/rules", "-q",
        "--executor", "ray", "--ray-address", "127.0.0.1:9",
    )  # fmt: skip
    assert code == exitcodes.RUNTIME, out
    assert "cannot connect to the Ray cluster at 127.0.0.1:9" in " ".join(out.split())


def test_augment_on_ray_writes_the_files_of_one_process(cluster: str, tmp_path: Path) -> None:
    """MIns+_Iter with a judge: generation offline, the judge's log-probabilities from the
    loopback server; the Ray run from another folder through the real CLI."""
    plan = (
        "plan judged {\n  use direct samples 2\n  iterations 1\n"
        '  model "offline/rules"\n  judge same_task\n}\n'
    )
    src = sources(tmp_path, plan)
    work = tmp_path / "elsewhere"
    work.mkdir()
    with FakeServer(judge=picky) as srv:
        base = ("--api-base", srv.base_url, "-q")
        assert iatc("augment", src, "-o", tmp_path / "one", *base)[0] == 0
        alone = len(srv.log)
        ray = ("--executor", "ray", "--ray-address", cluster, "--workers", "2")
        done = cli("augment", src, "-o", "ray", *ray, *base, cwd=work)
        assert done.returncode == 0, done.stderr
        made = len(srv.log) - alone
        # Each judge call made by one task (two tasks that judge the same pair both ask).
        assert alone <= made < alone + 10
        # A resume ships the run's cache to the tasks: nothing is sent again.
        done = cli("augment", src, "-o", "ray", *ray, *base, cwd=work)
        assert done.returncode == 0, done.stderr
        assert len(srv.log) == alone + made
    one, many = tmp_path / "one", work / "ray"
    same_files(one, many, FILES)
    judged = (one / "judged.jsonl").read_text()
    assert '"judged_out"' in judged and '"iteration": 1' in judged
    first, again = read_summary(one / "summary.json"), read_summary(many / "summary.json")
    assert again.totals == first.totals and again.judge == first.judge
    assert again.run.executor == "ray" and again.run.workers == 2
    assert again.run.calls_made == 0 and again.run.judge_calls_made == 0
    assert not list(many.glob("*.sqlite.*"))  # nothing but the run's own cache


def test_a_ray_task_that_cannot_reach_its_model_is_a_clean_error(
    cluster: str, tmp_path: Path
) -> None:
    code, out = iatc(
        "augment", QUICKSTART, "-o", tmp_path / "run", "--executor", "ray", "-q",
        "--model", "openai/fake", "--api-base", "http://127.0.0.1:9/v1", "--timeout", "2",
    )  # fmt: skip
    assert code == exitcodes.RUNTIME, out
    assert "Traceback" not in out and "127.0.0.1:9" in out


# ------------------------------------------------------------------ materialize


def _instances(path: Path) -> Path:
    """The 70 samples with a blank line, a bad line, an unmatched record and a record that
    cannot be rendered mixed in."""
    lines = SAMPLES.read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[3])
    broken = {"task_name": broken["task_name"], "unique_id": "broken-1"}
    extra = {
        10: "",
        20: "{not json",
        30: json.dumps({"task_name": "no_such_task", "unique_id": "x"}),
        40: json.dumps(broken),
    }
    out = []
    for i, line in enumerate(lines):
        if i in extra:
            out.append(extra[i])
        out.append(line)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def _rows(table: Any) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True) for row in table.to_pylist())


def test_materialize_on_ray_makes_the_rows_of_the_local_executor(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    from instraug_dsl.dataset import ray_executor

    run = tmp_path / "run"
    offline = api.Backend(model="offline/rules")
    assert api.augment([LIBRARY], run, backend=offline, limit=400).summary.totals.generated
    instances = _instances(tmp_path / "instances.jsonl")
    monkeypatch.setattr(ray_executor, "PART_BYTES", 8192)  # several reading tasks
    options = MaterializeOptions(format="parquet", raw_share=0.3)
    local = api.materialize(run, instances, tmp_path / "local", options=options).manifest
    on_ray = api.materialize(
        run, instances, tmp_path / "ray", options=options, executor="ray"
    ).manifest
    for split in ("train", "test"):
        one = pq.read_table(tmp_path / "local" / f"{split}.parquet")
        shards = sorted((tmp_path / "ray" / split).iterdir())
        assert [p.name for p in shards][:1] == ["part-00000.parquet"]
        many = pq.read_table(tmp_path / "ray" / split)
        assert many.schema.equals(one.schema), split
        assert _rows(many) == _rows(one), split
    for name in ("errors.jsonl", "dropped.jsonl"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()
    assert local.counts == on_ray.counts and local.tasks == on_ray.tasks
    assert local.counts.errors == 2 and local.counts.unmatched == 1
    assert local.counts.generated > 0 and local.counts.test_written > 0
    assert local.inputs == on_ray.inputs and local.warnings == on_ray.warnings
    assert on_ray.outputs.shards is not None
    assert set(on_ray.outputs.shards["train"]) == {
        f"train/{p.name}" for p in (tmp_path / "ray" / "train").iterdir()
    }
    card = (tmp_path / "ray" / "README.md").read_text()
    assert "path: train/*.parquet" in card and "path: test/*.parquet" in card
    # --strict stops at the same record, with the same message.
    strict = MaterializeOptions(format="parquet", strict=True)
    messages = []
    for executor, out in (("local", "strict-local"), ("ray", "strict-ray")):
        with pytest.raises(RecordError) as caught:
            api.materialize(run, instances, tmp_path / out, options=strict, executor=executor)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and ":22:" in messages[0]
    assert not (tmp_path / "strict-ray").exists()
