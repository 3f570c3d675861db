"""``iatc materialize``: stream instance records into MIns+ rows.

Memory is bounded by the run (instruction pools) and the number of tasks, never by the
instance file: records are read, rendered and written one at a time.  The per-task budget
keeps the *first N rendered records of each task in file order* (a streaming rule that
needs one counter per task; shuffle the input beforehand for a random subset).

Training tasks go to ``train.*`` with an instruction sampled from originals and kept
rewrites; held-out tasks go to ``test.*`` with their original instructions only (the
paper evaluates on them), one row per original instruction by default.  The files of the
output folder are listed in :mod:`instraug_dsl.contract.dataset`.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path
from typing import Any

from ..contract.dataset import (
    CARD,
    DROPPED,
    ERRORS,
    MANIFEST,
    MANIFEST_FORMAT,
    Counts,
    DropRow,
    FileRef,
    Inputs,
    InstancesRef,
    MaterializeManifest,
    MaterializeOptions,
    OutputFiles,
    TaskCounts,
    write_manifest,
)
from ..contract.run import write_rows
from ..errors import OutputError, RecordError, UsageError
from ..fsio import describe_os_error, file_format, json_kind, sha256_file, write_text
from .filters import Candidate, TaskPool, run_pools
from .records import LineError, ShapeError, TaskIndex, iter_records, record_id
from .render import RenderError, TaskRenderer, render_target
from .run import Run
from .sampling import MODES, Sampler
from .writers import FORMATS, JsonlWriter, RowWriter, dataset_card, open_writer


def validate_options(options: MaterializeOptions) -> None:
    """Raise :class:`UsageError` for an out-of-range option."""
    if options.mode not in MODES:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, not {options.mode!r}")
    if not 0.0 <= options.raw_share <= 1.0:
        raise UsageError("--raw-share must be within [0, 1]")
    if options.per_task is not None and options.per_task < 0:
        raise UsageError("--per-task must not be negative")
    if options.format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    if options.test_instructions not in ("all", "one", "none"):
        raise UsageError("--test-instructions must be `all`, `one` or `none`")


def is_dataset_dir(out_dir: Path) -> bool:
    """True when ``out_dir`` holds a dataset written by ``iatc materialize`` (its
    ``manifest.json`` has our format; a user's file of that name does not count)."""
    found = file_format(out_dir / MANIFEST) or ""
    return found.split("/", 1)[0] == MANIFEST_FORMAT.split("/", 1)[0]


def check_output_dir(out_dir: Path, *, force: bool = False) -> None:
    """Refuse a file, or a non-empty folder that is not a dataset folder of iatc."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} is a file; -o needs a folder for the dataset")
    if out_dir.is_dir() and not force and not is_dataset_dir(out_dir) and any(out_dir.iterdir()):
        raise OutputError(
            f"{out_dir} is a non-empty folder that is not an iatc dataset folder; choose a "
            "new folder, or pass --force to write into it anyway"
        )


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
            raise RecordError(f"{self.instances}:{line}: {who}: {where}{reason}")
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


def _unencodable(*texts: str) -> bool:
    """True when a text holds a lone surrogate (``\\ud800``), which UTF-8 cannot carry."""
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _task_name_key(name: object) -> str:
    """How an unmatched record's ``task_name`` is counted in the manifest (bounded)."""
    if isinstance(name, str):
        return name if len(name) <= 200 else name[:200] + "..."
    return "None" if name is None else f"<{json_kind(name)}>"


def _uid(record: dict[str, Any]) -> str | None:
    raw = record.get("unique_id")
    if raw is None or isinstance(raw, dict | list):
        return None
    text = str(raw)
    return None if _unencodable(text) else text


class _Split:
    """One output split: its writer, the file name, and rows written."""

    def __init__(self, out_dir: Path, name: str, fmt: str) -> None:
        self.filename = f"{name}.{fmt}"
        self.writer: RowWriter = open_writer(out_dir / self.filename, fmt)


def materialize(
    run: Run,
    instances: Path,
    out_dir: Path,
    options: MaterializeOptions,
    *,
    force: bool = False,
) -> MaterializeManifest:
    """Write MIns+ for ``run`` from ``instances`` into ``out_dir``; return the manifest.

    Raises :class:`~instraug_dsl.errors.DataError` for unreadable input and, with
    ``strict``, :class:`RecordError` for the first record that cannot be rendered (naming
    it).  Nothing is left half-written on failure; ``manifest.json`` is written last.
    """
    validate_options(options)
    if not instances.is_file():
        raise UsageError(f"{instances}: no such instance file")
    check_output_dir(out_dir, force=force)
    replacing = is_dataset_dir(out_dir)  # an earlier dataset of iatc is rewritten
    pools, drops = run_pools(run)
    train = {n: p for n, p in pools.items() if p.task.split != "test" and p.originals}
    test = {n: p for n, p in pools.items() if p.task.split == "test" and p.originals}
    renderers = {
        name: TaskRenderer([c.plan for c in pool.originals + pool.kept])
        for name, pool in (train | test).items()
    }
    sampler = Sampler(train, raw_share=options.raw_share, mode=options.mode, seed=options.seed)
    test_rngs: dict[str, random.Random] = {}
    index = TaskIndex(run.catalog.tasks)
    per_task: dict[str, Counter[str]] = {name: Counter() for name in pools}
    held_out: Counter[str] = Counter()
    unmatched: Counter[str] = Counter()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out_dir}: {describe_os_error(exc)}") from None
    splits = {"train": _Split(out_dir, "train", options.format)}
    if options.test_instructions != "none":
        splits["test"] = _Split(out_dir, "test", options.format)
    errors = _Errors(out_dir / ERRORS, instances, options.strict)
    digest = hashlib.sha256()
    lines = 0
    try:
        for line, rec in iter_records(instances, digest):
            lines = line
            if isinstance(rec, LineError):
                errors.add(line, None, None, rec.field, rec.reason)
                continue
            rid = record_id(rec, line)
            rid = f"line {line}" if _unencodable(rid) else rid
            uid = _uid(rec)
            try:
                task = index.match(rec)
            except ShapeError as exc:
                errors.add(line, rid, None, exc.field, exc.reason)
                continue
            if task is None:
                unmatched[_task_name_key(rec.get("task_name"))] += 1
                continue
            counts = per_task[task.name]
            if task.name in test:
                held_out[task.name] += 1
                counts["instances"] += 1
                if "test" not in splits:
                    continue
                pool = test[task.name]
                rng = test_rngs.setdefault(task.name, random.Random(f"{options.seed}/{task.name}"))
                chosen = (
                    pool.originals
                    if options.test_instructions == "all"
                    else [pool.originals[int(rng.random() * len(pool.originals))]]
                )
                for cand in chosen:
                    if not _emit(
                        splits["test"],
                        renderers[task.name],
                        cand,
                        rec,
                        rng,
                        uid,
                        task.name,
                        line,
                        rid,
                        counts,
                        errors,
                        options,
                    ):
                        break
                continue
            if task.name not in train:
                held_out[task.name] += 1
                continue
            counts["instances"] += 1
            if options.per_task is not None and counts["written"] >= options.per_task:
                counts["over_budget"] += 1
                continue
            choice = sampler.choose(task.name)
            if _emit(
                splits["train"],
                renderers[task.name],
                choice.candidate,
                rec,
                sampler.rng(task.name),
                uid,
                task.name,
                line,
                rid,
                counts,
                errors,
                options,
            ):
                counts["written"] += 1
                counts[choice.candidate.kind] += 1
                counts["fallback"] += choice.fallback
    except BaseException:
        for split in splits.values():
            split.writer.abort()
        errors.writer.abort()
        raise
    for split in splits.values():
        split.writer.commit()
    errors.writer.commit()
    if replacing:
        _remove_stale_splits(out_dir, {split.filename for split in splits.values()})
    write_rows(out_dir / DROPPED, drops)
    files = {name: split.filename for name, split in splits.items()}
    write_text(out_dir / CARD, _card(run, files, splits))
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
        out_dir,
        splits,
    )
    write_manifest(out_dir, manifest)
    return manifest


