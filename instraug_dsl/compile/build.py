"""The compiler driver: a resolved catalog and a plan in, requests and validators out.

One request per (task, source instruction, meta-prompt expansion,
temperature, sample index).  Held-out tasks, tasks outside the plan, tasks
marked ``augment false`` and pure-placeholder instructions are skipped with
a recorded reason.  Everything is derived from content and names, never from
declaration order or the machine, so request ids survive reordering and the
artifacts are byte-identical across runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..contract.compiled import (
    CatalogSnapshot,
    CompiledFiles,
    CompiledManifest,
    Request,
    TaskRequests,
    ValidatorSpec,
    read_compiled,
    write_compiled,
)
from ..errors import IatCompileError
from ..lang import ir
from ..lang.diagnostics import did_you_mean
from ..lang.model import Catalog, InstructionSpec, PlanSpec, TaskSpec, pieces_text
from .artifacts import build_manifest, snapshot
from .context import PlanContext
from .prompt import machinery_lines, render_example, render_messages
from .tokens import FAMILIES, PREFERENCE, Masked, choose_family, mask, template_pieces
from .validate import build_validator

#: Why a task or instruction produced no request.
SKIP_HELD_OUT = "held_out"
SKIP_AUGMENT_FALSE = "augment_false"
SKIP_NOT_IN_PLAN = "not_in_plan"
SKIP_PURE = "pure_placeholders"


def _sha(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class Compiled:
    """Compiler output: requests, validators by id, the manifest and the catalog snapshot.

    :meth:`write` and :meth:`read` go through :mod:`instraug_dsl.contract.compiled`; a
    compile read back from disk has the same :attr:`context` (catalog, plan, token
    preference) as one made in-process, so :func:`derive_requests` works on both.
    """

    requests: tuple[Request, ...]
    validators: dict[str, ValidatorSpec]
    manifest: CompiledManifest
    snapshot: CatalogSnapshot
    context: PlanContext = field(compare=False, repr=False)

    def request(self, request_id: str) -> Request:
        """Look a request up by id."""
        for r in self.requests:
            if r.id == request_id:
                return r
        raise KeyError(request_id)

    def validator_for(self, request: Request) -> ValidatorSpec:
        """The validator a request names."""
        return self.validators[request.validator]

    def write(self, out_dir: str | os.PathLike[str]) -> None:
        """Write requests, validators, manifest and catalog (deterministic bytes)."""
        files = CompiledFiles(self.requests, self.validators, self.manifest, self.snapshot)
        write_compiled(Path(out_dir), files)

    @classmethod
    def read(cls, out_dir: str | os.PathLike[str]) -> Compiled:
        """Load a compile written by :meth:`write`."""
        files = read_compiled(Path(out_dir))
        manifest = files.manifest
        context = PlanContext(
            files.snapshot.catalog(), manifest.plan, tuple(manifest.token_preference)
        )
        return cls(files.requests, files.validators, manifest, files.snapshot, context)


def _seed(plan_seed: int, identity: Sequence[object]) -> int:
    """A per-request seed from the plan seed and the request's identity (31 bits)."""
    return int(_sha([plan_seed, *identity])[:8], 16) & 0x7FFFFFFF


def _request_id(req: Request) -> str:
    content = {
        "messages": [[m.role, m.content] for m in req.messages],
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_tokens": req.max_tokens,
        "seed": req.seed,
    }
    return "r" + _sha(content)[:20]


def _slot_multiset(pieces: Sequence[ir.Piece]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(Counter(p.name for p in pieces if isinstance(p, ir.SlotRef)).items()))


def _bases(task: TaskSpec) -> dict[str, str]:
    return {s.name: s.base for s in task.slots}


