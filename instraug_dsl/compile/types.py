"""The compiler's artifacts as Python objects (the runtime's input).

These dataclasses are the contract between the compiler and the runtime;
``requests.jsonl`` and ``validators.json`` are their JSON forms
(:meth:`Request.to_json`, :meth:`ValidatorSpec.to_json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
            messages=tuple(Message(str(m["role"]), str(m["content"])) for m in msgs),  # type: ignore[attr-defined, index]
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