def _remove_stale_splits(out_dir: Path, written: set[str]) -> None:
    """Delete the data files of the dataset being replaced that this one does not write (the
    other format, a test split no longer wanted): they would pass for part of it."""
    for name in (f"{split}.{fmt}" for split in ("train", "test") for fmt in FORMATS):
        if name not in written:
            (out_dir / name).unlink(missing_ok=True)


def _emit(
    split: _Split,
    renderer: TaskRenderer,
    cand: Candidate,
    rec: dict[str, Any],
    rng: random.Random,
    uid: str | None,
    task: str,
    line: int,
    rid: str,
    counts: Counter[str],
    errors: _Errors,
    options: MaterializeOptions,
) -> bool:
    """Render and write one row; an unrenderable record is an error row (False)."""
    try:
        prompt = renderer.render(cand.plan, rec, rng, shuffle_options=options.shuffle_options)
        target = render_target(cand.plan, rec)
    except RenderError as exc:
        counts["errors"] += 1
        errors.add(line, rid, task, exc.field, exc.reason)
        return False
    if _unencodable(prompt, target):
        counts["errors"] += 1
        errors.add(line, rid, task, None, "a lone surrogate (e.g. \\ud800) cannot be written")
        return False
    split.writer.write(_row(rec, uid, task, prompt, target, cand))
    if split.filename.startswith("test."):
        counts["test_written"] += 1
        counts["written"] += 1  # a held-out task's rows are all in the test split
    return True


