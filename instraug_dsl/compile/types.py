"""The compiler's artifacts as Python objects (the runtime's input).

These dataclasses are the contract between the compiler and the runtime;
``requests.jsonl`` and ``validators.json`` are their JSON forms
(:meth:`Request.to_json`, :meth:`ValidatorSpec.to_json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message sent to the model."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Request:
    """One generation request: (task, source instruction, meta-prompt, temperature, sample).

    ``id`` is a content hash of everything that affects the model's answer, so
    reordering declarations never changes it.  ``token_map`` maps each opaque
    token in the protected instruction to its slot name; ``lead``/``trail``
    are the pinned edges (``{slot}`` template text) re-attached after
    generation.  ``parent``/``root`` are instruction ids (MIns+_Iter:
    ``parent`` is the accepted rewrite being rephrased, ``root`` the original).
    """

    id: str
    task: str
    instruction: str  # instruction id, e.g. "image_caption/i0" or a rewrite id
    root: str  # the original instruction id
    parent: str | None
    source_body: str  # body template with {slot} refs (what is paraphrased)
    protected: str  # body with slots replaced by tokens
    lead: str
    trail: str
    metaprompt: str
    temperature: float
    sample: int
    seed: int
    iteration: int
    messages: tuple[Message, ...]
    top_p: float
    max_tokens: int
    model: str
    token_map: tuple[tuple[str, str], ...]
    validator: str

    def to_json(self) -> dict[str, object]:
        """JSON form (sorted keys when dumped)."""
        return {
            "id": self.id,
            "task": self.task,
            "instruction": self.instruction,
            "root": self.root,
            "parent": self.parent,
            "source_body": self.source_body,
            "protected": self.protected,
            "lead": self.lead,
            "trail": self.trail,
            "metaprompt": self.metaprompt,
            "temperature": self.temperature,
            "sample": self.sample,
            "seed": self.seed,
            "iteration": self.iteration,
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
            "params": {"top_p": self.top_p, "max_tokens": self.max_tokens},
            "model": self.model,
            "token_map": dict(self.token_map),
            "validator": self.validator,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Request:
        """Inverse of :meth:`to_json`."""
        params = dict(data["params"])  # type: ignore[call-overload]
        msgs = data["messages"]
        tmap = data["token_map"]
        return cls(
            id=str(data["id"]),
            task=str(data["task"]),
            instruction=str(data["instruction"]),
            root=str(data["root"]),
            parent=None if data["parent"] is None else str(data["parent"]),
            source_body=str(data["source_body"]),
            protected=str(data["protected"]),
            lead=str(data["lead"]),
            trail=str(data["trail"]),
            metaprompt=str(data["metaprompt"]),
            temperature=float(data["temperature"]),  # type: ignore[arg-type]
            sample=int(data["sample"]),  # type: ignore[call-overload]
            seed=int(data["seed"]),  # type: ignore[call-overload]
            iteration=int(data["iteration"]),  # type: ignore[call-overload]
            messages=tuple(Message(str(m["role"]), str(m["content"])) for m in msgs),  # type: ignore[attr-defined]
            top_p=float(params["top_p"]),
            max_tokens=int(params["max_tokens"]),
            model=str(data["model"]),
            token_map=tuple(sorted((str(k), str(v)) for k, v in dict(tmap).items())),  # type: ignore[call-overload]
            validator=str(data["validator"]),
        )


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an output was rejected: a stable ``code`` plus a human detail."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of validating one candidate rewrite.

    ``accepted`` candidates carry ``restored``: the rewrite with every token
    mapped back to its ``{slot}`` (body only; pinned edges not attached).
    Rejected ones carry every failed ``reasons`` and a short ``reask``
    message the runtime may send back to the model.
    """

    accepted: bool
    restored: str | None
    reasons: tuple[Reason, ...] = field(default=())
    reask: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedReply:
    """A model reply split into rewrites, or the ``problem`` that made it unparseable.

    ``form`` says which shape was recognised: ``"json"`` (an array of strings,
    possibly fenced or after a preamble), ``"json_string"``, ``"json_object"``
    (one key holding the array) or ``"numbered"`` (a numbered list).
    """

    rewrites: tuple[str, ...]
    problem: str | None
    form: str | None = None


