"""``iatc materialize``: stream instance records into MIns+ rows.

Memory is bounded by the run (instruction pools) and the number of tasks, never by the
instance file: records are read, rendered and written one at a time.  The per-task budget
keeps the *first N rendered records of each task in file order* (a streaming rule that
needs one counter per task; shuffle the input beforehand for a random subset).

Training tasks go to ``train.*`` with an instruction sampled from originals and kept
rewrites; held-out tasks go to ``test.*`` with their original instructions only (the
paper evaluates on them), one row per original instruction by default.  The files of the
output folder are listed in :mod:`instraug_dsl.contract.dataset`.

The instances come in any format :mod:`~instraug_dsl.dataset.sources` reads (JSON Lines,
compressed or not, Parquet, Arrow, a ``save_to_disk`` folder); the rows go out in any
format of :mod:`~instraug_dsl.dataset.writers`, with the carried columns of
:mod:`~instraug_dsl.dataset.carry`.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from collections.abc import Sequence
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
from ..lang.model import PathKey
from .carry import CarryColumn, carry_columns, parse_path
from .filters import Candidate, TaskPool, run_pools
from .records import LineError, ShapeError, TaskIndex, lookup, record_id
from .render import RenderError, TaskRenderer
from .run import Run
from .sampling import MODES, Sampler
from .sources import InstanceReader, detect, require
from .writers import (
    FORMATS,
    OFA_COLUMNS,
    SUFFIXES,
    Column,
    JsonlWriter,
    MessagesWriter,
    RowWriter,
    dataset_card,
    open_writer,
    output_features,
    reserved_names,
    row_columns,
)

#: The trainer formats, which need each row's image.
TRAINER_FORMATS = ("messages", "llava", "ofa-tsv")


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
    carried(options)
    image_path(options)


def carried(options: MaterializeOptions) -> tuple[CarryColumn, ...]:
    """The carried columns of ``options`` (:class:`UsageError` for a bad carry spec)."""
    if isinstance(options.carry, str):  # a lone string would be read letter by letter
        raise UsageError("--carry: `carry` is a tuple of carry specs, not one string")
    return carry_columns(options.carry, reserved_names(options.format))


def image_path(options: MaterializeOptions) -> tuple[PathKey, ...] | None:
    """The record path of a row's image (``None``: rows have no image)."""
    if not options.image_field:
        return None
    try:
        return parse_path(options.image_field)
    except ValueError as exc:
        raise UsageError(f"--image-field {options.image_field!r}: {exc}") from None


def needed_columns(
    run: Run, carry: Sequence[CarryColumn], image: Sequence[PathKey] | None
) -> set[str]:
    """The top-level fields materialize can read: the rest of a columnar input is skipped."""
    needed = {"task_name", "unique_id"}
    for task in run.catalog.tasks.values():
        needed.add(str(task.target[0]))
        if task.condition is not None:
            needed.add(str(task.condition[1][0]))
        needed.update(str(slot.source[0]) for slot in task.slots if slot.source)
    needed.update(str(column.path[0]) for column in carry)
    if image:
        needed.add(str(image[0]))
    return needed


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


class Errors:
    """The error rows (``errors.jsonl``, or a list in a Ray task) plus the strict-mode
    switch."""

    def __init__(self, writer: RowWriter, instances: Path, strict: bool) -> None:
        self.writer = writer
        self.instances = instances
        self.strict = strict
        self.count = 0

    def add(
        self, line: int, uid: str | None, task: str | None, field: str | None, reason: str
    ) -> None:
        self.count += 1
        row = {"line": line, "unique_id": uid, "task": task, "field": field, "reason": reason}
        if self.strict:
            raise strict_error(self.instances, row)
        self.writer.write(row, None, "")


def strict_error(instances: Path, row: dict[str, Any]) -> RecordError:
    """``--strict``: the error for the first record that cannot be rendered (an error row)."""
    who = f"record {row['unique_id']}" if row["unique_id"] else "a record"
    where = f"{row['field']}: " if row["field"] else ""
    return RecordError(f"{instances}:{row['line']}: {who}: {where}{row['reason']}")


