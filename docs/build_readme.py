"""Assemble README.md from docs/: the intro, then each area's chapter.

The chapters are written and kept next to each other in docs/*.md; README.md
is generated so there is one copy of every paragraph.  Run
``python docs/build_readme.py`` after editing docs/; a test fails when the
README is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
CHAPTERS = ("pipeline.md", "language.md", "importer.md", "compiler.md", "runtime.md", "dataset.md")


def _demote(text: str) -> str:
    """Headings one level down (chapters become sections), code blocks untouched."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"#{1,5} ", line):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


def build() -> str:
    """Return the README text."""
    parts = [(DOCS / "_intro.md").read_text(encoding="utf-8").rstrip()]
    parts.append(
        "## Contents\n\n"
        + "\n".join(
            f"- {title}"
            for title in (
                (DOCS / name).read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
                for name in CHAPTERS
            )
        )
    )
    for name in CHAPTERS:
        parts.append(_demote((DOCS / name).read_text(encoding="utf-8").rstrip()))
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    readme = DOCS.parent / "README.md"
    text = build()
    if "--check" in sys.argv:
        sys.exit(0 if readme.read_text(encoding="utf-8") == text else 1)
    readme.write_text(text, encoding="utf-8")