def _validator(
    ctx: PlanContext,
    task: TaskSpec,
    masked: Masked,
    body: str,
    root: InstructionSpec,
    machinery: Sequence[str] = (),
    examples: Sequence[str] = (),
) -> ValidatorSpec:
    return build_validator(
        masked,
        source_body=body,
        root_slots=_slot_multiset(root.body),
        originals=[x for ins in task.instructions for x in (ins.text, ins.body_text)],
        lead=pieces_text(root.lead),
        trail=pieces_text(root.trail),
        length_ratio=ctx.plan.length_ratio,
        ordered=ctx.plan.placeholder_policy == "exact",
        slot_bases=_bases(task),
        reject=ctx.plan.reject,
        language=ctx.plan.language,
        machinery=machinery,
        examples=examples,
    )


def _requests_for(
    ctx: PlanContext,
    task: TaskSpec,
    root: InstructionSpec,
    instruction_id: str,
    parent: str | None,
    body_pieces: tuple[ir.Piece, ...],
    iteration: int,
    temperatures: Sequence[float],
    samples: Mapping[str, int] | None = None,
) -> tuple[list[Request], ValidatorSpec]:
    """Every request (all expansions, temperatures and samples) for one source body."""
    text = "".join(p.text for p in body_pieces if isinstance(p, ir.TextPiece))
    masked = mask(body_pieces, choose_family(text, ctx.preference))
    body = pieces_text(body_pieces)
    tokens = tuple(t for t, _ in masked.token_map)
    rendered = [
        (mp, n, render_messages(mp, masked.protected, tokens, task, family=masked.family))
        for mp, n in ctx.expansions()
    ]
    fam = FAMILIES[masked.family]
    pairs = {pair for mp, _ in ctx.expansions() for pair in mp.examples}
    examples = sorted({render_example(text, fam) for pair in pairs for text in pair})
    machinery = sorted(
        {
            line
            for _, _, messages in rendered
            for line in machinery_lines(messages, (masked.protected, *examples))
        }
    )
    spec = _validator(ctx, task, masked, body, root, machinery, examples)
    plan = ctx.plan
    out = []
    for mp, n, messages in rendered:
        for temp in temperatures:
            for sample in range(n if samples is None else samples.get(mp.name, n)):
                identity = [task.name, instruction_id, mp.name, round(temp, 6), sample, iteration]
                req = Request(
                    id="",
                    task=task.name,
                    instruction=instruction_id,
                    root=f"{task.name}/{root.name}",
                    parent=parent,
                    source_body=body,
                    protected=masked.protected,
                    lead=pieces_text(root.lead),
                    trail=pieces_text(root.trail),
                    metaprompt=mp.name,
                    temperature=round(temp, 6),
                    sample=sample,
                    seed=_seed(plan.seed, identity),
                    iteration=iteration,
                    messages=messages,
                    top_p=plan.top_p,
                    max_tokens=plan.max_tokens,
                    model=plan.model,
                    token_map=masked.token_map,
                    validator=spec.id,
                )
                out.append(_with_id(req))
    return out, spec


def _with_id(req: Request) -> Request:
    from dataclasses import replace

    return replace(req, id=_request_id(req))


def _task_skip(task: TaskSpec, plan: PlanSpec) -> str | None:
    if task.split == "test":
        return SKIP_HELD_OUT
    if plan.task_names is not None and task.name not in plan.task_names:
        return SKIP_NOT_IN_PLAN
    if plan.task_category is not None and task.category != plan.task_category:
        return SKIP_NOT_IN_PLAN
    if all(ins.pure_placeholder for ins in task.instructions):
        return SKIP_PURE  # checked before `augment false`: the more telling reason
    if not task.augment:
        return SKIP_AUGMENT_FALSE
    return None


def plan_context(
    catalog: Catalog, plan_name: str, preference: Sequence[str] = PREFERENCE
) -> PlanContext:
    """Resolve ``plan_name`` (with a did-you-mean hint when unknown)."""
    plan = catalog.plans.get(plan_name)
    if plan is None:
        hint = did_you_mean(plan_name, catalog.plans)
        known = ", ".join(sorted(catalog.plans)) or "none declared"
        raise IatCompileError(f"unknown plan `{plan_name}` ({hint or 'plans: ' + known})")
    return PlanContext(catalog, plan, tuple(preference))