def _row(
    record: dict[str, Any],
    uid: str | None,
    task: str,
    prompt: str,
    target: str,
    cand: Candidate,
    carry: Sequence[CarryColumn],
) -> dict[str, Any]:
    row: dict[str, Any] = {"unique_id": uid, "task": task}
    for column in carry:
        path = column.path
        if len(path) == 1 and column.type == "string":  # the common case, kept cheap
            value = record.get(path[0])  # type: ignore[arg-type]
            row[column.name] = value if isinstance(value, str) else None
        else:
            row[column.name] = column.value(record)
    row["prompt"] = prompt
    row["target"] = target
    row["instruction_id"] = cand.id
    row["instruction_kind"] = cand.kind
    row["root"] = cand.root
    row["metaprompt"] = cand.metaprompt
    row["temperature"] = cand.temperature
    row["model"] = cand.model
    return row


def _image(record: dict[str, Any], path: Sequence[PathKey] | None) -> str | None:
    """The row's image path: a non-empty string at ``path``, else ``None``."""
    if path is None:
        return None
    try:
        value = lookup(record, path)
    except ShapeError:
        return None
    return value if isinstance(value, str) and value else None


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
    if raw is None or isinstance(raw, dict | list | bytes):
        return None
    text = str(raw)
    return None if _unencodable(text) else text


def ids(record: dict[str, Any], line: int) -> tuple[str, str | None]:
    """A record's id in reports (``unique_id`` or ``line N``) and its ``unique_id`` column."""
    rid = record_id(record, line)
    return (f"line {line}" if _unencodable(rid) else rid), _uid(record)


def classify(
    line: int,
    record: dict[str, Any] | LineError,
    index: TaskIndex,
    errors: Errors,
    unmatched: Counter[str],
) -> str | None:
    """The task a record of the input belongs to; ``None`` when it is an error row (a bad
    line, a condition that meets the wrong shape) or no task claims it (counted)."""
    if isinstance(record, LineError):
        errors.add(line, None, None, record.field, record.reason)
        return None
    try:
        task = index.match(record)
    except ShapeError as exc:
        errors.add(line, ids(record, line)[0], None, exc.field, exc.reason)
        return None
    if task is None:
        unmatched[_task_name_key(record.get("task_name"))] += 1
        return None
    return task.name


class Split:
    """One output split: its name, file name and writer (which counts the rows)."""

    def __init__(self, name: str, filename: str, writer: RowWriter) -> None:
        self.name = name
        self.filename = filename
        self.writer = writer

    @classmethod
    def open(cls, out_dir: Path, name: str, fmt: str, columns: Sequence[Column]) -> Split:
        """The split ``name`` written to its file in ``out_dir``."""
        filename = f"{name}{SUFFIXES[fmt]}"
        return cls(name, filename, open_writer(out_dir / filename, fmt, columns))


