"""The compiled plan as files: ``compiled/`` of a run directory (or of ``iatc compile -o``).

``requests.jsonl``
    one :class:`Request` per line, in compile order.
``validators.json``
    every :class:`ValidatorSpec` by id.
``manifest.json``
    the :class:`CompiledManifest`: the resolved plan, source hashes, counts, what was
    skipped and why.
``catalog.json``
    the :class:`CatalogSnapshot`: every resolved declaration (tasks with their slots,
    instructions and pins, meta-prompts, plans, sampling blocks), so that later stages
    work from the run directory alone, wherever it is moved and whether or not the
    ``.iat`` sources still exist.
``requests.iterN.jsonl``
    the requests of a derived round (MIns+_Iter).

All are written with sorted keys and no timestamps or absolute paths, so compiling the
same sources gives the same bytes on any machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fsio import iter_jsonl, read_json, write_json, write_jsonl
from ..lang.model import (
    BootstrapSpec,
    Catalog,
    JudgeSpec,
    MetaPromptSpec,
    PlanSpec,
    SamplingSpec,
    TaskSpec,
)
from .codec import ContractError, decode, encode

COMPILE_FORMAT = "iatc-compile/2"
CATALOG_FORMAT = "iatc-catalog/1"
REQUESTS = "requests.jsonl"
VALIDATORS = "validators.json"
MANIFEST = "manifest.json"
CATALOG = "catalog.json"


def round_file(iteration: int) -> str:
    """The requests file of derived round ``iteration`` (MIns+_Iter)."""
    return f"requests.iter{iteration}.jsonl"


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

    Faithfulness (docs/compiler.md): ``literals`` are the brace texts of the source that a
    rewrite may keep verbatim (``{"a": 1}`` written ``\\{...\\}`` in ``.iat``);
    ``exempt_shapes`` the token-like or bracketed texts the source itself has (any other is
    ``foreign_token``); ``reject`` the plan's content checks (``answers``, ``echoes``,
    ``examples``), ``source_instructs`` whether the source asks for something (the
    ``answer`` rule needs it), ``echo`` the prompt machinery (the rendered meta-prompts
    without the instruction and examples, and the re-ask messages), ``examples`` the rendered
    meta-prompt examples, and ``language`` the language rewrites must be in (``any``: not
    checked).
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
    literals: tuple[str, ...] = ()
    exempt_shapes: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()
    source_instructs: bool = False
    echo: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    language: str = "any"

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
            "literals": list(self.literals),
            "exempt_shapes": list(self.exempt_shapes),
            "reject": list(self.reject),
            "source_instructs": self.source_instructs,
            "echo": list(self.echo),
            "examples": list(self.examples),
            "language": self.language,
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
            # Absent in files written before these checks existed: then they are off.
            literals=tuple(str(x) for x in d.get("literals", ())),
            exempt_shapes=tuple(str(x) for x in d.get("exempt_shapes", ())),
            reject=tuple(str(x) for x in d.get("reject", ())),
            source_instructs=bool(d.get("source_instructs", False)),
            echo=tuple(str(x) for x in d.get("echo", ())),
            examples=tuple(str(x) for x in d.get("examples", ())),
            language=str(d.get("language", "any")),
        )


@dataclass(frozen=True, slots=True)
class Expansion:
    """One meta-prompt expansion of the plan and how many samples it draws."""

    metaprompt: str
    samples: int


@dataclass(frozen=True, slots=True)
class CompileCounts:
    """How much the compile produced and skipped."""

    requests: int
    validators: int
    tasks: int
    instructions: int
    skipped_tasks: int
    skipped_instructions: int


@dataclass(frozen=True, slots=True)
class TaskRequests:
    """Instructions sent and requests made for one task."""

    instructions: int
    requests: int


@dataclass(frozen=True, slots=True)
class CompiledManifest:
    """Everything a reader needs to trust and reproduce a compile.

    ``sources`` maps each loaded ``.iat`` file (relative to the files' common folder) to
    its SHA-256; ``skipped_tasks``/``skipped_instructions`` give the reason for every
    task or instruction that produced no request.
    """

    format: str
    plan: PlanSpec
    token_preference: tuple[str, ...]
    sources: dict[str, str]
    expansions: tuple[Expansion, ...]
    requests_per_instruction: int
    counts: CompileCounts
    per_task: dict[str, TaskRequests]
    skipped_tasks: dict[str, str]
    skipped_instructions: dict[str, str]
    token_families: dict[str, int]


@dataclass(frozen=True, slots=True)
class MetaPromptGroup:
    """A declared meta-prompt and its expansions (one per strategy when guided)."""

    name: str
    expansions: tuple[MetaPromptSpec, ...]


@dataclass(frozen=True, slots=True)
class CatalogSnapshot:
    """A resolved :class:`~instraug_dsl.lang.model.Catalog` as data, in declaration order.

    Name-keyed maps are stored as lists so that JSON's sorted keys cannot reorder them
    (task order decides which task claims an instance first).
    """

    format: str
    sources: dict[str, str]
    default_plan: str | None
    tasks: tuple[TaskSpec, ...]
    metaprompts: tuple[MetaPromptGroup, ...]
    bootstraps: tuple[BootstrapSpec, ...]
    plans: tuple[PlanSpec, ...]
    samplings: tuple[SamplingSpec, ...]
    source_paths: dict[str, str] = field(default_factory=dict)
    #: Absent from snapshots written before judges existed.
    judges: tuple[JudgeSpec, ...] = ()

    @classmethod
    def of(cls, catalog: Catalog, sources: Mapping[str, str]) -> CatalogSnapshot:
        """Snapshot ``catalog``; ``sources`` are the source hashes (relative path -> sha256)."""
        return cls(
            format=CATALOG_FORMAT,
            sources=dict(sources),
            default_plan=catalog.default_plan,
            tasks=tuple(catalog.tasks.values()),
            metaprompts=tuple(MetaPromptGroup(n, e) for n, e in catalog.metaprompts.items()),
            bootstraps=tuple(catalog.bootstraps.values()),
            plans=tuple(catalog.plans.values()),
            samplings=tuple(catalog.samplings.values()),
            source_paths=dict(catalog.source_paths),
            judges=tuple(catalog.judges.values()),
        )

    def catalog(self) -> Catalog:
        """The catalog again, equal to the one snapshotted."""
        return Catalog(
            tasks={t.name: t for t in self.tasks},
            metaprompts={g.name: g.expansions for g in self.metaprompts},
            bootstraps={b.name: b for b in self.bootstraps},
            plans={p.name: p for p in self.plans},
            samplings={s.name: s for s in self.samplings},
            source_paths=dict(self.source_paths),
            default_plan=self.default_plan,
            judges={j.name: j for j in self.judges},
        )


@dataclass(frozen=True)
class CompiledFiles:
    """The four files of a compiled plan, as read from (or about to be written to) disk."""

    requests: tuple[Request, ...]
    validators: dict[str, ValidatorSpec]
    manifest: CompiledManifest
    snapshot: CatalogSnapshot


def write_compiled(directory: Path, files: CompiledFiles) -> None:
    """Write requests, validators, manifest and catalog into ``directory`` (atomically each)."""
    write_jsonl(directory / REQUESTS, (r.to_json() for r in files.requests))
    write_json(
        directory / VALIDATORS, {k: v.to_json() for k, v in sorted(files.validators.items())}
    )
    write_json(directory / MANIFEST, encode(files.manifest))
    # Compact: the snapshot holds every span of every instruction piece.
    write_json(directory / CATALOG, encode(files.snapshot), indent=None)


def write_round(directory: Path, iteration: int, requests: Sequence[Request]) -> None:
    """Keep a derived round's requests next to the compiled plan."""
    write_jsonl(directory / round_file(iteration), (r.to_json() for r in requests))


def read_manifest(directory: Path) -> CompiledManifest:
    """Read ``manifest.json``; a :class:`ContractError` names the file and field."""
    path = directory / MANIFEST
    return decode(CompiledManifest, read_json(path), str(path))


def read_snapshot(directory: Path) -> CatalogSnapshot:
    """Read ``catalog.json``; a :class:`ContractError` names the file and field."""
    path = directory / CATALOG
    data = read_json(path)
    snapshot = decode(CatalogSnapshot, data, str(path))
    if snapshot.format != CATALOG_FORMAT:
        raise ContractError(
            f"{path}: format {snapshot.format!r}, expected {CATALOG_FORMAT!r} "
            "(written by another version of iatc: compile again)"
        )
    return snapshot


def read_requests(path: Path) -> tuple[Request, ...]:
    """Read a requests file; errors name the file and line."""
    return tuple(decode(Request, data, where) for where, data in iter_jsonl(path))


def read_compiled(directory: Path) -> CompiledFiles:
    """Read all four files back."""
    manifest = read_manifest(directory)
    if manifest.format != COMPILE_FORMAT:
        raise ContractError(
            f"{directory / MANIFEST}: format {manifest.format!r}, expected {COMPILE_FORMAT!r} "
            "(written by another version of iatc: compile again)"
        )
    raw: Any = read_json(directory / VALIDATORS)
    if not isinstance(raw, dict):
        raise ContractError(f"{directory / VALIDATORS}: expected an object of validators")
    validators = {
        key: decode(ValidatorSpec, value, f"{directory / VALIDATORS}: {key}")
        for key, value in raw.items()
    }
    return CompiledFiles(
        read_requests(directory / REQUESTS), validators, manifest, read_snapshot(directory)
    )
