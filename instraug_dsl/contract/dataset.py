"""A materialized dataset's files (``iatc materialize -o OUT``).

::

    OUT/
      train.jsonl | train.parquet   MIns+ rows of the training tasks (or, with a trainer
                                    format, train.messages.jsonl | train.llava.json |
                                    train.ofa.tsv; with --executor ray, the folder train/
                                    of Parquet shards part-00000.parquet, ...)
      test.*                        held-out tasks, original instructions only, same format
      README.md                     dataset card: splits and features (HF datasets reads it)
      errors.jsonl                  ErrorRow: records that could not be rendered
      dropped.jsonl                 DropRow: rewrites removed by the corpus filters
      manifest.json                 MaterializeManifest: inputs with hashes, options, counts
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..fsio import read_json, write_json
from .codec import decode, encode

MANIFEST_FORMAT = "iatc-mins-plus/2"
MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
DROPPED = "dropped.jsonl"
CARD = "README.md"

Format = Literal["jsonl", "parquet", "messages", "llava", "ofa-tsv"]
Mode = Literal["mixed", "uniform"]
TestInstructions = Literal["all", "one", "none"]


@dataclass(frozen=True, slots=True)
class MaterializeOptions:
    """How to sample and render; the defaults are the paper's (docs/dataset.md, Sampling).

    ``test_instructions`` says how held-out tasks are written to the test split: ``all``
    (one row per original instruction, the paper's evaluation averages over them),
    ``one`` (one original per instance, seeded) or ``none`` (no test split).

    ``carry`` lists the instance fields copied into every row, one carry spec
    ``[NAME=]PATH[:TYPE]`` each (``meta_data.source``, ``src=meta.id:int64``; types
    ``string``, ``int64``, ``float64``, ``bool``, ``json``; see
    :mod:`instraug_dsl.dataset.carry`); the default gives the ``task_name`` and
    ``image_path`` columns.  ``image_field`` is the record path of a row's image for the
    trainer formats (``messages``, ``llava``, ``ofa-tsv``); ``None``: no images.
    """

    raw_share: float = 0.5
    mode: Mode = "mixed"
    seed: int = 0
    per_task: int | None = None
    strict: bool = False
    format: Format = "jsonl"
    shuffle_options: bool = True
    test_instructions: TestInstructions = "all"
    carry: tuple[str, ...] = ("task_name", "image_path")
    image_field: str | None = "image_path"


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """An instance record that could not be rendered: where, which field, why."""

    line: int
    unique_id: str | None
    task: str | None
    field: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class DropRow:
    """Why one rewrite did not enter the pool (a line of ``dropped.jsonl``)."""

    id: str
    task: str
    reason: str
    text: str
    collided_with: str | None = None
    collided_text: str | None = None
    score: float | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class FileRef:
    """An input file and its SHA-256."""

    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class InstancesRef:
    """The instances: path, SHA-256 and line count (rows, for Parquet and Arrow), format
    (``jsonl``, ``jsonl.gz``, ``jsonl.zst``, ``parquet``, ``arrow``, ``save_to_disk``) and,
    for a folder, each data file read with its SHA-256 (``sha256`` is then the SHA-256 of
    the ``sha256sum``-style listing of these files, sorted by path)."""

    path: str
    sha256: str
    lines: int
    format: str = "jsonl"
    files: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the dataset was made from."""

    run_dir: str
    instructions: FileRef
    instances: InstancesRef
    iat: dict[str, str]
    plan: str | None


@dataclass(frozen=True, slots=True)
class OutputFiles:
    """The files written, by role (``test`` is ``None`` when no test split was written).

    ``messages_content`` (``messages`` format only): ``parts`` when any row has an image
    (every ``content`` is a list of typed parts), ``text`` when none has (plain strings).

    ``shards`` (``--executor ray`` only): each split's Parquet shards, {split: {path: sha256}}
    with paths relative to the dataset folder; ``data``/``test`` are then the splits'
    folders and ``data_sha256``/``test_sha256`` the SHA-256 of the ``sha256sum``-style
    listing of their shards, ``"<sha256>  <name>\n"`` in name order.
    """

    data: str
    data_sha256: str
    test: str | None
    test_sha256: str | None
    errors: str
    dropped: str
    card: str
    messages_content: str | None = None
    shards: dict[str, dict[str, str]] | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    """Rows written and records set aside, over all tasks."""

    written: int
    original: int
    generated: int
    test_written: int
    errors: int
    over_budget: int
    held_out: int
    unmatched: int
    dropped_instructions: dict[str, int]


@dataclass(frozen=True, slots=True)
class TaskCounts:
    """One task's pool and rows."""

    split: str
    originals: int
    accepted: int
    kept: int
    dropped: int
    instances: int
    written: int
    original: int
    generated: int
    fallback: int
    over_budget: int
    errors: int


@dataclass(frozen=True, slots=True)
class MaterializeManifest:
    """``manifest.json`` of a materialized dataset."""

    format: str
    inputs: Inputs
    options: MaterializeOptions
    dedup_threshold: float
    outputs: OutputFiles
    counts: Counts
    held_out: dict[str, int]
    unmatched: dict[str, int]
    tasks: dict[str, TaskCounts]
    warnings: tuple[str, ...]


def write_manifest(out_dir: Path, manifest: MaterializeManifest) -> None:
    """Write ``manifest.json`` (the last file written: its presence means complete)."""
    write_json(out_dir / MANIFEST, encode(manifest))


def read_manifest(out_dir: Path) -> MaterializeManifest:
    """Read ``manifest.json``; errors name the file and field."""
    path = out_dir / MANIFEST
    return decode(MaterializeManifest, read_json(path), str(path))
