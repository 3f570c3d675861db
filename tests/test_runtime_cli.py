"""``iatc augment``, ``iatc bootstrap`` and ``iatc run`` from the command line.

Most tests run the commands in-process (typer's CliRunner) against the loopback FakeServer or
the ``offline/rules`` provider; the resume test runs ``iatc augment`` as a subprocess and kills
it with SIGKILL halfway. One test (marked ``embedded`` and ``slow``) runs the README's
quickstart with the real embedded model.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_support import warm_up_litellm
from fakeserver import FakeServer
from typer.testing import CliRunner

from instraug_dsl.commands import exitcodes
from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.lang.frontend import check

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
RESULT_FILES = ("instructions.jsonl", "rejected.jsonl", "failed.jsonl")
# Faults whose retries leave the replies unchanged (content faults are per arrival order,
# which concurrency makes nondeterministic; test_engine covers them).
RETRIED_FAULTS = ("rate_limit", "server_error", "malformed_json", "truncated", "empty_choices")

_register_commands()
warm_up_litellm()
runner = CliRunner()


def iatc(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_augment_against_faulty_server_reconciles(tmp_path: Path) -> None:
    """20% faults of every kind: every compiled request is accounted for, in the files too."""
    with FakeServer(latency=0.005, fault_rate=0.2, seed=5, retry_after=0.02, hang_s=2.0) as srv:
        code, out = iatc(
            "augment",
            QUICKSTART,
            "-o",
            tmp_path / "run",
            "--model",
            "openai/fake",
            "--api-base",
            srv.base_url,
            "--timeout",
            "0.5",
            "--concurrency",
            "8",
        )
    assert code == 0, out
    s = summary(tmp_path / "run")
    t = s["totals"]
    assert t["reconciled"] and t["requests"] == s["requests_compiled"] == 42
    assert t["accepted"] + t["rejected"] + t["failed"] == 42
    assert "42 requests" in out and "accepted" in out
    instr = rows(tmp_path / "run" / "instructions.jsonl")
    generated = [r for r in instr if r["kind"] == "generated"]
    assert len(generated) == t["generated"]
    assert len(rows(tmp_path / "run" / "failed.jsonl")) == t["failed"]
    for r in generated:
        assert "__import__" not in r["template"] and "{{" not in r["template"]


def test_offline_run_writes_the_contract_files(tmp_path: Path) -> None:
    code, out = iatc("augment", QUICKSTART, "-o", tmp_path, "--model", "offline/rules", "-q")
    assert code == 0, out
    for name in (
        *RESULT_FILES,
        "summary.json",
        "cache.sqlite",
        "compiled/requests.jsonl",
        "compiled/validators.json",
        "compiled/manifest.json",
    ):
        assert (tmp_path / name).exists(), name
    manifest = json.loads((tmp_path / "compiled" / "manifest.json").read_text())
    assert manifest["plan"]["name"] == "quickstart" and manifest["sources"]
    instr = rows(tmp_path / "instructions.jsonl")
    originals = [r for r in instr if r["kind"] == "original"]
    assert len(originals) == 15 and originals[0]["id"] == "VQA_color/i0"
    gen = [r for r in instr if r["kind"] == "generated"]
    assert gen and all(r["id"].startswith("g-") for r in gen)
    assert (
        set(gen[0])
        == set(originals[0])
        == {
            "id",
            "task",
            "kind",
            "template",
            "body",
            "root",
            "parent",
            "metaprompt",
            "temperature",
            "sample",
            "attempt",
            "iteration",
            "model",
            "response_sha256",
            "request",
        }
    )
    assert gen[0]["template"].endswith("{options}")  # the pinned trail is re-attached
    s = summary(tmp_path)
    assert s["skipped"]["instructions"] == {"VQA_color/i0": "pure_placeholder"}
    assert set(s["versions"]) == {"iatc", "litellm", "python"}


def test_kill_9_and_resume_gives_identical_files(tmp_path: Path) -> None:
    """GIVEN a run killed with SIGKILL after some calls were cached
    WHEN the same command is run again
    THEN no cached call is repeated and the final files equal an uninterrupted run's."""
    with FakeServer(
        latency=0.08, fault_rate=0.1, faults=RETRIED_FAULTS, seed=2, retry_after=0.02
    ) as srv:

        def command(run_dir: Path) -> list[str]:
            return [
                sys.executable,
                "-c",
                "from instraug_dsl.commands.main import main; main()",
                "augment",
                str(QUICKSTART),
                "-o",
                str(run_dir),
                "--model",
                "openai/fake",
                "--api-base",
                srv.base_url,
                "--concurrency",
                "4",
                "-q",
            ]

        killed = tmp_path / "killed"
        proc = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cache = killed / "cache.sqlite"
        deadline = time.monotonic() + 120
        cached_at_kill = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if cache.exists():
                try:
                    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as db:
                        cached_at_kill = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
                except sqlite3.OperationalError:
                    cached_at_kill = 0
                if cached_at_kill >= 15:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (killed / "summary.json").exists()

        resumed = subprocess.run(command(killed), capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        straight = subprocess.run(
            command(tmp_path / "straight"), capture_output=True, text=True, timeout=300
        )
        assert straight.returncode == 0, straight.stderr

    for name in RESULT_FILES:
        assert (killed / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
    a, b = summary(killed), summary(tmp_path / "straight")
    assert {k: v for k, v in a.items() if k != "run"} == {k: v for k, v in b.items() if k != "run"}
    assert a["run"]["cache_hits"] >= cached_at_kill >= 15
    calls = b["run"]["calls_made"]
    assert a["run"]["calls_made"] + a["run"]["cache_hits"] == calls


def test_resume_and_fresh(tmp_path: Path) -> None:
    with FakeServer() as srv:
        args = (
            "augment",
            QUICKSTART,
            "-o",
            tmp_path,
            "--model",
            "openai/fake",
            "--api-base",
            srv.base_url,
            "--limit",
            "10",
            "-q",
        )
        assert iatc(*args)[0] == 0
        first = srv.requests
        assert iatc(*args)[0] == 0
        assert srv.requests == first  # everything from the cache
        assert summary(tmp_path)["run"]["cache_hits"] == first
        assert iatc(*args, "--fresh")[0] == 0
        assert srv.requests == 2 * first


def test_changing_the_model_misses_the_cache(tmp_path: Path) -> None:
    with FakeServer() as srv:
        base = (
            "augment",
            QUICKSTART,
            "-o",
            tmp_path,
            "--api-base",
            srv.base_url,
            "--limit",
            "4",
            "-q",
            "--model",
        )
        assert iatc(*base, "openai/fake")[0] == 0
        n = srv.requests
        assert iatc(*base, "openai/other")[0] == 0
        assert srv.requests == 2 * n


def test_dry_run_sends_nothing(tmp_path: Path) -> None:
    with FakeServer() as srv:
        code, out = iatc(
            "augment",
            QUICKSTART,
            "--dry-run",
            "--show",
            "2",
            "--model",
            "openai/fake",
            "--api-base",
            srv.base_url,
        )
        assert srv.requests == 0
    assert code == 0, out
    assert out.count("=== request") == 2
    assert "<instruction>" in out and "--- system" in out
    assert "42 requests (of 42 compiled)" in out and "nothing was sent" in out


def test_budget_refuses_to_start_above_the_estimate(tmp_path: Path) -> None:
    with FakeServer() as srv:
        code, out = iatc(
            "augment",
            QUICKSTART,
            "-o",
            tmp_path,
            "--model",
            "openai/gpt-4o-mini",
            "--api-base",
            srv.base_url,
            "--budget",
            "0.000001",
        )
        assert srv.requests == 0
    assert code == exitcodes.RUNTIME
    assert "above --budget" in out and "nothing was sent" in out


def test_budget_reached_mid_run_stops_cleanly(tmp_path: Path) -> None:
    """Long rejected replies cost far more than the estimate: the run stops at the budget."""
    long_reply = json.dumps(["word " * 300])
    with FakeServer(mode="fixed", content=long_reply) as srv:
        code, out = iatc(
            "augment",
            QUICKSTART,
            "-o",
            tmp_path,
            "--model",
            "openai/gpt-4o-mini",
            "--api-base",
            srv.base_url,
            "--budget",
            "0.005",
            "--concurrency",
            "1",
        )
    assert code == exitcodes.RUNTIME, out
    s = summary(tmp_path)
    assert s["run"]["stopped"] == "budget"
    assert s["totals"]["reconciled"] and s["totals"]["failure_kinds"].get("budget", 0) > 0
    assert "budget" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "nosuchprovider/model-x"), "unknown model or provider"),
        (("--model", "openai/gpt-4o-mini"), "missing API key"),
        (("--model", "openai/fake", "--api-base", "http://127.0.0.1:9/v1"), "cannot reach"),
    ],
)
def test_backend_problems_are_clear_runtime_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, out = iatc("augment", QUICKSTART, "-o", tmp_path, "--limit", "3", *args)
    assert code == exitcodes.RUNTIME
    assert message in out
    assert "Traceback" not in out


