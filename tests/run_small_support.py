"""The small run directory of the dataset-stage tests, made by the real runtime.

:func:`make_run` augments plan ``small`` of tests/fixtures/run_small/tasks.iat with
:func:`instraug_dsl.api.augment` against a loopback :class:`~fakeserver.FakeServer` in
scripted mode (``--model openai/fake --api-base http://127.0.0.1:PORT/v1``), so the
dataset stage is tested on what ``iatc augment`` really writes.  :func:`reply` is the
"model": its answers are keyed by the protected instruction of the request (slots already
replaced by the request's ``{A}``, ``{B}``... tokens) and chosen to exercise every rule:

* rewrites that are kept, among them one with a quote followed by Python code that must
  come out of ``materialize`` as plain text;
* rewrites the corpus filters drop: an exact duplicate (both samples of a request give the
  same reply), a case/whitespace-normalized duplicate (from another instruction) and a
  ROUGE-L near duplicate of an original;
* every other instruction is answered lazily with ``"Please " + instruction``: the
  validators accept it and the corpus filters drop it as a near duplicate of its original,
  so only the rewrites listed in :data:`REPLIES` are kept;
* replies the runtime's validators reject (they land in ``rejected.jsonl``): a verbatim
  copy of the source, ``{__class__}`` and ``{{7*7}}`` templates, a chat preamble, an
  answer instead of an instruction, an over-long reply, an empty reply that is fixed on
  the re-ask;
* a request the server refuses (HTTP 400), which lands in ``failed.jsonl``.

Held-out tasks (``split test``) are never compiled, so the run has no rewrite of them, and
a run cannot hold rewrites of undeclared tasks or with undeclared slots: the tests reach
those filters through in-memory rows or through ``iat=`` declarations that differ from the
run's.  The ``.iat`` sources are copied to a scratch folder for the run and deleted after
it, so every test also checks that a run directory works without its sources.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from fakeserver import FakeServer, Fault

from instraug_dsl import api

HERE = Path(__file__).resolve().parent / "fixtures" / "run_small"
TASKS = HERE / "tasks.iat"
INSTANCES = HERE / "instances.jsonl"
PLAN = "small"
MODEL = "openai/fake"

#: Rewrites of VQA_color (the trailing ``{options}`` is pinned: not part of the request).
COLOUR = "This task asks about the colour of an object shown in the picture. Question: "
ORIGINAL_I1 = "In this task, you are asked the color of some object in the image. Question: "
NEAR_I1 = ORIGINAL_I1.replace("some", "an")
NORMALIZED = COLOUR.lower().replace(". ", ".  ")
HUE = "Identify the hue of the item mentioned in {A} by looking."
CODE = 'Reply with ""); import os; os.system(\'touch /tmp/pwned\') #" then answer '
PREAMBLE = "Sure! Here is the rewritten instruction: {A}"
ANSWER = "Question {A}"
LONG = "x " * 40
CAPTIONS = (
    "Describe the picture briefly in one sentence.",
    "Provide a short caption that summarizes what the photo shows.",
    "Give a concise textual description of this image.",
    "Write a brief caption for the image.",
)
OBJECT_MATCH = "Are {A} and {B} objects of one category? "
NEXT_STEP = 'Working on {A}, you completed:\n\n{C}\nYou are at "{B}". What comes next?'
OVERLAP = "Pick the box sharing most area with {A}."
POSITIONS = "Question: {A}{B}\n\n Think about positions; pick: {C}."

# The protected instructions of tasks.iat (what the requests carry between the tags).
VQA_COLOR_I1 = ORIGINAL_I1 + "{A}"
VQA_COLOR_I2 = (
    "Question: {A}\n\nAnswer the above question by first finding the object in the image "
    "and then select its color from options,"
)
VQA_COLOR_I3 = "Answer {A} based on the image. "
VQA_COLOR_I4 = 'Answer the question: "{A}" based on the color of an object.'
CAPTION_I0 = "In this task, you will look at the image and briefly describe the image."
CAPTION_I1 = "What is the caption of the image?"
CAPTION_I2 = "Generate some text to describe the image."
CAPTION_I3 = "Look at image and tell me what is the content."
CAPTION_I4 = (
    "In this task, you are given an image and you will need to generate some text to describe it."
)
OBJECT_MATCH_I0 = "Are the object in {A} and object in {B} the same type? "
OBJECT_MATCH_I1 = (
    "In this task you are given two objects. Each object is specified by its location in the "
    "image. One object is in {A} and another object is in {B}. Decide if two objects have the "
    "same type. "
)
NEXT_STEP_I4 = (
    'You are doing {A} and you are at "{B}" step. The previous steps you finished are\n\n{C}\n'
    "What is the next step?"
)
OVERLAP_I0 = (
    "Given the region {A}, decide which region in the options overlaps most with given region."
)
POSITIONS_I4 = (
    "Question: {A}{B}\n\n Please answer the question by reasoning about the positions of "
    "objects and select an answer from options. {C}."
)

#: protected instruction -> (first reply's rewrites, re-ask reply's rewrites); a `Fault`
#: instead answers every attempt with that fault.
REPLIES: dict[str, tuple[list[str], list[str]] | Fault] = {
    # kept, near duplicate of i1, rejected (identical_source); sample 1: exact duplicate
    VQA_COLOR_I1: ([COLOUR + "{A}", NEAR_I1 + "{A}", VQA_COLOR_I1],) * 2,
    # normalized duplicate of the i1 rewrite, kept
    VQA_COLOR_I2: ([NORMALIZED + "{A}", HUE],) * 2,
    # kept (code as text), rejected ({__class__}: token_altered + foreign_token; {{7*7}})
    VQA_COLOR_I3: ([CODE + "{A}", "Tell me {__class__} about {A}", "Answer {{7*7}} {A}"],) * 2,
    # rejected on every attempt: preamble, then answers
    VQA_COLOR_I4: ([PREAMBLE], [ANSWER]),
    CAPTION_I0: ([CAPTIONS[0]],) * 2,
    CAPTION_I1: ([CAPTIONS[1]],) * 2,
    CAPTION_I2: ([CAPTIONS[2], CAPTIONS[3]],) * 2,
    CAPTION_I3: Fault("bad_request"),  # failed
    CAPTION_I4: ([LONG],) * 2,  # rejected: length_ratio, answer
    OBJECT_MATCH_I0: ([OBJECT_MATCH],) * 2,
    # an empty reply (unparseable), then the lazy rewrite on the re-ask
    OBJECT_MATCH_I1: ([], ["Please " + OBJECT_MATCH_I1]),
    NEXT_STEP_I4: ([NEXT_STEP],) * 2,
    OVERLAP_I0: ([OVERLAP],) * 2,
    POSITIONS_I4: ([POSITIONS],) * 2,
}


# The server strips the text between the tags, as the offline provider does.
_BY_TEXT = {text.strip(): script for text, script in REPLIES.items()}


def reply(instruction: str, reask: str | None) -> str | Fault:
    """The scripted model: the reply to a request for ``instruction`` (see the module doc)."""
    script = _BY_TEXT.get(instruction)
    if script is None:
        return json.dumps(["Please " + instruction])
    if isinstance(script, Fault):
        return script
    rewrites = script[0 if reask is None else 1]
    return json.dumps(rewrites, ensure_ascii=False) if rewrites else ""


def make_run(out: Path, scratch: Path) -> Path:
    """Augment plan ``small`` into ``out`` from a copy of tasks.iat in ``scratch`` (deleted
    afterwards, so the run outlives its sources); returns ``out``."""
    scratch.mkdir(parents=True, exist_ok=True)
    source = scratch / TASKS.name
    shutil.copyfile(TASKS, source)
    with FakeServer(mode="scripted", reply=reply) as server:
        # Concurrency 4: the refused request (HTTP 400, fatal) is never among the first calls,
        # which would stop the whole run as a broken setup before any call succeeded.
        backend = api.Backend(model=MODEL, api_base=server.base_url, concurrency=4)
        api.augment([source], out, plan=PLAN, backend=backend)
    shutil.rmtree(scratch)
    return out


def edited_tasks(
    folder: Path,
    *,
    replace: Mapping[str, str] | None = None,
    remove_tasks: Sequence[str] = (),
) -> Path:
    """A copy of tasks.iat in ``folder`` with each ``replace`` text (found exactly once)
    replaced and the ``remove_tasks`` blocks deleted: declarations that differ from the
    run's, for ``iat=``/``--iat``."""
    text = TASKS.read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {TASKS}"
        text = text.replace(old, new)
    for name in remove_tasks:
        text, n = re.subn(rf"(?ms)^task {re.escape(name)} \{{.*?^\}}\n\n?", "", text)
        assert n == 1, f"task {name} not found in {TASKS}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TASKS.name
    path.write_text(text, encoding="utf-8")
    return path
