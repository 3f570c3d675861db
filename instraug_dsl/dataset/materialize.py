"""``iatc materialize``: stream instance records into MIns+ rows.

Memory is bounded by the run (instruction pools) and the number of tasks, never by the
instance file: records are read, rendered and written one at a time.  The per-task budget
keeps the *first N rendered records of each task in file order* (a streaming rule that
needs one counter per task; shuffle the input beforehand for a random subset).

Output directory ``OUT``: ``train.jsonl`` or ``train.parquet`` (rows), ``errors.jsonl``
(records that could not be rendered), ``dropped.jsonl`` (rewrites removed by the corpus
filters) and ``manifest.json`` (inputs with hashes, options, counts per task, warnings).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from .filters import Candidate, DropRecord, TaskPool, run_pools
from .records import LineError, ShapeError, TaskIndex, iter_records, record_id, sha256_file
from .render import RenderError, TaskRenderer, render_target
from .run import Run
from .sampling import MODES, Sampler
from .writers import FORMATS, JsonlWriter, RowWriter, open_writer

MANIFEST_FORMAT = "iatc-mins-plus/1"


@dataclass(frozen=True, slots=True)
class MaterializeOptions:
    """How to sample and render; the defaults are METHOD.md's."""

    raw_share: float = 0.5
    mode: str = "mixed"
    seed: int = 0
    per_task: int | None = None
    strict: bool = False
    format: str = "jsonl"
    shuffle_options: bool = True

    def validate(self) -> None:
        """Raise ValueError for an out-of-range option."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if not 0.0 <= self.raw_share <= 1.0:
            raise ValueError("--raw-share must be within [0, 1]")
        if self.per_task is not None and self.per_task < 0:
            raise ValueError("--per-task must not be negative")
        if self.format not in FORMATS:
            raise ValueError(f"--format must be one of {', '.join(FORMATS)}")


class _Errors:
    """The errors file plus the strict-mode switch."""

    def __init__(self, path: Path, instances: Path, strict: bool) -> None:
        self.writer = JsonlWriter(path)
        self.instances = instances
        self.strict = strict
        self.count = 0

    def add(
        self, line: int, uid: str | None, task: str | None, field: str | None, reason: str
    ) -> None:
        self.count += 1
        if self.strict:
            who = f"record {uid}" if uid else "a record"
            where = f"{field}: " if field else ""
            raise DataError(f"{self.instances}:{line}: {who}: {where}{reason}")
        self.writer.write(
            {"line": line, "unique_id": uid, "task": task, "field": field, "reason": reason}
        )


def _row(
    record: dict[str, Any], uid: str | None, task: str, prompt: str, target: str, cand: Candidate
) -> dict[str, Any]:
    image = record.get("image_path")
    name = record.get("task_name")
    return {
        "unique_id": uid,
        "task": task,
        "task_name": name if isinstance(name, str) else None,
        "image_path": image if isinstance(image, str) else None,
        "prompt": prompt,
        "target": target,
        "instruction_id": cand.id,
        "instruction_kind": cand.kind,
        "root": cand.root,
        "metaprompt": cand.metaprompt,
        "temperature": cand.temperature,
        "model": cand.model,
    }


def _task_summary(pool: TaskPool, counts: Counter[str]) -> dict[str, Any]:
    return {
        "split": pool.task.split,
        "originals": len(pool.originals),
        "accepted": pool.accepted,
        "kept": len(pool.kept),
        "dropped": len(pool.dropped),
        "instances": counts["instances"],
        "written": counts["written"],
        "original": counts["original"],
        "generated": counts["generated"],
        "fallback": counts["fallback"],
        "over_budget": counts["over_budget"],
        "errors": counts["errors"],
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> JsonlWriter:
    writer = JsonlWriter(path)
    for row in rows:
        writer.write(row)
    return writer


def materialize(
    run: Run, instances: Path, out_dir: Path, options: MaterializeOptions
) -> dict[str, Any]:
    """Write MIns+ for ``run`` from ``instances`` into ``out_dir``; return the manifest.

    Raises :class:`DataError` for unreadable input and, with ``strict``, for the first
    record that cannot be rendered (naming it).  Nothing is left half-written on failure.
    """
    options.validate()
    if not instances.is_file():
        raise DataError(f"{instances}: no such instance file")
    out_dir.mkdir(parents=True, exist_ok=True)
    pools, drops = run_pools(run)
    train = {
        name: pool for name, pool in pools.items() if pool.task.split != "test" and pool.originals
    }
    renderers = {
        name: TaskRenderer([c.plan for c in pool.originals + pool.kept])
        for name, pool in train.items()
    }
    sampler = Sampler(train, raw_share=options.raw_share, mode=options.mode, seed=options.seed)
    index = TaskIndex(run.catalog.tasks)
    per_task: dict[str, Counter[str]] = {name: Counter() for name in pools}
    held_out: Counter[str] = Counter()
    unmatched: Counter[str] = Counter()
    data_path = out_dir / f"train.{options.format}"
    data: RowWriter = open_writer(data_path, options.format)
    errors = _Errors(out_dir / "errors.jsonl", instances, options.strict)
    digest = hashlib.sha256()
    lines = 0
    try:
        for line, rec in iter_records(instances, digest):
            lines = line
            if isinstance(rec, LineError):
                errors.add(line, None, None, None, rec.reason)
                continue
            rid = record_id(rec, line)
            raw_uid = rec.get("unique_id")
            uid = None if raw_uid is None or isinstance(raw_uid, dict | list) else str(raw_uid)
            try:
                task = index.match(rec)
            except ShapeError as exc:
                errors.add(line, rid, None, exc.field, exc.reason)
                continue
            if task is None:
                unmatched[str(rec.get("task_name"))] += 1
                continue
            if task.name not in train:
                held_out[task.name] += 1
                continue
            counts = per_task[task.name]
            counts["instances"] += 1
            if options.per_task is not None and counts["written"] >= options.per_task:
                counts["over_budget"] += 1
                continue
            choice = sampler.choose(task.name)
            cand = choice.candidate
            try:
                prompt = renderers[task.name].render(
                    cand.plan, rec, sampler.rng(task.name), shuffle_options=options.shuffle_options
                )
                target = render_target(cand.plan, rec)
            except RenderError as exc:
                counts["errors"] += 1
                errors.add(line, rid, task.name, exc.field, exc.reason)
                continue
            data.write(_row(rec, uid, task.name, prompt, target, cand))
            counts["written"] += 1
            counts[cand.kind] += 1
            counts["fallback"] += choice.fallback
    except BaseException:
        data.abort()
        errors.writer.abort()
        raise
    data.commit()
    errors.writer.commit()
    _write_jsonl(out_dir / "dropped.jsonl", [d.to_json() for d in drops]).commit()
    manifest = _manifest(
        run,
        instances,
        digest.hexdigest(),
        lines,
        options,
        pools,
        per_task,
        held_out,
        unmatched,
        errors.count,
        drops,
        data_path,
    )
    tmp = out_dir / "manifest.json.partial"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out_dir / "manifest.json")
    return manifest


def _manifest(
    run: Run,
    instances: Path,
    instances_sha: str,
    lines: int,
    options: MaterializeOptions,
    pools: dict[str, TaskPool],
    per_task: dict[str, Counter[str]],
    held_out: Counter[str],
    unmatched: Counter[str],
    n_errors: int,
    drops: list[DropRecord],
    data_path: Path,
) -> dict[str, Any]:
    warnings = list(run.warnings)
    for augment, why in ((True, "no kept rewrites"), (False, "`augment false`")):
        names = [
            n for n, c in per_task.items() if c["fallback"] and pools[n].task.augment is augment
        ]
        if names:
            n_inst = sum(per_task[n]["fallback"] for n in names)
            warnings.append(
                f"{len(names)} task(s) with {why} fell back to original instructions for "
                f"{n_inst} instance(s): {', '.join(sorted(names))}"
            )
    tasks = {name: _task_summary(pools[name], per_task[name]) for name in sorted(pools)}
    drop_reasons = Counter(d.reason for d in drops)
    return {
        "format": MANIFEST_FORMAT,
        "inputs": {
            "run_dir": str(run.path),
            "instructions": {
                "path": str(run.path / "instructions.jsonl"),
                "sha256": run.instructions_sha256,
            },
            "instances": {"path": str(instances), "sha256": instances_sha, "lines": lines},
            "iat": dict(sorted(run.iat_files.items())),
            "plan": run.plan.name if run.plan is not None else None,
        },
        "options": {**asdict(options), "dedup_threshold": run.dedup_threshold},
        "seed": options.seed,
        "outputs": {
            "data": data_path.name,
            "data_sha256": sha256_file(data_path),
            "errors": "errors.jsonl",
            "dropped": "dropped.jsonl",
        },
        "counts": {
            "written": sum(c["written"] for c in per_task.values()),
            "original": sum(c["original"] for c in per_task.values()),
            "generated": sum(c["generated"] for c in per_task.values()),
            "errors": n_errors,
            "over_budget": sum(c["over_budget"] for c in per_task.values()),
            "held_out": sum(held_out.values()),
            "unmatched": sum(unmatched.values()),
            "dropped_instructions": dict(sorted(drop_reasons.items())),
        },
        "held_out": dict(sorted(held_out.items())),
        "unmatched": dict(sorted(unmatched.items())),
        "tasks": tasks,
        "warnings": warnings,
    }