class TaskRows:
    """Sampling and rendering, one record of a known task at a time.

    Every random stream is the task's own (seeded with ``"<seed>/<task>"``), so what a task's
    records become depends on the seed and that task's records in file order only: the
    records of each task may be handed over task by task (a Ray task per task) and give the
    same rows.
    """

    def __init__(
        self,
        pools: dict[str, TaskPool],
        options: MaterializeOptions,
        carry: Sequence[CarryColumn],
        image: Sequence[PathKey] | None,
        splits: dict[str, Split],
        errors: Errors,
    ) -> None:
        self.options = options
        self.train = {n: p for n, p in pools.items() if p.task.split != "test" and p.originals}
        self.test = {n: p for n, p in pools.items() if p.task.split == "test" and p.originals}
        self.sampler = Sampler(
            self.train, raw_share=options.raw_share, mode=options.mode, seed=options.seed
        )
        self.splits = splits
        self.errors = errors
        self.emit = _Emitter(carry, image, options.shuffle_options)
        self.per_task: dict[str, Counter[str]] = {name: Counter() for name in pools}
        self.held_out: Counter[str] = Counter()
        self._renderers: dict[str, TaskRenderer] = {}
        self._test_rngs: dict[str, random.Random] = {}

    def _renderer(self, task: str) -> TaskRenderer:
        found = self._renderers.get(task)
        if found is None:
            pool = self.train[task] if task in self.train else self.test[task]
            found = self._renderers[task] = TaskRenderer(
                [c.plan for c in pool.originals + pool.kept]
            )
        return found

    def take(self, task: str, record: dict[str, Any], line: int) -> None:
        """Sample, render and write the rows of one record of ``task``."""
        rid, uid = ids(record, line)
        counts = self.per_task[task]
        options = self.options
        if task in self.test:
            self.held_out[task] += 1
            counts["instances"] += 1
            split = self.splits.get("test")
            if split is None:
                return
            pool = self.test[task]
            rng = self._test_rngs.setdefault(task, random.Random(f"{options.seed}/{task}"))
            chosen = (
                pool.originals
                if options.test_instructions == "all"
                else [pool.originals[int(rng.random() * len(pool.originals))]]
            )
            for cand in chosen:
                if not self.emit(
                    split, self._renderer(task), cand, record, rng, uid, task, line, rid,
                    counts, self.errors,
                ):  # fmt: skip
                    break
            return
        if task not in self.train:
            self.held_out[task] += 1
            return
        counts["instances"] += 1
        if options.per_task is not None and counts["written"] >= options.per_task:
            counts["over_budget"] += 1
            return
        choice = self.sampler.choose(task)
        if self.emit(
            self.splits["train"], self._renderer(task), choice.candidate, record,
            self.sampler.rng(task), uid, task, line, rid, counts, self.errors,
        ):  # fmt: skip
            counts["written"] += 1
            counts[choice.candidate.kind] += 1
            counts["fallback"] += choice.fallback


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
    carry = carried(options)
    image = image_path(options) if options.format in TRAINER_FORMATS else None
    columns = row_columns([(c.name, c.dtype) for c in carry])
    source = detect(instances)
    require(source)
    check_output_dir(out_dir, force=force)
    replacing = is_dataset_dir(out_dir)  # an earlier dataset of iatc is rewritten
    pools, drops = run_pools(run)
    index = TaskIndex(run.catalog.tasks)
    unmatched: Counter[str] = Counter()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out_dir}: {describe_os_error(exc)}") from None
    reader = InstanceReader(
        source, None if source.format.startswith("jsonl") else needed_columns(run, carry, image)
    )
    splits: dict[str, Split] = {}
    errors: Errors | None = None
    try:
        splits["train"] = Split.open(out_dir, "train", options.format, columns)
        if options.test_instructions != "none":
            splits["test"] = Split.open(out_dir, "test", options.format, columns)
        errors = Errors(JsonlWriter(out_dir / ERRORS), instances, options.strict)
        tasks = TaskRows(pools, options, carry, image, splits, errors)
        for line, rec in reader:
            task = classify(line, rec, index, errors, unmatched)
            if task is not None and not isinstance(rec, LineError):
                tasks.take(task, rec, line)
    except BaseException:
        for split in splits.values():
            split.writer.abort()
        if errors is not None:
            errors.writer.abort()
        raise
    if "test" in splits and splits["test"].writer.rows == 0:
        # No held-out instances: an empty file would not load as a split, so there is none.
        splits.pop("test").writer.abort()
    vision = _messages_layout(splits)
    for split in splits.values():
        split.writer.commit()
    errors.writer.commit()
    if replacing:
        remove_stale_splits(out_dir, {split.filename for split in splits.values()})
    write_rows(out_dir / DROPPED, drops)
    files = {name: split.filename for name, split in splits.items()}
    write_text(out_dir / CARD, card(run, files, options.format, columns, vision))
    train_file = splits["train"].filename
    test_file = splits["test"].filename if "test" in splits else None
    outputs = OutputFiles(
        data=train_file,
        data_sha256=sha256_file(out_dir / train_file),
        test=test_file,
        test_sha256=sha256_file(out_dir / test_file) if test_file else None,
        errors=ERRORS,
        dropped=DROPPED,
        card=CARD,
        messages_content=None if vision is None else ("parts" if vision else "text"),
    )
    inputs = InstancesRef(
        str(source.path), reader.sha256, reader.rows, source.format, reader.file_hashes or None
    )
    manifest = manifest_of(
        run, inputs, options, pools, tasks.per_task, tasks.held_out, unmatched, errors.count,
        drops, outputs,
    )  # fmt: skip
    write_manifest(out_dir, manifest)
    return manifest


def _messages_layout(splits: dict[str, Split]) -> bool | None:
    """For ``messages``: whether the dataset uses the vision (parts) form, decided over
    every split together (both must have one ``content`` type); ``None`` otherwise."""
    writers = [s.writer for s in splits.values() if isinstance(s.writer, MessagesWriter)]
    if not writers:
        return None
    vision = any(w.images for w in writers)
    for writer in writers:
        writer.vision = vision
    return vision


def remove_stale_splits(out_dir: Path, written: set[str]) -> None:
    """Delete the data files of the dataset being replaced that this one does not write (the
    other format, a test split no longer wanted, the shard folders of ``--executor ray``):
    they would pass for part of it."""
    for name in (f"{split}{SUFFIXES[fmt]}" for split in ("train", "test") for fmt in FORMATS):
        if name not in written:
            (out_dir / name).unlink(missing_ok=True)
    for name in ("train", "test"):
        if name not in written and (out_dir / name).is_dir():
            shutil.rmtree(out_dir / name)