@dataclass(frozen=True, slots=True)
class TokenRule:
    """One protected slot: its token, slot name, required count and position rule.

    ``at_end`` tokens must stay the last thing of the rewrite (only spaces
    and ``.,;:!?`` may follow), because their slot renders as a trailing
    block (``choices``).
    """

    token: str
    slot: str
    count: int
    at_end: bool = False


@dataclass(frozen=True, slots=True)
class ValidatorSpec:
    """Everything needed to judge a rewrite of one source body (JSON-serializable).

    ``slots`` is the placeholder multiset of the *root* original, ``source_words``
    the word count of the text that was rewritten (the immediate parent), and
    ``sequence`` the source's token order (enforced only when ``ordered``), and
    ``originals`` the normalized texts (whole and body-only) of every original
    instruction of the task.  ``regex``/``reply_regex``/``gbnf`` accept exactly
    the rewrites (or JSON replies) whose token structure the validator accepts;
    ``regex_exact`` is false when too many tokens forced the exports to fix the
    source order (then they accept a subset).
    """

    id: str
    family: str
    tokens: tuple[TokenRule, ...]
    sequence: tuple[str, ...]
    ordered: bool
    slots: tuple[tuple[str, int], ...]
    length_ratio: tuple[float, float]
    source_words: int
    source_norm: str
    originals: tuple[str, ...]
    lead: str
    trail: str
    pad: tuple[str, str]
    single_line: bool
    allow_percent_paren: bool
    exempt_preambles: tuple[str, ...]
    regex: str
    reply_regex: str
    gbnf: str
    regex_exact: bool

    def to_json(self) -> dict[str, object]:
        """JSON form (sorted keys when dumped)."""
        return {
            "id": self.id,
            "family": self.family,
            "tokens": [
                {"token": t.token, "slot": t.slot, "count": t.count, "at_end": t.at_end}
                for t in self.tokens
            ],
            "sequence": list(self.sequence),
            "ordered": self.ordered,
            "slots": {name: count for name, count in self.slots},
            "length_ratio": list(self.length_ratio),
            "source_words": self.source_words,
            "source_norm": self.source_norm,
            "originals": list(self.originals),
            "lead": self.lead,
            "trail": self.trail,
            "pad": list(self.pad),
            "single_line": self.single_line,
            "allow_percent_paren": self.allow_percent_paren,
            "exempt_preambles": list(self.exempt_preambles),
            "regex": self.regex,
            "reply_regex": self.reply_regex,
            "gbnf": self.gbnf,
            "regex_exact": self.regex_exact,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ValidatorSpec:
        """Inverse of :meth:`to_json`."""
        d: Any = data  # shapes are checked by the conversions below
        lo, hi = d["length_ratio"]
        return cls(
            id=str(d["id"]),
            family=str(d["family"]),
            tokens=tuple(
                TokenRule(str(t["token"]), str(t["slot"]), int(t["count"]), bool(t["at_end"]))
                for t in d["tokens"]
            ),
            sequence=tuple(str(t) for t in d["sequence"]),
            ordered=bool(d["ordered"]),
            slots=tuple(sorted((str(k), int(v)) for k, v in dict(d["slots"]).items())),
            length_ratio=(float(lo), float(hi)),
            source_words=int(d["source_words"]),
            source_norm=str(d["source_norm"]),
            originals=tuple(str(o) for o in d["originals"]),
            lead=str(d["lead"]),
            trail=str(d["trail"]),
            pad=(str(d["pad"][0]), str(d["pad"][1])),
            single_line=bool(d["single_line"]),
            allow_percent_paren=bool(d["allow_percent_paren"]),
            exempt_preambles=tuple(str(p) for p in d["exempt_preambles"]),
            regex=str(d["regex"]),
            reply_regex=str(d["reply_regex"]),
            gbnf=str(d["gbnf"]),
            regex_exact=bool(d["regex_exact"]),
        )