def test_missing_embedded_extra_is_a_clear_runtime_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from instraug_dsl.runtime import embedded

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now fails
    monkeypatch.setattr(embedded, "resolve_model_path", lambda model: tmp_path / "m.gguf")
    code, out = iatc("augment", QUICKSTART, "-o", tmp_path / "run", "--limit", "2")
    assert code == exitcodes.RUNTIME
    assert "llama-cpp-python is not installed" in out and "instraug-dsl[embedded]" in out


def test_tasks_and_limit_select_a_subset(tmp_path: Path) -> None:
    code, out = iatc(
        "augment",
        QUICKSTART,
        "-o",
        tmp_path,
        "--model",
        "offline/rules",
        "--tasks",
        "ITM",
        "--limit",
        "5",
        "-q",
    )
    assert code == 0, out
    s = summary(tmp_path)
    assert s["totals"]["requests"] == 5 and list(s["totals"]["per_task"]) == ["ITM"]
    assert s["requests_compiled"] == 42


def test_unknown_task_is_named_with_a_hint(tmp_path: Path) -> None:
    code, out = iatc(
        "augment", QUICKSTART, "-o", tmp_path, "--model", "offline/rules", "--tasks", "ITN"
    )
    assert code == exitcodes.USAGE
    assert "`ITN`" in out and "did you mean `ITM`" in out