def _card(run: Run, files: dict[str, str], splits: dict[str, _Split]) -> str:
    plan = run.plan.name if run.plan is not None else "unknown"
    summary = (
        f"MIns+-style instruction-tuning data written by `iatc materialize` from the run "
        f"directory `{run.path.name}` (plan `{plan}`). The `train` split samples each "
        "instance's instruction from the task's original and generated instructions; the "
        "`test` split holds the held-out tasks with their original instructions only. "
        "`manifest.json` lists the inputs with their SHA-256, the options and the counts."
    )
    return dataset_card(files, "MIns+ dataset", summary)


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
    drops: list[DropRow],
    out_dir: Path,
    splits: dict[str, _Split],
) -> MaterializeManifest:
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
    tasks = {
        name: TaskCounts(
            split=pools[name].task.split,
            originals=len(pools[name].originals),
            accepted=pools[name].accepted,
            kept=len(pools[name].kept),
            dropped=len(pools[name].dropped),
            instances=c["instances"],
            written=c["written"],
            original=c["original"],
            generated=c["generated"],
            fallback=c["fallback"],
            over_budget=c["over_budget"],
            errors=c["errors"],
        )
        for name, c in sorted(per_task.items())
    }
    train_file = splits["train"].filename
    test_file = splits["test"].filename if "test" in splits else None
    return MaterializeManifest(
        format=MANIFEST_FORMAT,
        inputs=Inputs(
            run_dir=str(run.path),
            instructions=FileRef(str(run.path / "instructions.jsonl"), run.instructions_sha256),
            instances=InstancesRef(str(instances), instances_sha, lines),
            iat=dict(sorted(run.sources.items())),
            plan=run.plan.name if run.plan is not None else None,
        ),
        options=options,
        dedup_threshold=run.dedup_threshold,
        outputs=OutputFiles(
            data=train_file,
            data_sha256=sha256_file(out_dir / train_file),
            test=test_file,
            test_sha256=sha256_file(out_dir / test_file) if test_file else None,
            errors=ERRORS,
            dropped=DROPPED,
            card=CARD,
        ),
        counts=Counts(
            written=sum(c["written"] - c["test_written"] for c in per_task.values()),
            original=sum(c["original"] for c in per_task.values()),
            generated=sum(c["generated"] for c in per_task.values()),
            test_written=sum(c["test_written"] for c in per_task.values()),
            errors=n_errors,
            over_budget=sum(c["over_budget"] for c in per_task.values()),
            held_out=sum(held_out.values()),
            unmatched=sum(unmatched.values()),
            dropped_instructions=dict(sorted(Counter(d.reason for d in drops).items())),
        ),
        held_out=dict(sorted(held_out.items())),
        unmatched=dict(sorted(unmatched.items())),
        tasks=tasks,
        warnings=tuple(warnings),
    )
