"""``iatc init DIR``: write a small starter project to edit.

The project checks cleanly (``iatc check DIR``) and runs end to end
(``iatc run DIR -o out``; ``--model offline/rules`` for a dry run without a model):

* ``tasks.iat``: two tasks showing slots, pinned options, enumerated options with a
  ``choice`` target that follows the shuffle, ``label`` names and per-instruction targets;
* ``plan.iat``: imports the shipped meta-prompts, a ``default plan`` and a ``sampling``
  block (with ``carry``);
* ``instances.jsonl``: a few instance records for the two tasks.

An existing non-empty folder is refused unless ``--force`` (which overwrites only these
three files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from . import exitcodes
from .app import app, fail

TASKS = """\
# Tasks: each declares typed slots (filled from the fields of instance records) and a few
# original instructions.  `pin` keeps a part out of the paraphrase; `-> "..."` gives an
# instruction its own target (the default is the record field `target`, or `target from`).
# Check with `iatc check .` and lay out with `iatc fmt .`.

task sentiment {
  category "classification"
  slot review: text
  # Shown as "(A) positive (B) negative", in a new order for every instance.
  slot options: choices sep " " prefix "\\nOptions: " enumerate "(A) "
  # The letter of the record's answer among the options as this instance shows them.
  slot letter: choice of options from label_text
  slot answer: text from label_text
  instruction i0 = "How does the writer of this review feel? {review}" pin "{options}" -> "{letter}"
  instruction i1 = "What is the sentiment of this review? {review}" pin "{options}" -> "{letter}"
  instruction i2 = "Is the following review positive or negative? {review}" -> "{answer}"
}

task entailment {
  category "natural language inference"
  slot premise: text
  slot hypothesis: text
  # The record's label is a number: 0, 1 or 2 selects one of these names.
  slot verdict: label names "entailment", "neutral", "contradiction" from label
  # Several strings are one instruction, paraphrased as a whole.
  instruction i0 = "Premise: {premise}"
      " Hypothesis: {hypothesis}"
      " Does the premise entail the hypothesis? Answer entailment, neutral or contradiction."
      -> "{verdict}"
  instruction i1 = "Decide whether {hypothesis} follows from this: {premise}" -> "{verdict}"
}
"""

PLAN = """\
# The augmentation plan and how the dataset is drawn.
#
#   iatc run . -o out/                        # the default model (embedded, offline)
#   iatc run . -o out/ --model offline/rules  # a dry run with a rule-based rewriter
#
# out/run/ holds the rewrites, out/data/ the dataset (train.jsonl, README.md, manifest.json).

import "tasks.iat"
import "@common/metaprompts.iat"  # `direct`, and `guided` (one per rewriting strategy)

default plan starter {
  use direct samples 2
  temperature 0.7
  tasks all
  filter {
    length_ratio 0.4..2.0
    dedup 0.7
  }
}

sampling starter {
  plan starter
  instances "instances.jsonl"
  raw_share 0.5  # the share of rows that keep an original instruction
  seed 0
  carry task_name, meta.source  # instance fields copied into every row
}
"""

_RECORDS: list[dict[str, object]] = [
    {
        "unique_id": "sentiment-1",
        "task_name": "sentiment",
        "review": "The blender is quiet and crushes ice in seconds.",
        "options": ["positive", "negative"],
        "label_text": "positive",
        "meta": {"source": "starter"},
    },
    {
        "unique_id": "sentiment-2",
        "task_name": "sentiment",
        "review": "It stopped working after a week and support never answered.",
        "options": ["positive", "negative"],
        "label_text": "negative",
        "meta": {"source": "starter"},
    },
    {
        "unique_id": "sentiment-3",
        "task_name": "sentiment",
        "review": "Comfortable shoes, and they still look new after a year.",
        "options": ["positive", "negative"],
        "label_text": "positive",
        "meta": {"source": "starter"},
    },
    {
        "unique_id": "entailment-1",
        "task_name": "entailment",
        "premise": "A man is playing a guitar on stage.",
        "hypothesis": "A man is performing music.",
        "label": 0,
        "meta": {"source": "starter"},
    },
    {
        "unique_id": "entailment-2",
        "task_name": "entailment",
        "premise": "Two children are building a sandcastle.",
        "hypothesis": "The children are at school.",
        "label": 1,
        "meta": {"source": "starter"},
    },
    {
        "unique_id": "entailment-3",
        "task_name": "entailment",
        "premise": "The store is closed on Sundays.",
        "hypothesis": "The store is open every day.",
        "label": 2,
        "meta": {"source": "starter"},
    },
]

INSTANCES = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _RECORDS)

#: The files written, by name.
FILES: dict[str, str] = {
    "tasks.iat": TASKS,
    "plan.iat": PLAN,
    "instances.jsonl": INSTANCES,
}


def write_project(folder: Path, *, force: bool = False) -> list[Path]:
    """Write the starter files into ``folder`` (created if needed); return their paths.

    Raises :class:`FileExistsError` for a non-empty folder without ``force`` and
    :class:`NotADirectoryError` when ``folder`` is a file.
    """
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(str(folder))
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise FileExistsError(str(folder))
    from ..fsio import write_text

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in FILES.items():
        write_text(folder / name, text)
        written.append(folder / name)
    return written


@app.command("init")
def init_cmd(
    folder: Annotated[Path, typer.Argument(help="The folder to create the project in.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Write into a non-empty folder (overwrites the files)."),
    ] = False,
) -> None:
    """Write a starter project (tasks, a plan, a sampling block, instances) to edit."""
    try:
        written = write_project(folder, force=force)
    except NotADirectoryError:
        fail(f"{folder} is a file; `iatc init` needs a folder")
    except FileExistsError:
        fail(
            f"{folder} is not empty; choose a new folder, or pass --force to write "
            f"{', '.join(FILES)} into it"
        )
    except OSError as exc:
        fail(f"cannot write the project into {folder}: {exc.strerror or exc}", exitcodes.USAGE)
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"next: iatc check {folder}, then iatc run {folder} -o out/ [--model offline/rules]")