def test_iterative_plan_rephrases_accepted_rewrites(tmp_path: Path) -> None:
    src = tmp_path / "iter.iat"
    # Imports stay inside the project (E064): the tasks are copied next to the plan;
    # the shipped templates/ library may be imported from anywhere.
    (tmp_path / "tasks.iat").write_text((QUICKSTART / "tasks.iat").read_text())
    src.write_text(
        'import "tasks.iat"\n'
        f'import "{ROOT / "templates" / "common" / "metaprompts.iat"}"\n'
        "plan it { use direct samples 1  temperature 0.5, 0.7  iterations 1  attempts 2\n"
        '          model "offline/rules" tasks ITM }\n'
    )
    code, out = iatc("augment", src, "-o", tmp_path / "run", "-q")
    assert code == 0, out
    s = summary(tmp_path / "run")
    assert s["mode"] == "multi-temperature+iterative"
    assert [r["iteration"] for r in s["rounds"]] == [0, 1]
    assert s["rounds"][0]["requests"] == 10  # 5 instructions x 2 temperatures
    assert (tmp_path / "run" / "compiled" / "requests.iter1.jsonl").exists()
    derived = {r["id"]: r for r in rows(tmp_path / "run" / "compiled" / "requests.iter1.jsonl")}
    instr = rows(tmp_path / "run" / "instructions.jsonl")
    by_id = {r["id"]: r for r in instr}
    second = [r for r in instr if r["iteration"] == 1]
    assert second
    for r in second:
        parent = by_id[r["parent"]]  # the (first) round-0 rewrite with the rephrased text
        assert parent["iteration"] == 0 and parent["kind"] == "generated"
        assert parent["body"] == derived[r["request"]]["source_body"]
        assert r["root"] == parent["root"] and r["root"] in by_id


def test_bootstrap_writes_a_checked_strategies_file(tmp_path: Path) -> None:
    reply = 'Here you go:\n1. Use synonyms.\n2. Reorder the clauses.\n3. Say "it" plainly.\n'
    out_file = tmp_path / "boot.iat"
    with FakeServer(mode="fixed", content=reply) as srv:
        args = (
            "bootstrap",
            ROOT / "templates" / "common",
            "--prompt",
            "rewrite_strategies",
            "--model",
            "openai/fake",
            "--api-base",
            srv.base_url,
            "-n",
            "3",
            "-o",
            out_file,
            "--name",
            "mine",
        )
        code, out = iatc(*args)
        assert code == 0, out
        assert srv.requests == 1
        assert iatc(*args)[0] == 0
        assert srv.requests == 1  # the raw answer is cached next to the file
    assert check([out_file]).ok
    text = out_file.read_text()
    assert "strategies mine {" in text and 's3: "Say \\"it\\" plainly."' in text
    raw = json.loads((tmp_path / "boot.iat.raw.json").read_text())
    assert raw["answer"] == reply


def test_bootstrap_unusable_answer_is_a_clear_error(tmp_path: Path) -> None:
    with FakeServer(mode="fixed", content="I would rather not.") as srv:
        code, out = iatc(
            "bootstrap",
            ROOT / "templates" / "common",
            "--prompt",
            "rewrite_strategies",
            "--model",
            "openai/fake",
            "--api-base",
            srv.base_url,
            "-o",
            tmp_path / "b.iat",
        )
    assert code == exitcodes.RUNTIME
    assert "no usable strategies" in out and not (tmp_path / "b.iat").exists()


def test_run_augments_then_materializes(tmp_path: Path) -> None:
    code, out = iatc("run", QUICKSTART, "-o", tmp_path, "--model", "offline/rules", "-q")
    assert code == 0, out
    assert summary(tmp_path / "run")["totals"]["reconciled"]
    train = rows(tmp_path / "data" / "train.jsonl")
    assert len(train) == 5  # one row per instance of the three tasks
    assert (tmp_path / "data" / "manifest.json").exists()


@pytest.mark.slow
@pytest.mark.embedded
def test_quickstart_end_to_end_with_the_embedded_model(tmp_path: Path) -> None:
    """The README's main command, with the real embedded model (needs the [embedded] extra)."""
    pytest.importorskip("llama_cpp")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from instraug_dsl.commands.main import main; main()",
            "run",
            str(QUICKSTART),
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    s = summary(tmp_path / "run")
    assert s["model"] == "embedded/qwen-0.5b"
    assert s["totals"]["reconciled"] and s["totals"]["requests"] == 42
    assert s["totals"]["accepted"] > 0
    assert rows(tmp_path / "data" / "train.jsonl")