def compile_plan(
    catalog: Catalog,
    plan_name: str,
    *,
    sources: Mapping[str, str] | None = None,
    preference: Sequence[str] = PREFERENCE,
) -> Compiled:
    """Compile one plan of a checked catalog into requests and validators.

    ``sources`` maps each loaded file's path to its text; their hashes go into
    the manifest (paths relative to the files' common directory).
    """
    ctx = plan_context(catalog, plan_name, preference)
    requests: list[Request] = []
    validators: dict[str, ValidatorSpec] = {}
    skipped_tasks: dict[str, str] = {}
    skipped_instructions: dict[str, str] = {}
    per_task: dict[str, TaskRequests] = {}
    for task in sorted(catalog.tasks.values(), key=lambda t: t.name):
        reason = _task_skip(task, ctx.plan)
        if reason is not None:
            skipped_tasks[task.name] = reason
            continue
        before = len(requests)
        used = 0
        for ins in task.instructions:
            ident = f"{task.name}/{ins.name}"
            if ins.pure_placeholder:
                skipped_instructions[ident] = "pure_placeholder"
                continue
            reqs, spec = _requests_for(
                ctx, task, ins, ident, None, ins.body, 0, ctx.plan.temperatures
            )
            requests.extend(reqs)
            validators[spec.id] = spec
            used += 1
        per_task[task.name] = TaskRequests(used, len(requests) - before)
    _check_unique(requests)
    manifest = build_manifest(
        ctx, requests, validators, sources or {}, skipped_tasks, skipped_instructions, per_task
    )
    validators = dict(sorted(validators.items()))
    return Compiled(tuple(requests), validators, manifest, snapshot(ctx, sources or {}), ctx)


def _check_unique(requests: Sequence[Request]) -> None:
    seen: dict[str, Request] = {}
    for r in requests:
        other = seen.setdefault(r.id, r)
        if other is not r:  # identical content and seed: a sha256 collision or a compiler bug
            raise IatCompileError(
                f"two requests share id {r.id}: {other.instruction} and {r.instruction}"
            )


def rewrite_id(task: str, root: str, body: str) -> str:
    """Stable id of an accepted rewrite (its task, root and restored body)."""
    return "w" + _sha([task, root, body])[:20]


def derive_requests(
    source: Compiled | PlanContext,
    accepted: Sequence[tuple[Request, str]],
    iteration: int,
) -> tuple[tuple[Request, ...], dict[str, ValidatorSpec]]:
    """MIns+_Iter: requests that rephrase accepted rewrites once more.

    For each ``(request, restored_body)`` (the body with ``{slot}`` refs, as in
    :attr:`Verdict.restored`) this makes one request per meta-prompt
    expansion of the plan, sample 0, at the parent request's temperature.
    Placeholders are checked against the root original, length against the
    rewrite being rephrased.  Duplicate bodies are derived once.
    """
    ctx = source.context if isinstance(source, Compiled) else source
    out: dict[str, Request] = {}
    validators: dict[str, ValidatorSpec] = {}
    for parent_req, body in accepted:
        task = ctx.catalog.tasks[parent_req.task]
        root_name = parent_req.root.split("/", 1)[1]
        root = next(ins for ins in task.instructions if ins.name == root_name)
        pieces = template_pieces(body)
        if _slot_multiset(pieces) != _slot_multiset(root.body):
            raise IatCompileError(
                f"rewrite of {parent_req.root} does not keep its placeholders: {body!r}"
            )
        wid = rewrite_id(task.name, parent_req.root, body)
        reqs, spec = _requests_for(
            ctx,
            task,
            root,
            wid,
            wid,
            pieces,
            iteration,
            (parent_req.temperature,),
            {mp.name: 1 for mp, _ in ctx.expansions()},
        )
        validators[spec.id] = spec
        for r in reqs:
            out.setdefault(r.id, r)
    return tuple(
        sorted(out.values(), key=lambda r: (r.task, r.root, r.instruction, r.metaprompt))
    ), validators
