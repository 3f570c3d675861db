"""The judge: a second model pass over accepted rewrites (``judge NAME { ... }`` in ``.iat``).

The declaration (parse, check, resolve, format), the prompt rendering (values as data), the
scoring (log P(yes) - log P(no) from log-probabilities, a generated yes/no without them), and
runs against the loopback FakeServer answering with log-probabilities: judged-out rewrites stay
out of instructions.jsonl and are recorded in judged.jsonl, the summary's counts reconcile, and
a run killed with SIGKILL during the judge phase resumes without repeating a judge call and
writes the same files.  One test (marked ``embedded`` and ``slow``) scores labelled items with
the real 0.5B model.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from engine_support import warm_up_litellm
from fakeserver import FakeServer
from typer.testing import CliRunner

from instraug_dsl.commands import exitcodes
from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.compile.judge import answer_word, render_judge
from instraug_dsl.contract.compiled import CatalogSnapshot
from instraug_dsl.contract.run import JudgedRow, read_rows, read_summary
from instraug_dsl.lang.frontend import check_text
from instraug_dsl.lang.model import JudgeSpec
from instraug_dsl.runtime import llm
from instraug_dsl.runtime.judge import JudgeScore, score_choices, yes_no_score

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
FILES = ("instructions.jsonl", "rejected.jsonl", "failed.jsonl", "judged.jsonl")

_register_commands()
warm_up_litellm()
runner = CliRunner()

JUDGE = '''
judge same_task {
  model "openai/fake"
  system "You check rewritten task instructions. You answer yes or no."
  user """A: {{ original }}
