"""Generate the pages that are derived from something else, and README.md.

* ``README.md`` is the site's home page (``docs/index.md``) with its links pointing into
  ``docs/``: a few screens, the two set-up commands first.
* ``docs/reference/diagnostics.md`` and ``docs/reference/exit-codes.md`` are generated from
  the code (``CODES``, the exit-code table) and the golden diagnostics, so they cannot drift.
* ``docs/design/*.md`` are ARCHITECTURE.md, SECURITY.md and CHANGELOG.md, for the site.

Run ``python docs/build_readme.py`` after editing docs/ or those files; ``--check`` exits 1
when anything generated is stale (a test runs it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
GOLDEN = ROOT / "tests" / "golden" / "diagnostics"


def readme() -> str:
    """README.md: the home page with links made relative to the repository root."""
    text = (DOCS / "index.md").read_text(encoding="utf-8")

    def relink(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        if "://" in target or target.startswith("#"):
            return match.group(0)
        return f"[{label}](docs/{target})"

    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", relink, text)


def diagnostics_page() -> str:
    """Every diagnostic code with its title and one rendered example from the golden tests."""
    sys.path.insert(0, str(ROOT))
    from instraug_dsl.lang.diagnostics import CODES

    lines = [
        "# Diagnostic codes",
        "",
        "Generated from the code (`instraug_dsl/lang/diagnostics.py`) and the golden tests",
        "(`tests/golden/diagnostics/`): every example below is exactly what `iatc check` prints.",
        "Codes starting with `E` are errors (exit 1), `W` warnings.",
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{code}` | {title} |" for code, title in sorted(CODES.items())]
    for code, title in sorted(CODES.items()):
        examples = sorted(GOLDEN.glob(f"{code}_*.expected"))
        lines += ["", f"## {code}: {title}", ""]
        if not examples:
            lines.append("No golden example yet.")
            continue
        example = examples[0].read_text(encoding="utf-8").rstrip("\n")
        lines += ["```text", example, "```"]
    return "\n".join(lines) + "\n"


def exit_codes_page() -> str:
    """The exit-code table from ``commands/exitcodes.py``."""
    sys.path.insert(0, str(ROOT))
    from instraug_dsl.commands import exitcodes

    source = (ROOT / "instraug_dsl" / "commands" / "exitcodes.py").read_text(encoding="utf-8")
    meanings: dict[int, str] = {}
    for comment, name in re.findall(r"((?:#: .*\n)+)([A-Z]+) = \d+", source):
        text = " ".join(line.removeprefix("#: ").strip() for line in comment.splitlines())
        meanings[getattr(exitcodes, name)] = f"`{name}`: {text}"
    lines = [
        "# Exit codes",
        "",
        "Generated from `instraug_dsl/commands/exitcodes.py`, the one table every command uses.",
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    lines += [f"| {code} | {meanings[code]} |" for code in sorted(meanings)]
    lines += [
        "",
        "Which error class gives which code (the first matching row wins):",
        "",
        "| error | code |",
        "|---|---|",
    ]
    lines += [f"| `{kind.__name__}` | {code} |" for kind, code in exitcodes.TABLE]
    return "\n".join(lines) + "\n"


def copied(name: str, title: str) -> str:
    """A top-level Markdown file as a site page (its links into the repository made plain)."""
    text = (ROOT / name).read_text(encoding="utf-8")
    text = re.sub(r"\[([^\]]+)\]\((?!https?://)([^)]+)\)", r"\1 (`\2`)", text)
    return f"<!-- generated from {name} by docs/build_readme.py -->\n\n{text}"


def outputs() -> dict[Path, str]:
    """Every generated file and its text."""
    return {
        ROOT / "README.md": readme(),
        DOCS / "reference" / "diagnostics.md": diagnostics_page(),
        DOCS / "reference" / "exit-codes.md": exit_codes_page(),
        DOCS / "design" / "architecture.md": copied("ARCHITECTURE.md", "Architecture"),
        DOCS / "design" / "security.md": copied("SECURITY.md", "Security"),
        DOCS / "design" / "changelog.md": copied("CHANGELOG.md", "Changelog"),
    }


if __name__ == "__main__":
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if "--check" not in sys.argv:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if "--check" in sys.argv and stale:
        sys.exit("stale: " + ", ".join(str(p.relative_to(ROOT)) for p in stale))