class _Emitter:
    """Renders and writes one row: the per-run settings of :meth:`__call__`."""

    def __init__(
        self, carry: Sequence[CarryColumn], image: Sequence[PathKey] | None, shuffle: bool
    ) -> None:
        self.carry = tuple(carry)
        self.image = tuple(image) if image is not None else None
        self.shuffle = shuffle

    def __call__(
        self,
        split: Split,
        renderer: TaskRenderer,
        cand: Candidate,
        rec: dict[str, Any],
        rng: random.Random,
        uid: str | None,
        task: str,
        line: int,
        rid: str,
        counts: Counter[str],
        errors: Errors,
    ) -> bool:
        """Render and write one row; an unrenderable record is an error row (False)."""
        try:
            prompt, target = renderer.render_row(cand.plan, rec, rng, shuffle_options=self.shuffle)
        except RenderError as exc:
            counts["errors"] += 1
            errors.add(line, rid, task, exc.field, exc.reason)
            return False
        if _unencodable(prompt, target):
            counts["errors"] += 1
            errors.add(line, rid, task, None, "a lone surrogate (e.g. \\ud800) cannot be written")
            return False
        row = _row(rec, uid, task, prompt, target, cand, self.carry)
        split.writer.write(row, _image(rec, self.image), rid)
        if split.name == "test":
            counts["test_written"] += 1
            counts["written"] += 1  # a held-out task's rows are all in the test split
        return True


_DESCRIPTIONS = {
    "jsonl": "one MIns+ row per line (JSON Lines)",
    "parquet": "MIns+ rows in Parquet",
    "messages": (
        "chat rows in the TRL / HF chat-template convention (`messages`, plus `images` when "
        "any row has an image), with the MIns+ provenance columns"
    ),
    "llava": (
        "one JSON array of LLaVA conversations (`id`, `image`, `conversations` with "
        "`human`/`gpt` turns; `<image>` starts the human turn of a row with an image), with "
        "the MIns+ provenance columns"
    ),
    "ofa-tsv": (
        "OFA's tab-separated rows without a header, columns "
        "uniq_id, image (the image path), prompt, target, task, instruction_id, "
        "instruction_kind; tabs, newlines and backslashes escaped as `\\t`, `\\n`, `\\\\`"
    ),
}


def card(
    run: Run,
    files: dict[str, str],
    fmt: str,
    columns: Sequence[Column],
    vision: bool | None,
) -> str:
    """The dataset card (``README.md``): ``files`` is {split: path or glob}."""
    plan = run.plan.name if run.plan is not None else "unknown"
    summary = (
        f"MIns+-style instruction-tuning data written by `iatc materialize` from the run "
        f"directory `{run.path.name}` (plan `{plan}`). The `train` split samples each "
        "instance's instruction from the task's original and generated instructions; the "
        "`test` split holds the held-out tasks with their original instructions only. "
        "`manifest.json` lists the inputs with their SHA-256, the options and the counts."
    )
    config: list[str] = []
    if fmt in TRAINER_FORMATS:
        listed = ", ".join(f"`{name}`" for name in files.values())
        summary += f"\n\nFiles ({listed}): {_DESCRIPTIONS[fmt]}."
    if fmt == "ofa-tsv":
        config = [
            'sep: "\\t"',
            "quoting: 3",
            "na_filter: false",
            f"column_names: [{', '.join(OFA_COLUMNS)}]",
        ]
    features = output_features(fmt, columns, vision=bool(vision))
    return dataset_card(files, "MIns+ dataset", summary, features, config)


def manifest_of(
    run: Run,
    instances: InstancesRef,
    options: MaterializeOptions,
    pools: dict[str, TaskPool],
    per_task: dict[str, Counter[str]],
    held_out: Counter[str],
    unmatched: Counter[str],
    n_errors: int,
    drops: list[DropRow],
    outputs: OutputFiles,
) -> MaterializeManifest:
    """``manifest.json`` of a written dataset, from what was read and counted."""
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
    return MaterializeManifest(
        format=MANIFEST_FORMAT,
        inputs=Inputs(
            run_dir=str(run.path),
            instructions=FileRef(str(run.path / "instructions.jsonl"), run.instructions_sha256),
            instances=instances,
            iat=dict(sorted(run.sources.items())),
            plan=run.plan.name if run.plan is not None else None,
        ),
        options=options,
        dedup_threshold=run.dedup_threshold,
        outputs=outputs,
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
