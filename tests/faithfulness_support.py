"""The labelled faithfulness set and its evaluation (shared by the test and the bench).

``tests/data/faithfulness/labelled.jsonl`` holds rewrites of MultiInstruct training
instructions, each labelled by hand ``faithful`` or ``unfaithful`` with a ``kind``.  Every
item names the meta-prompt version it was generated with (``prompt``: ``v1`` is the
earlier prompt, ``v2`` the one templates/common/metaprompts.iat holds now; both are kept
next to the set), so its validator is compiled from the prompt the model actually saw: the
echo and example checks compare a reply with *that* prompt.

Two judges run on the same items: the compiled validators of the library's ``paper`` plan
(every rule), and the paper's filters alone (length ratio in (0, 2.0) and the placeholder
multiset), the baseline.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from instraug_dsl.compile import Compiled, compile_paths, compile_plan, validate
from instraug_dsl.contract.compiled import ValidatorSpec
from instraug_dsl.lang.frontend import check

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "faithfulness"
LABELLED = DATA / "labelled.jsonl"
PROMPTS = {"v1": DATA / "metaprompts_v1.iat", "v2": DATA / "metaprompts_v2.iat"}
FIELDS = ("task", "instruction", "source", "candidate", "label", "kind", "origin", "prompt")
LABELS = ("faithful", "unfaithful")
#: Kinds of unfaithful rewrites ("faithful" items have kind "faithful").
KINDS = (
    "answer",
    "task_change",
    "polarity_flip",
    "swapped_roles",
    "leaked_token",
    "echo",
    "parroted_example",
    "language_switch",
    "added_constraint",
    "truncation",
    "placeholder",
    "copy",
    "preamble",
)
#: Kinds the validators must never accept (the goal of issue 9).
HARD_KINDS = ("answer", "echo", "leaked_token", "parroted_example", "language_switch")
_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Item:
    """One labelled rewrite."""

    task: str
    instruction: str
    source: str
    candidate: str
    label: str
    kind: str
    origin: str
    prompt: str
    metaprompt: str = ""
    note: str = ""


def load(path: Path = LABELLED) -> list[Item]:
    """Read the labelled set; every line must have the documented fields."""
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        data = json.loads(line)
        missing = [f for f in FIELDS if f not in data]
        if missing:
            raise ValueError(f"{path}:{n}: missing {', '.join(missing)}")
        items.append(Item(**data))
    return items


def _use_copied_library(templates: Path) -> None:
    """Point ``@common/...`` imports (the shipped library) at the copy's ``../common/``."""
    for path in (templates / "multiinstruct").glob("*.iat"):
        text = path.read_text(encoding="utf-8")
        if '"@common/' in text:
            path.write_text(text.replace('"@common/', '"../common/'), encoding="utf-8")


@cache
def library() -> Compiled:
    """The library's ``paper`` plan as shipped (the current meta-prompts)."""
    return compile_paths([ROOT / "templates" / "multiinstruct"], "paper")


@cache
def compiled(prompt: str) -> Compiled:
    """The library's ``paper`` plan compiled with meta-prompt version ``prompt``."""
    tmp = Path(tempfile.mkdtemp(prefix="iatc-faith-"))
    shutil.copytree(ROOT / "templates", tmp / "templates")
    shutil.copy(PROMPTS[prompt], tmp / "templates" / "common" / "metaprompts.iat")
    _use_copied_library(tmp / "templates")
    try:
        result = check([tmp / "templates" / "multiinstruct"], allow_imports=[tmp / "templates"])
        catalog = result.raise_for_errors()
        sources = {p: s.text for p, s in result.sources.items()}
        return compile_plan(catalog, "paper", sources=sources)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def spec_for(item: Item) -> tuple[ValidatorSpec, dict[str, str]]:
    """The validator of the item's instruction and its slot -> token map."""
    comp = compiled(item.prompt)
    req = next(r for r in comp.requests if r.instruction == item.instruction)
    if req.source_body != item.source:
        raise ValueError(f"{item.instruction}: the library's source changed: {req.source_body!r}")
    return comp.validator_for(req), {slot: tok for tok, slot in req.token_map}


def protect(candidate: str, slot_tokens: dict[str, str]) -> str:
    """The candidate as the model wrote it: known ``{slot}`` refs back to their tokens."""
    return _SLOT.sub(lambda m: slot_tokens.get(m.group(1), m.group()), candidate)


def paper_accepts(item: Item) -> bool:
    """The paper's filters: 0 < words ratio < 2.0 and the same ``{slot}`` multiset."""
    ratio = len(item.candidate.split()) / max(len(item.source.split()), 1)
    same = Counter(_SLOT.findall(item.candidate)) == Counter(_SLOT.findall(item.source))
    return 0 < ratio < 2.0 and same


@dataclass
class Result:
    """Verdicts of both judges on every item."""

    items: list[Item]
    ours: list[bool]
    paper: list[bool]
    codes: list[tuple[str, ...]] = field(default_factory=list)

    def table(self) -> list[tuple[str, int, int, int]]:
        """(kind, items, accepted by the validators, accepted by the paper filters)."""
        rows = []
        for kind in ("faithful", *KINDS):
            idx = [i for i, it in enumerate(self.items) if it.kind == kind]
            if idx:
                rows.append(
                    (
                        kind,
                        len(idx),
                        sum(self.ours[i] for i in idx),
                        sum(self.paper[i] for i in idx),
                    )
                )
        return rows

    def scores(self, judge: str) -> dict[str, float]:
        """Precision and recall of acceptance, faithful being the positive class."""
        acc = self.ours if judge == "ours" else self.paper
        pos = [it.label == "faithful" for it in self.items]
        tp = sum(a and p for a, p in zip(acc, pos, strict=True))
        fp = sum(a and not p for a, p in zip(acc, pos, strict=True))
        return {
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / sum(pos) if any(pos) else 1.0,
            "unfaithful_accepted": float(fp),
        }

    def hard_accepted(self) -> list[Item]:
        """Items of the hard kinds the validators accepted (the goal: none)."""
        return [
            it for it, a in zip(self.items, self.ours, strict=True) if a and it.kind in HARD_KINDS
        ]

    def rejected_faithful(self) -> Iterable[tuple[Item, tuple[str, ...]]]:
        """Faithful items the validators rejected, with the reason codes."""
        for it, a, c in zip(self.items, self.ours, self.codes, strict=True):
            if it.label == "faithful" and not a:
                yield it, c


def evaluate(items: list[Item]) -> Result:
    """Run both judges over ``items``."""
    ours, paper, codes = [], [], []
    for it in items:
        spec, tokens = spec_for(it)
        verdict = validate(spec, protect(it.candidate, tokens))
        ours.append(verdict.accepted)
        codes.append(tuple(r.code for r in verdict.reasons))
        paper.append(paper_accepts(it))
    return Result(items, ours, paper, codes)
