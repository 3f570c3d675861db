"""``iatc materialize --executor ray``: MIns+ rows made with Ray Data, written as Parquet shards.

1. **Read.**  The input is cut into parts (:func:`~.sources.split_input`: ranges of a JSON
   Lines file that start at a line, or the files of a folder; a compressed stream is one
   part).  A Ray task reads each part with the local reader (:meth:`InstanceReader.read_part`:
   the same records, the same error rows with the same line numbers) and tells each
   record's task (:func:`~.materialize.classify`).  Bad lines and records no task claims
   are counted there and go no further.
2. **Render.**  The records are grouped by task (``groupby("task").map_groups``), put back
   in file order, and sampled and rendered by :class:`~.materialize.TaskRows`: every random
   stream of the sampler is its task's own, so each task's rows are the rows the local
   executor writes, instruction for instruction.
3. **Write.**  Ray Data writes each split's rows as Parquet shards with the local schema into
   a staging folder, renamed ``OUT/train/part-00000.parquet``, ... when complete (``test/``
   likewise).  The driver writes ``errors.jsonl`` (sorted by line: the local file's bytes),
   ``dropped.jsonl``, ``README.md`` (``data_files: train/*.parquet``) and ``manifest.json``
   (the local counts; ``outputs.shards`` lists every shard with its SHA-256).

What differs from the local executor: the rows are the same set, but their order and how
they are cut into shards are Ray's.  Each task's records are held in memory by one Ray task
while it renders them.  On a cluster of several machines, the instances and ``OUT`` must be
on a file system every node sees at the same path.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..cluster import cluster_cpus, ray_session, task_error
from ..contract.dataset import (
    CARD,
    DROPPED,
    ERRORS,
    InstancesRef,
    MaterializeManifest,
    MaterializeOptions,
    OutputFiles,
    write_manifest,
)
from ..contract.run import write_rows
from ..errors import OutputError, UsageError
from ..fsio import describe_os_error, sha256_file, write_text
from ..lang.model import TaskSpec
from .carry import CarryColumn
from .filters import TaskPool, run_pools
from .materialize import (
    Errors,
    Split,
    TaskRows,
    card,
    carried,
    check_output_dir,
    classify,
    is_dataset_dir,
    manifest_of,
    needed_columns,
    remove_stale_splits,
    strict_error,
    validate_options,
)
from .records import LineError, TaskIndex
from .run import Run
from .sources import InstanceReader, InstanceSource, Part, detect, require, split_input
from .writers import Column, JsonlWriter, arrow_schema, row_columns

#: Bytes of a JSON Lines input one reading task takes (about: a part ends at a line's end).
PART_BYTES = 64 << 20
#: Records per block handed from the readers to the grouping.
_BLOCK_ROWS = 4096
#: The key of the parts' reports (no task name is empty).
_REPORT = ""
_SPLITS = ("train", "test")


@dataclass(frozen=True)
class _Job:
    """What every Ray task of one materialize needs (sent once with the pipeline)."""

    source: InstanceSource
    parts: tuple[Part, ...]
    columns: frozenset[str] | None
    tasks: dict[str, TaskSpec]
    pools: dict[str, TaskPool]
    options: MaterializeOptions
    carry: tuple[CarryColumn, ...]
    row_columns: tuple[Column, ...]
    instances: Path


class _Collect:
    """A row writer that keeps the rows (in a Ray task)."""

    def __init__(self, name: str) -> None:
        self.path = Path(name)
        self.rows = 0
        self.items: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any], image: str | None = None, key: str = "") -> None:
        self.items.append(row)
        self.rows += 1

    def commit(self) -> None:
        """Nothing to finish."""

    def abort(self) -> None:
        self.items = []


def materialize_on_ray(
    run: Run,
    instances: Path,
    out_dir: Path,
    options: MaterializeOptions,
    *,
    force: bool = False,
    address: str | None = None,
) -> MaterializeManifest:
    """:func:`~.materialize.materialize` with Ray Data (``--executor ray``): the same rows,
    as Parquet shards in ``OUT/train/`` and ``OUT/test/``."""
    if options.format != "parquet":
        raise UsageError(
            f"--executor ray writes Parquet shards: --format {options.format} does not go "
            "with it (leave --format out, or use --executor local)"
        )
    validate_options(options)
    carry = carried(options)
    columns = row_columns([(c.name, c.dtype) for c in carry])
    source = detect(instances)
    require(source)
    check_output_dir(out_dir, force=force)
    replacing = is_dataset_dir(out_dir)
    for name in _SPLITS:
        if (out_dir / name).exists() and not replacing:
            raise OutputError(
                f"{out_dir / name} exists and is not a split of an iatc dataset; choose a new "
                "-o folder"
            )
    pools, drops = run_pools(run)
    split = split_input(source, PART_BYTES)
    job = _Job(
        source=source,
        parts=split.parts,
        columns=(
            None
            if source.format.startswith("jsonl")
            else frozenset(needed_columns(run, carry, None))
        ),
        tasks=dict(run.catalog.tasks),
        pools=pools,
        # The driver applies --strict to every error once all are known (the first by line).
        options=replace(options, strict=False),
        carry=tuple(carry),
        row_columns=tuple(columns),
        instances=instances,
    )
    with ray_session(address) as ray:
        importlib.import_module("ray.data")  # Ray Data: the [ray] extra is ray[data]
        _quiet(ray)
        try:
            rendered, reports = _render(ray, job)
            per_task, held_out, unmatched, error_rows, rows = _tally(reports, pools)
            if options.strict and error_rows:
                raise strict_error(instances, error_rows[0])
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"cannot create {out_dir}: {describe_os_error(exc)}") from None
            written = {"train": sum(c["written"] - c["test_written"] for c in per_task.values())}
            test_rows = sum(c["test_written"] for c in per_task.values())
            if options.test_instructions != "none" and test_rows:
                written["test"] = test_rows
            shards = {
                name: _write_split(rendered, name, out_dir, columns, count)
                for name, count in written.items()
            }
        except Exception as exc:
            raise task_error(ray, exc) from None
    errors = JsonlWriter(out_dir / ERRORS)
    for row in error_rows:
        errors.write(row)
    errors.commit()
    if replacing:
        remove_stale_splits(out_dir, set(shards))
    write_rows(out_dir / DROPPED, drops)
    files = {name: f"{name}/*.parquet" for name in shards}
    write_text(out_dir / CARD, card(run, files, "parquet", columns, None))
    listing = {name: _listing(files_of) for name, files_of in shards.items()}
    outputs = OutputFiles(
        data="train",
        data_sha256=listing["train"],
        test="test" if "test" in shards else None,
        test_sha256=listing.get("test"),
        errors=ERRORS,
        dropped=DROPPED,
        card=CARD,
        shards={
            name: {f"{name}/{file}": sha for file, sha in files_of.items()}
            for name, files_of in shards.items()
        },
    )
    inputs = InstancesRef(
        str(source.path), split.sha256, rows, source.format, split.file_hashes or None
    )
    manifest = manifest_of(
        run, inputs, options, pools, per_task, held_out, unmatched, len(error_rows), drops,
        outputs,
    )  # fmt: skip
    write_manifest(out_dir, manifest)
    return manifest


def _quiet(ray: Any) -> None:
    """No progress bars or per-dataset log lines on the driver's terminal (failures still
    come back as exceptions)."""
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False


def _render(ray: Any, job: _Job) -> tuple[Any, list[dict[str, Any]]]:
    """Read, group by task and render: the rendered rows (materialized) and the reports."""
    parts = ray.data.from_items([{"part": i} for i in range(len(job.parts))])
    records = parts.map_batches(_read, batch_size=1, batch_format="numpy", fn_kwargs={"job": job})
    grouping: dict[str, Any] = {}
    import inspect

    if "num_partitions" in inspect.signature(records.groupby).parameters:
        grouping["num_partitions"] = 2 * cluster_cpus(ray)
    rendered = (
        records.groupby("task", **grouping)
        .map_groups(_render_group, batch_format="pyarrow", fn_kwargs={"job": job})
        .materialize()
    )
    reports = rendered.map_batches(
        _select, batch_format="pyarrow", fn_kwargs={"split": "report", "columns": ["_report"]}
    ).take_all()
    return rendered, [json.loads(r["_report"]) for r in reports]


def _read(batch: dict[str, Any], job: _Job) -> Iterator[Any]:
    """A Ray task: read parts of the input; the records that belong to a task, and a report
    of the rest (error rows, unmatched records, the last row number)."""
    import pyarrow as pa

    schema = pa.schema([("task", pa.string()), ("row", pa.int64()), ("record", pa.binary())])
    index = TaskIndex(job.tasks)
    for i in batch["part"]:
        part = job.parts[int(i)]
        errors = Errors(_Collect("errors"), job.instances, strict=False)
        unmatched: Counter[str] = Counter()
        last = 0
        block: dict[str, list[Any]] = {"task": [], "row": [], "record": []}
        for line, rec in InstanceReader(job.source, job.columns).read_part(part):
            last = line
            task = classify(line, rec, index, errors, unmatched)
            if task is None or isinstance(rec, LineError):
                continue
            block["task"].append(task)
            block["row"].append(line)
            block["record"].append(pickle.dumps(rec, protocol=pickle.HIGHEST_PROTOCOL))
            if len(block["row"]) >= _BLOCK_ROWS:
                yield pa.table(block, schema=schema)
                block = {"task": [], "row": [], "record": []}
        assert isinstance(errors.writer, _Collect)
        report = {"errors": errors.writer.items, "unmatched": unmatched, "rows": last}
        block["task"].append(_REPORT)
        block["row"].append(0)
        block["record"].append(json.dumps(report).encode("utf-8"))
        yield pa.table(block, schema=schema)


def _render_group(group: Any, job: _Job) -> Any:
    """A Ray task: the records of one task, in file order, sampled and rendered (or, for
    the reports' group, the reports passed on)."""
    import pyarrow as pa

    schema = arrow_schema(job.row_columns)
    schema = schema.append(pa.field("_split", pa.string())).append(pa.field("_report", pa.string()))
    task = group.column("task")[0].as_py()
    payloads = group.column("record").to_pylist()
    if task == _REPORT:
        reports = [{"_split": "report", "_report": p.decode("utf-8")} for p in payloads]
        return pa.Table.from_pylist(reports, schema=schema)
    rows = group.column("row").to_pylist()
    splits = {"train": Split("train", "train.parquet", _Collect("train"))}
    if job.options.test_instructions != "none":
        splits["test"] = Split("test", "test.parquet", _Collect("test"))
    errors = Errors(_Collect("errors"), job.instances, strict=False)
    taker = TaskRows(job.pools, job.options, job.carry, None, splits, errors)
    for i in sorted(range(len(rows)), key=rows.__getitem__):
        taker.take(task, pickle.loads(payloads[i]), rows[i])
    out: list[dict[str, Any]] = []
    for name, split in splits.items():
        assert isinstance(split.writer, _Collect)
        out += [{**row, "_split": name} for row in split.writer.items]
    assert isinstance(errors.writer, _Collect)
    report = {
        "task": task,
        "counts": taker.per_task[task],
        "held_out": taker.held_out[task],
        "errors": errors.writer.items,
    }
    out.append({"_split": "report", "_report": json.dumps(report)})
    return pa.Table.from_pylist(out, schema=schema)


def _select(table: Any, split: str, columns: list[str]) -> Any:
    """The rows of one split (or the reports), with only ``columns``."""
    import pyarrow.compute as pc

    return table.filter(pc.equal(table["_split"], split)).select(columns)


def _tally(
    reports: list[dict[str, Any]], pools: dict[str, TaskPool]
) -> tuple[dict[str, Counter[str]], Counter[str], Counter[str], list[dict[str, Any]], int]:
    """The reports summed: counts per task, held-out and unmatched records, the error rows
    in line order, and the input's last row number."""
    per_task: dict[str, Counter[str]] = {name: Counter() for name in pools}
    held_out: Counter[str] = Counter()
    unmatched: Counter[str] = Counter()
    errors: list[dict[str, Any]] = []
    rows = 0
    for report in reports:
        errors += report["errors"]
        if "task" in report:
            per_task[report["task"]].update(report["counts"])
            if report["held_out"]:
                held_out[report["task"]] += report["held_out"]
        else:
            unmatched.update(report["unmatched"])
            rows = max(rows, report["rows"])
    errors.sort(key=lambda row: int(row["line"]))  # one error row per line at most
    return per_task, held_out, unmatched, errors, rows


def _write_split(
    rendered: Any, name: str, out_dir: Path, columns: tuple[Column, ...], count: int
) -> dict[str, str]:
    """Write one split's rows as Parquet shards into ``OUT/name/``; {shard: sha256}."""
    staging = out_dir / f".{name}.writing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        rows = rendered.map_batches(
            _select,
            batch_format="pyarrow",
            fn_kwargs={"split": name, "columns": [c for c, _ in columns]},
        )
        if count:
            rows.write_parquet(str(staging))
        shards = _name_shards(staging, columns)
        target = out_dir / name
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {file: sha256_file(target / file) for file in shards}


def _name_shards(staging: Path, columns: tuple[Column, ...]) -> list[str]:
    """Name the shards Ray wrote ``part-00000.parquet``, ... (empty ones removed; an empty
    split gets one empty shard, so that it loads)."""
    import pyarrow.parquet as pq

    staging.mkdir(parents=True, exist_ok=True)
    written = sorted(p for p in staging.iterdir() if p.suffix == ".parquet")
    kept = []
    for path in written:
        if pq.ParquetFile(str(path)).metadata.num_rows == 0:
            path.unlink()
        else:
            kept.append(path)
    if not kept:
        empty = staging / "empty.parquet"
        pq.write_table(arrow_schema(columns).empty_table(), str(empty))
        kept.append(empty)
    names = []
    for i, path in enumerate(kept):
        names.append(f"part-{i:05d}.parquet")
        path.rename(staging / f".{names[-1]}.tmp")
    for name in names:
        (staging / f".{name}.tmp").rename(staging / name)
    return names


def _listing(files: dict[str, str]) -> str:
    """SHA-256 of the ``sha256sum``-style listing of a split's shards."""
    import hashlib

    text = "".join(f"{sha}  {name}\n" for name, sha in sorted(files.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
