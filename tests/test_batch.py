"""Batch files: ``iatc compile --format openai-batch`` and ``iatc augment --from-batch``.

The promise under test: a run made in batch rounds (the first calls as an OpenAI Batch input
file, the results ingested, the calls still missing written as the next round, ... until none
is missing) writes the same files, byte for byte, as a direct run against a model that
answers the same (``--constrain off``: a batch body carries no constraint).  The batch API is
faked: every line's body is POSTed to the loopback FakeServer and its reply written as an
OpenAI batch output line.  Error lines go to the next round; malformed lines stop the ingest
with ``file:line`` and the field; results of no call of the run are reported; ingesting the
same results again changes nothing.
"""

from __future__ import annotations

import json
import urllib.request
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cli_support import RUN_FILES, cli, same_files
from cli_support import in_process as iatc
from fakeserver import FakeServer
from test_judge import picky, sources

from instraug_dsl.commands import exitcodes
from instraug_dsl.contract.run import read_summary
from instraug_dsl.runtime import offline
from instraug_dsl.runtime.batch import (
    BatchCall,
    batch_line,
    provider_model,
    read_results,
)
from instraug_dsl.runtime.llm import LLMCall

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
FILES = RUN_FILES


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def answer(
    batch: Path,
    results: Path,
    server: FakeServer,
    *,
    errors: Mapping[int, dict[str, Any]] | None = None,
) -> list[str]:
    """A fake batch API: each line's body POSTed to the loopback server, its reply written as
    an OpenAI batch output line (line ``n`` in ``errors`` gets that line instead, with its
    custom_id).  Returns the custom_ids in order."""
    out, ids = [], []
    for n, request in enumerate(lines(batch)):
        assert request["method"] == "POST" and request["url"] == "/v1/chat/completions"
        ids.append(request["custom_id"])
        if errors and n in errors:
            out.append({"id": f"batch_req_{n}", "custom_id": request["custom_id"], **errors[n]})
            continue
        sent = urllib.request.Request(
            server.base_url + "/chat/completions",
            data=json.dumps(request["body"]).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(sent, timeout=30) as reply:  # loopback only
            body = json.loads(reply.read())
        response = {"status_code": 200, "request_id": f"req_{n}", "body": body}
        out.append(
            {"id": f"batch_req_{n}", "custom_id": request["custom_id"], "response": response}
            | {"error": None}
        )
    results.write_text("".join(json.dumps(o) + "\n" for o in reversed(out)))  # any order
    return ids


def script(instruction: str, reask: str | None) -> str:
    """A model that answers a third of the first attempts with nothing (a re-ask follows),
    deterministically: the same reply whenever and however it is asked."""
    if reask is None and zlib.crc32(instruction.encode()) % 3 == 0:
        return ""
    return json.dumps([offline.rewrite(instruction, 7)])


ITER_JUDGED = (
    "plan judged {\n  use direct samples 2\n  iterations 1\n"
    '  model "openai/fake"\n  judge same_task\n}\n'
)


# ------------------------------------------------------------------ the round trip


def test_batch_rounds_write_the_direct_run_byte_for_byte(tmp_path: Path) -> None:
    """Re-asks, a derived round (MIns+_Iter) and a judge on log-probabilities, in batch
    rounds through the real CLI: the same files as a direct run, then an idempotent
    re-ingest."""
    src = sources(tmp_path, ITER_JUDGED)
    work = tmp_path / "elsewhere"
    work.mkdir()
    with FakeServer(mode="scripted", reply=script, judge=picky) as srv:
        done = cli(
            "augment", src, "-o", "direct", "--api-base", srv.base_url, "--constrain", "off", "-q",
            cwd=work,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        direct_calls = len(srv.log)

        done = cli("compile", src, "--format", "openai-batch", "-o", "round-1.jsonl", cwd=work)
        assert done.returncode == 0, done.stderr
        assert "wrote 28 calls of plan `judged` for openai/fake -> round-1.jsonl" in done.stdout
        first = lines(work / "round-1.jsonl")
        assert [sorted(line) for line in first[:1]] == [["body", "custom_id", "method", "url"]]
        assert first[0]["body"]["model"] == "fake"
        assert set(first[0]["body"]) == {
            "max_tokens", "messages", "model", "seed", "temperature", "top_p",
        }  # fmt: skip

        batch, said, results = work / "round-1.jsonl", [], []
        for k in range(1, 10):
            results.append(work / f"results-{k}.jsonl")
            answer(batch, results[-1], srv)
            done = cli(
                "augment", src, "-o", "run", "-q", "--from-batch", results[-1], cwd=work
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            said.append(done.stdout.strip())
            if "is complete" in done.stdout:
                break
            batch = work / done.stdout.strip().rsplit(": ", 1)[1]
            assert batch == work / "run" / "batch" / f"round-{k + 1}.jsonl"
        else:
            pytest.fail(f"no end in sight: {said}")
        assert len(srv.log) - direct_calls == direct_calls  # every call once, both ways
    assert k >= 3, said
    assert said[0] == (
        "batch: 28 results ingested; 21 calls (7 of the judge) wait for the next batch: "
        "run/batch/round-2.jsonl"
    )
    assert said[-1].endswith("no call is missing: run is complete")
    judge_lines = [
        line
        for path in sorted((work / "run" / "batch").iterdir())
        for line in lines(path)
        if line["body"].get("logprobs")
    ]
    assert judge_lines and all(line["body"]["top_logprobs"] == 5 for line in judge_lines)
    assert all(line["body"]["temperature"] == 0.0 for line in judge_lines)

    direct, run = work / "direct", work / "run"
    same_files(direct, run, (*FILES, "judged.jsonl"))
    assert '"judged_out"' in (run / "judged.jsonl").read_text()
    assert (run / "rejected.jsonl").stat().st_size > 0  # re-asks happened
    assert (run / "compiled" / "requests.iter1.jsonl").stat().st_size > 0
    one, other = read_summary(direct / "summary.json"), read_summary(run / "summary.json")
    assert one.totals == other.totals and one.rounds == other.rounds
    assert one.judge == other.judge

    # The same results again (all of them at once): nothing changes, no new round.
    rounds = sorted((run / "batch").iterdir())
    before = {name: (run / name).read_bytes() for name in (*FILES, "judged.jsonl")}
    done = cli(
        "augment", src, "-o", "run", "-q", *(a for r in results for a in ("--from-batch", r)),
        cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "batch: 0 results ingested; no call is missing: run is complete"
    assert "warning" not in done.stderr
    assert {name: (run / name).read_bytes() for name in before} == before
    assert sorted((run / "batch").iterdir()) == rounds


# ------------------------------------------------------------------ error lines


def test_error_lines_stay_missing_and_go_to_the_next_round(tmp_path: Path) -> None:
    src = QUICKSTART
    model = ("--model", "openai/fake")
    first, results = tmp_path / "round-1.jsonl", tmp_path / "results.jsonl"
    assert iatc("compile", src, "--format", "openai-batch", *model, "-o", first)[0] == 0
    errors = {
        3: {"response": None, "error": {"code": "server_error", "message": "the server broke"}},
        5: {
            "response": {
                "status_code": 429,
                "request_id": "r5",
                "body": {"error": {"message": "Rate limit reached", "type": "rate_limit"}},
            },
            "error": None,
        },
        8: {  # vLLM run-batch writes its errors as text
            "response": {"status_code": 400, "request_id": "r8", "body": None},
            "error": "context length exceeded",
        },
    }
    with FakeServer() as srv:
        ids = answer(first, results, srv, errors=errors)
        code, out = iatc(
            "augment", src, *model, "-o", tmp_path / "run", "-q", "--from-batch", results
        )
        assert code == 0, out
        assert "warning: 3 results are errors; their calls go to the next batch: " in out
        assert f"{results}:" in out and f"custom_id {ids[5]}: HTTP 429: Rate limit reached" in out
        assert f"custom_id {ids[3]}: server_error: the server broke" in out
        assert f"custom_id {ids[8]}: context length exceeded" in out
        nxt = tmp_path / "run" / "batch" / "round-2.jsonl"
        assert f"batch: 39 results ingested; 3 calls wait for the next batch: {nxt}" in out
        assert [line["custom_id"] for line in lines(nxt)] == [ids[3], ids[5], ids[8]]
        failed = lines(tmp_path / "run" / "failed.jsonl")
        assert [row["kind"] for row in failed] == ["missing"] * 3
        summary = read_summary(tmp_path / "run" / "summary.json")
        assert summary.totals.failure_kinds == {"missing": 3}

        answer(nxt, tmp_path / "results-2.jsonl", srv)
        code, out = iatc(
            "augment", src, *model, "-o", tmp_path / "run", "-q",
            "--from-batch", tmp_path / "results-2.jsonl",
        )  # fmt: skip
        assert code == 0, out
        assert "batch: 3 results ingested; no call is missing" in out
        assert (tmp_path / "run" / "failed.jsonl").read_text() == ""
        code, out = iatc(
            "augment", src, *model, "-o", tmp_path / "direct", "-q",
            "--api-base", srv.base_url, "--constrain", "off",
        )  # fmt: skip
        assert code == 0, out
    same_files(tmp_path / "direct", tmp_path / "run")


# ------------------------------------------------------------------ malformed lines


def _ok(custom_id: str = "k1", **body: Any) -> dict[str, Any]:
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": '["x"]'}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    } | body
    return {
        "id": "b1",
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": "r1", "body": completion},
        "error": None,
    }


MALFORMED = [
    ("{not json", "not valid JSON (Expecting property name enclosed in double quotes)"),
    ("[1, 2]", "expected a JSON object (a batch result), found list"),
    (
        json.dumps({"response": None, "error": None}),
        "custom_id: expected a non-empty string, found null",
    ),
    (
        json.dumps({"custom_id": "k", "response": None, "error": None}),
        "response: missing, and the line has no error either",
    ),
    (
        json.dumps({"custom_id": "k", "response": "ok"}),
        "response: expected an object or null, found string",
    ),
    (
        json.dumps(_ok() | {"response": {"status_code": "200", "body": {}}}),
        "response.status_code: expected an integer, found string",
    ),
    (
        json.dumps(_ok(choices={"0": 1})),
        "response.body.choices: expected a list, found object",
    ),
    (
        json.dumps(_ok(choices=[{"message": {"content": 7}}])),
        "response.body.choices[0].message.content: expected a string, found number",
    ),
    (
        json.dumps(_ok(usage={"prompt_tokens": -1})),
        "response.body.usage.prompt_tokens: expected a non-negative integer, found number",
    ),
]


@pytest.mark.parametrize(("line", "message"), MALFORMED)
def test_malformed_lines_name_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(_ok("k0")) + "\n\n" + line + "\n")
    code, out = iatc(
        "augment", QUICKSTART, "--model", "openai/fake", "-o", tmp_path / "run",
        "--from-batch", results,
    )  # fmt: skip
    assert code == exitcodes.USAGE
    assert out.strip() == f"iatc: error: {results}:3: {message}"
    assert not (tmp_path / "run").exists()  # nothing written


def test_results_are_bounded_and_read_as_data(tmp_path: Path) -> None:
    """An oversize reply or line is an error record (its custom_id found), never kept; a
    reply of the right size is kept as text (not parsed, not evaluated); vLLM's lines (no
    status_code) read the same; the first success of a key wins over an error of it."""
    results = tmp_path / "results.jsonl"
    huge = "x" * (128 * 16 + 64 * 1024 + 1)
    vllm = _ok("k3")
    del vllm["response"]["status_code"]
    rows = [
        _ok("k1", choices=[{"message": {"content": huge}}]),
        _ok("k2", choices=[{"message": {"content": "{{ 7*7 }} __import__('os')"}}]),
        vllm,
        {"id": "b", "custom_id": "k3", "response": None, "error": {"message": "late error"}},
        _ok("k4", choices=[{"message": {"content": "y" * 1_200_000}}]),
    ]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    read = read_results([results], max_tokens=128)
    assert sorted(read.replies) == ["k2", "k3"]
    assert read.replies["k2"].text == "{{ 7*7 }} __import__('os')"
    assert (read.replies["k3"].prompt_tokens, read.replies["k3"].completion_tokens) == (10, 3)
    assert [(f.key, f.where) for f in read.failures] == [
        ("k1", f"{results}:1"),
        ("k4", f"{results}:5"),
    ]
    assert read.failures[0].message == (
        f"reply of {len(huge)} bytes is over the limit of {len(huge) - 1} bytes; not kept"
    )
    assert read.failures[1].message.startswith("line over ")


# ------------------------------------------------------------------ unknown results


def test_results_of_no_call_of_the_run(tmp_path: Path) -> None:
    model = ("--model", "openai/fake")
    first, results = tmp_path / "round-1.jsonl", tmp_path / "results.jsonl"
    assert iatc("compile", QUICKSTART, "--format", "openai-batch", *model, "-o", first)[0] == 0
    with FakeServer() as srv:
        answer(first, results, srv)
    stray = json.dumps(_ok("f" * 64))
    results.write_text(results.read_text() + stray + "\n")
    run = tmp_path / "run"
    code, out = iatc("augment", QUICKSTART, *model, "-o", run, "-q", "--from-batch", results)
    assert code == 0, out
    assert (
        f"warning: 1 results are not calls of this run, ignored (results of another run, or "
        f"of a round this run has not reached yet): {results}:43 custom_id {'f' * 64}"
    ) in out
    assert "batch: 42 results ingested; no call is missing" in out

    # Only results of another run (here: another model): an error, and no batch file.
    other = tmp_path / "other"
    code, out = iatc(
        "augment", QUICKSTART, "--model", "openai/other", "-o", other, "-q",
        "--from-batch", results,
    )  # fmt: skip
    assert code == exitcodes.USAGE
    assert "is not a call of this run, nor is any of the 43 results: results of another run?" in out
    assert not (other / "batch").exists()


# ------------------------------------------------------------------ the pieces


def test_a_batch_line() -> None:
    call = LLMCall(
        model="hosted_vllm/Qwen/Qwen2.5-7B-Instruct",
        messages=({"role": "user", "content": "hi"},),
        temperature=0.6,
        top_p=0.9,
        max_tokens=64,
        seed=3,
        timeout=1.0,
        api_base="http://secret@host/v1",
    )
    assert provider_model("openai/gpt-4o-mini") == "gpt-4o-mini"
    assert provider_model("gpt-4o-mini") == "gpt-4o-mini"
    assert batch_line(BatchCall("abc", call)) == {
        "custom_id": "abc",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "Qwen/Qwen2.5-7B-Instruct",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.6,
            "top_p": 0.9,
            "max_tokens": 64,
            "seed": 3,
        },
    }
    judged = batch_line(BatchCall("abc", call, top_logprobs=5))["body"]
    assert (judged["logprobs"], judged["top_logprobs"]) == (True, 5)


def test_what_batch_files_refuse(tmp_path: Path) -> None:
    code, out = iatc(
        "compile", QUICKSTART, "--format", "openai-batch", "-o", tmp_path / "b.jsonl"
    )  # the quickstart's own model is embedded
    assert code == exitcodes.USAGE
    assert "the model embedded/qwen-0.5b runs in process and has no batch API" in out
    code, out = iatc("compile", QUICKSTART, "--format", "csv", "-o", tmp_path / "b")
    assert code == exitcodes.USAGE and "--format must be one of artifacts, openai-batch" in out
    code, out = iatc("compile", QUICKSTART, "--limit", "2", "-o", tmp_path / "b")
    assert code == exitcodes.USAGE and "--limit only go with --format openai-batch" in out
    results = tmp_path / "r.jsonl"
    results.write_text("")
    code, out = iatc(
        "augment", QUICKSTART, "-o", tmp_path / "run", "--from-batch", results,
        "--api-base", "http://127.0.0.1:9/v1", "--fresh",
    )  # fmt: skip
    assert code == exitcodes.USAGE
    assert "--from-batch sends nothing: --api-base, --fresh do not go with it" in out
    code, out = iatc(
        "augment", QUICKSTART, "-o", tmp_path / "run", "--from-batch", tmp_path / "none.jsonl",
        "--model", "openai/fake",
    )  # fmt: skip
    assert code == exitcodes.USAGE and "no such file" in out
