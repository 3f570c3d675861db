"""Import Natural Instructions tasks (``tasks/task001_quoref_question_generation.json``).

A task file is JSON with ``Definition`` (a list of strings), ``Categories``, ``Source``,
``Positive Examples`` and ``Instances`` (``[{"id", "input", "output": [...]}]``), among
others.  Each file becomes one task with one instruction, the zero-shot prompt::

    instruction i0 = "<the definition>" pin "\\n\\nInput: {input}\\nOutput:"

The definition (its strings stripped and joined by a blank line) is the paraphrasable
text; the ``Input:``/``Output:`` frame is pinned, so a rewrite never touches it.  The
target is ``output[0]`` (``target from output[0]``).  Examples are not part of the
prompt.  With ``instances=FILE`` the tasks' instances are also written as instance
records (``task_name``, ``unique_id``, ``input``, ``output``) for ``iatc materialize``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError, OutputError
from ..fsio import Json, json_kind, write_jsonl
from .emit import CollectionResult, InstructionOut, Report, SlotOut, TaskOut, finish, task_name
from .records import Part

IMPORTER = "natural-instructions"
FRAME = ("\n\nInput: ", "\nOutput:")


def _strings(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _load(path: Path, shown: str, report: Report) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        report.skip(path.stem, "", f"cannot read the file: {exc}", shown)
        return None
    except json.JSONDecodeError as exc:
        report.skip(path.stem, "", f"invalid JSON: {exc.msg}", f"{shown}:{exc.lineno}")
        return None
    if not isinstance(data, dict):
        report.skip(path.stem, "", f"expected a JSON object, got {json_kind(data)}", shown)
        return None
    return data


def translate(original: str, data: dict[str, object], shown: str, report: Report) -> TaskOut | None:
    """One task file as a task (``None``, reported, when it has no usable definition)."""
    definition = _strings(data.get("Definition"))
    if definition is None:
        report.skip(original, "Definition", "`Definition` is not a list of strings", shown)
        return None
    text = "\n\n".join(d.strip() for d in definition if d.strip())
    if not text:
        report.skip(original, "Definition", "the definition is empty", shown)
        return None
    categories = _strings(data.get("Categories")) or []
    sources = _strings(data.get("Source")) or []
    task = TaskOut(
        task_name(original),
        original,
        category=categories[0] if categories else None,
        source=", ".join(sources) or None,
        target="output[0]",
    )
    task.where = shown
    task.slots["input"] = SlotOut("input", "text")
    task.instructions.append(
        InstructionOut(
            "i0",
            (Part(False, text),),
            (Part(False, FRAME[0]), Part(True, "input"), Part(False, FRAME[1])),
            None,
            origin="Definition",
        )
    )
    return task


def find_files(root: Path) -> list[tuple[Path, str]]:
    """The task files: ``root`` itself, or the ``*.json`` files in it (sorted)."""
    if root.is_file():
        return [(root, root.name)]
    return [(p, p.name) for p in sorted(root.glob("*.json")) if p.is_file()]


def _reload(path: Path, shown: str) -> dict[str, object]:
    """A task file read a second time (for its instances); it was readable the first."""
    data = _load(path, shown, Report(IMPORTER, shown))
    if data is None:
        raise DataError(f"{shown}: changed while it was being imported")
    return data


def _instances(original: str, data: dict[str, object], shown: str) -> Iterator[Json]:
    raw = data.get("Instances", [])
    if not isinstance(raw, list):
        raise DataError(f"{shown}: `Instances` is not a list")
    for n, inst in enumerate(raw):
        if not isinstance(inst, dict):
            raise DataError(f"{shown}: Instances[{n}] is not an object")
        row: dict[str, Json] = {"task_name": original}
        if "id" in inst:
            row["unique_id"] = inst["id"]
        row["input"] = inst.get("input")
        row["output"] = inst.get("output")
        yield row


def import_natural_instructions(
    path: str | Path,
    out_dir: str | Path,
    *,
    instances: str | Path | None = None,
    write: bool = True,
    force: bool = False,
) -> CollectionResult:
    """Import Natural Instructions task files (a folder of ``task*.json``, or one file)
    into ``out_dir``; with ``instances`` also write their instances as JSON Lines."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    files = find_files(root)
    if not files:
        raise DataError(f"{root}: no `*.json` task files found")
    report = Report(IMPORTER, root.name)
    tasks: list[TaskOut] = []
    loaded: list[tuple[str, Path, str]] = []
    for file, shown in files:
        data = _load(file, shown, report)
        if data is None:
            continue
        task = translate(file.stem, data, shown, report)
        if task is not None:
            tasks.append(task)
            loaded.append((file.stem, file, shown))  # read again for --instances: memory
    target = Path(instances) if instances is not None else None
    if target is not None and write and target.exists() and not force:
        raise OutputError(
            f"{target} exists; nothing was written: choose another file, or pass --force "
            "to overwrite it"
        )
    result = finish(IMPORTER, tasks, report, root.name, out_dir, write=write, force=force)
    if target is not None and write:
        kept = {t.original for t in result.tasks}
        write_jsonl(
            target,
            (
                row
                for original, file, shown in loaded
                if original in kept
                for row in _instances(original, _reload(file, shown), shown)
            ),
            sort_keys=False,
        )
    return result