B: {{ rewrite }}
Does B ask for exactly the same task as A? Answer yes or no."""
  threshold -0.5
}
'''


def iatc(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sources(tmp_path: Path, plan: str = "", judge: str = JUDGE) -> Path:
    """Quickstart's tasks, the library's meta-prompts, a judge and a plan using it."""
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    (folder / "tasks.iat").write_text((QUICKSTART / "tasks.iat").read_text())
    (folder / "plan.iat").write_text(
        'import "tasks.iat"\nimport "@common/metaprompts.iat"\n'
        + judge
        + (
            plan
            or "plan judged {\n  use direct samples 2\n  use guided samples 1\n"
            '  model "offline/rules"\n  judge same_task\n}\n'
        )
    )
    return folder


def rewrite_of(messages: list[dict[str, Any]]) -> str | None:
    """The rewrite a judge prompt shows (None: not a judge prompt)."""
    user = next((m["content"] for m in messages if m.get("role") == "user"), "")
    found = re.search(r"^B: (.*)$", user, re.M)
    return found.group(1) if found else None


def picky(messages: list[dict[str, Any]]) -> dict[str, float] | None:
    """A judge that says no to every rewrite with a lead-in ("Kindly", "Please")."""
    rewrite = rewrite_of(messages)
    if rewrite is None:
        return None
    if rewrite.startswith(("Kindly", "Please")):
        return {"No": -0.1, "no": -3.5, "Yes": -2.6, "The": -6.0, " No": -7.0}
    return {"Yes": -0.15, " yes": -3.1, "No": -2.2, "Sure": -5.0, "yes": -5.5}


# --------------------------------------------------------------- the declaration


def test_declaration_resolves_with_defaults_and_inheritance() -> None:
    src = (
        JUDGE
        + 'judge bare { user "{{ original }} / {{ rewrite }}" }\n'
        + 'task t { slot q: text  instruction i0 = "Answer {q} briefly." }\n'
        + 'metaprompt m { user "Rewrite: {{ instruction }}" }\n'
        + "plan p { use m  judge same_task }\n"
        + "plan q extends p { }\n"
        + "plan r extends p { judge none }\n"
        + "plan s extends r { judge bare }\n"
    )
    result = check_text(src)
    assert result.ok, result.render()
    catalog = result.raise_for_errors()
    same = catalog.judges["same_task"]
    assert same.model == "openai/fake" and same.threshold == -0.5
    assert same.system is not None and "{{ rewrite }}" in same.user
    bare = catalog.judges["bare"]
    assert (bare.model, bare.system, bare.threshold) == (None, None, 0.0)
    plans = catalog.plans
    assert plans["p"].judge == same and plans["q"].judge == same
    assert plans["r"].judge is None and plans["s"].judge == bare
    again = CatalogSnapshot.of(catalog, {}).catalog()
    assert again.judges == catalog.judges and again.plans["p"].judge == same


def test_judge_templates_are_checked_like_meta_prompts() -> None:
    result = check_text(
        "judge j { user \"{{ original }} {{ rewrite }} {% include 'x' %} {{ instruction }}\" }"
    )
    codes = sorted(d.code for d in result.diagnostics)
    assert "E070" in codes  # the sandbox's checks apply to judges too


def test_render_passes_texts_as_data() -> None:
    spec = JudgeSpec("j", None, "Compare.", "A: {{ original }}\nB: {{ rewrite }}\n{{ task }}")
    messages = render_judge(spec, "Answer {q}.", "Reply to {q} {{ 7 * 7 }} {% if x %}", "t")
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[1].content == "A: Answer {q}.\nB: Reply to {q} {{ 7 * 7 }} {% if x %}\nt"


# ------------------------------------------------------------------- scoring


def test_yes_no_score_sums_spellings_and_floors_a_missing_word() -> None:
    score = yes_no_score([("Yes", -0.5), (" yes", -2.0), ("No", -1.5), ("The", -4.0)])
    assert score == pytest.approx(math.log(math.exp(-0.5) + math.exp(-2.0)) + 1.5)
    # "no" is not among the top alternatives: it gets the lowest listed log-probability
    assert yes_no_score([("Yes", -0.1), ("Sure", -3.0)]) == pytest.approx(-0.1 + 3.0)
    assert yes_no_score([("Sure", -0.1), ("The", -3.0)]) is None


def test_score_skips_leading_blank_tokens_and_falls_back_to_the_text() -> None:
    result = llm.LLMResult("\n**No**", 10, 3, 0.0, "m", 0.1)
    choices = (
        llm.TokenChoices("\n", (("\n", -0.01),)),
        llm.TokenChoices("**", (("**", -0.2), ("No", -2.0))),
        llm.TokenChoices("No", (("No", -0.05), ("Yes", -3.0))),
    )
    scored = score_choices(result, choices)
    # "**" has an alternative "No" but is itself markup: the answer is the next word
    assert scored.method == "logprob" and scored.score == pytest.approx(-2.95)
    plain = score_choices(result, choices[2:])
    assert plain.method == "logprob" and plain.score == pytest.approx(-2.95)
    assert not plain.keeps(-0.5) and plain.keeps(-3.0)
    text_only = score_choices(llm.LLMResult("No, it adds a constraint.", 9, 6, 0.0, "m", 0.1), None)
    assert text_only.method == "generated" and text_only.score is None
    assert not text_only.keeps(0.0)
    unclear = JudgeScore("generated", None, "Maybe")
    assert unclear.keeps(0.0)  # the judge removes only what it says "no" to
    assert [answer_word(w) for w in ("Yes.", " no", "nope", "**No**", "Noted")] == [
        "yes",
        "no",
        None,
        "no",
        None,
    ]


# --------------------------------------------------------------------- runs


def test_judged_out_rewrites_stay_out_and_the_counts_reconcile(tmp_path: Path) -> None:
    src = sources(tmp_path)
    with FakeServer(judge=picky) as srv:
        code, out = iatc("augment", src, "-o", tmp_path / "run", "--api-base", srv.base_url)
    assert code == 0, out
    run = tmp_path / "run"
    summary = read_summary(run / "summary.json")
    judge = summary.judge
    assert judge is not None and judge.reconciled
    totals = summary.totals
    assert judge.rewrites == totals.generated > 0
    assert judge.kept + judge.judged_out + judge.failed == judge.rewrites
    assert judge.judged_out > 0 and judge.kept > 0 and judge.failed == 0
    assert judge.methods == {"logprob": judge.rewrites}
    assert sum(t.judged_out for t in judge.per_task.values()) == judge.judged_out
    assert set(judge.per_task) == {t for t, row in totals.per_task.items() if row.generated}
    assert totals.reconciled and summary.outputs.generated == judge.kept
    judged = list(read_rows(run / "judged.jsonl", JudgedRow))
    assert len(judged) == summary.outputs.judged_rows == judge.rewrites
    generated = [r for r in rows(run / "instructions.jsonl") if r["kind"] == "generated"]
    kept = {r.id for r in judged if r.verdict == "kept"}
    assert {r["id"] for r in generated} == kept and len(generated) == judge.kept
    for r in judged:
        lead_in = r.rewrite.startswith(("Kindly", "Please"))
        assert r.verdict == ("judged_out" if lead_in else "kept"), r
        assert r.reason == ("judged_out" if lead_in else None)
        assert r.method == "logprob" and r.score is not None and r.threshold == -0.5
    out_row = next(r for r in judged if r.verdict == "judged_out")
    assert out_row.score == pytest.approx(-2.6 - math.log(math.exp(-0.1) + math.exp(-3.5)), 1e-3)
    asked = [e["body"] for e in srv.log if e["body"].get("logprobs")]
    assert len(asked) == summary.run.judge_calls_made == judge.calls > 0
    assert all(b["top_logprobs"] == 5 and b["temperature"] == 0.0 for b in asked)
    assert "judged out per task" in out and f"{judge.judged_out} judged out" in out


def test_a_server_without_logprobs_gets_a_generated_answer(tmp_path: Path) -> None:
    src = sources(tmp_path)
    with FakeServer(judge=picky, logprobs=False) as srv:
        code, out = iatc("augment", src, "-o", tmp_path / "run", "--api-base", srv.base_url, "-q")
    assert code == 0, out
    judged = list(read_rows(tmp_path / "run" / "judged.jsonl", JudgedRow))
    assert judged and all(r.method == "generated" and r.score is None for r in judged)
    for r in judged:
        lead_in = r.rewrite.startswith(("Kindly", "Please"))
        assert (r.answer, r.verdict) == (("No", "judged_out") if lead_in else ("Yes", "kept"))


def test_rerun_repeats_no_judge_call_and_judge_none_turns_it_off(tmp_path: Path) -> None:
    src = sources(tmp_path)
    run = tmp_path / "run"
    with FakeServer(judge=picky) as srv:
        args = ("augment", src, "-o", run, "--api-base", srv.base_url, "-q")
        assert iatc(*args)[0] == 0
        first = {name: (run / name).read_bytes() for name in FILES}
        asked = srv.requests
        assert iatc(*args)[0] == 0
        assert srv.requests == asked  # every judge call came from the cache
        assert {name: (run / name).read_bytes() for name in FILES} == first
        s = read_summary(run / "summary.json")
        assert s.run.judge_calls_made == 0 and s.run.judge_cache_hits == s.judge.calls  # type: ignore[union-attr]
        assert iatc(*args, "--judge", "none")[0] == 0
        assert not (run / "judged.jsonl").exists()
        plain = read_summary(run / "summary.json")
        assert plain.judge is None and plain.outputs.generated == plain.totals.generated
        code, out = iatc(*args, "--judge", "same_tsk")
        assert code == exitcodes.USAGE and "did you mean `same_task`" in out


def test_iterations_rephrase_only_what_the_judge_kept(tmp_path: Path) -> None:
    plan = (
        "plan judged {\n  use direct samples 2\n  iterations 1\n  tasks ITM\n"
        '  model "offline/rules"\n  judge same_task\n}\n'
    )
    src = sources(tmp_path, plan)
    with FakeServer(judge=picky) as srv:
        code, out = iatc("augment", src, "-o", tmp_path / "run", "--api-base", srv.base_url, "-q")
    assert code == 0, out
    judged = list(read_rows(tmp_path / "run" / "judged.jsonl", JudgedRow))
    first = [r for r in judged if r.iteration == 0]
    kept = {r.rewrite for r in first if r.verdict == "kept"}
    dropped = {r.rewrite for r in first if r.verdict == "judged_out"} - kept
    assert kept and dropped
    derived = rows(tmp_path / "run" / "compiled" / "requests.iter1.jsonl")
    assert derived and {d["source_body"] for d in derived} <= kept
    second = [r for r in judged if r.iteration == 1]
    assert second and all(r.original in {o.original for o in first} for r in second)


def test_a_judge_that_cannot_run_is_a_runtime_error(tmp_path: Path) -> None:
    src = sources(tmp_path, judge=JUDGE.replace("openai/fake", "embedded/no-such-model"))
    code, out = iatc("augment", src, "-o", tmp_path / "run", "--limit", "3", "-q")
    assert code == exitcodes.RUNTIME, out
    assert "judge `same_task`" in out and "unknown embedded model" in out


def test_kill_9_in_the_judge_phase_and_resume_gives_identical_files(tmp_path: Path) -> None:
    """GIVEN a run killed with SIGKILL while the judge is being asked
    WHEN the same command is run again
    THEN no cached judge call is repeated and the files equal an uninterrupted run's."""
    src = sources(tmp_path)
    with FakeServer(judge=picky, latency=0.05) as srv:

        def command(run_dir: Path) -> list[str]:
            return [
                sys.executable,
                "-c",
                "from instraug_dsl.commands.main import main; main()",
                "augment",
                str(src),
                "-o",
                str(run_dir),
                "--api-base",
                srv.base_url,
                "--concurrency",
                "2",
                "-q",
            ]

        killed = tmp_path / "killed"
        proc = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cache = killed / "cache.sqlite"
        deadline = time.monotonic() + 120
        judged_at_kill = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if cache.exists():
                try:
                    with sqlite3.connect(f"file:{cache}?mode=ro", uri=True) as db:
                        judged_at_kill = db.execute(
                            "SELECT COUNT(*) FROM calls WHERE request LIKE 'judge:%'"
                        ).fetchone()[0]
                except sqlite3.OperationalError:
                    judged_at_kill = 0
                if judged_at_kill >= 8:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (killed / "summary.json").exists()
        asked_before = [
            json.dumps(e["body"]["messages"]) for e in srv.log if e["body"].get("logprobs")
        ]

        resumed = subprocess.run(command(killed), capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        asked_after = [
            json.dumps(e["body"]["messages"]) for e in srv.log if e["body"].get("logprobs")
        ][len(asked_before) :]
        straight = subprocess.run(
            command(tmp_path / "straight"), capture_output=True, text=True, timeout=300
        )
        assert straight.returncode == 0, straight.stderr

    for name in FILES:
        assert (killed / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
    a = read_summary(killed / "summary.json")
    b = read_summary(tmp_path / "straight" / "summary.json")
    assert a.judge == b.judge and a.totals == b.totals
    assert a.run.judge_cache_hits >= judged_at_kill >= 8
    assert a.run.judge_calls_made + a.run.judge_cache_hits == b.run.judge_calls_made
    # only calls still in flight at the kill (never committed) may be asked twice
    assert len(set(asked_after) & set(asked_before)) <= 2


# ---------------------------------------------------------- the real model


@pytest.mark.slow
@pytest.mark.embedded
def test_the_embedded_model_scores_labelled_rewrites() -> None:
    """The 0.5B model scores a few labelled items with log-probabilities read in process."""
    pytest.importorskip("llama_cpp")
    from instraug_dsl.runtime.judge import score_messages

    items = [
        json.loads(line)
        for line in (ROOT / "tests" / "data" / "faithfulness" / "labelled.jsonl")
        .read_text()
        .splitlines()
    ]
    picked = [next(i for i in items if i["kind"] == k) for k in ("faithful", "polarity_flip")]
    library = check_text(
        (ROOT / "templates" / "common" / "judges.iat").read_text()
    ).raise_for_errors()
    spec = library.judges["same_task"]
    wires = []
    for item in picked:
        messages = render_judge(spec, item["source"], item["candidate"], item["task"])
        wires.append([{"role": m.role, "content": m.content} for m in messages])
    firsts = [llm.run_async(score_messages("embedded/qwen-0.5b", w, timeout=600)) for w in wires]
    # Again in the other order: a score never depends on what was judged before it (no
    # prefix reuse whose batch size would change the numbers; a resumed run agrees).
    agains = [
        llm.run_async(score_messages("embedded/qwen-0.5b", w, timeout=600)) for w in reversed(wires)
    ][::-1]
    scores = []
    for first, again in zip(firsts, agains, strict=True):
        assert first.method == "logprob" and first.score is not None
        assert math.isfinite(first.score) and abs(first.score) < 30
        assert again.score == first.score
        assert first.prompt_tokens > 20 and first.answer
        scores.append(first.score)
    assert len(set(scores)) == 2  # the two items are told apart by some margin, however small
