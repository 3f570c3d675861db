"""The package's layers (ARCHITECTURE.md): a module imports only from its own package and
from the layers below it; nothing below the API imports it, and the runtime and the dataset
stage do not import each other.  Read from the source with ``ast``: lazy imports inside
functions count too, since they are dependencies all the same."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "instraug_dsl"

#: Rank of each top-level part of the package; a module may import lower ranks and its own
#: package.  `lang.source` and `lang.diagnostics` are leaf modules the error classes use.
RANKS = {
    "_version": 0,
    "errors": 0,
    "lang.source": 0,
    "lang.diagnostics": 0,
    "fsio": 1,
    "cluster": 2,
    "lang": 2,
    "contract": 3,
    "importers": 3,
    "compile": 4,
    "dataset": 4,
    "runtime": 5,
    "lsp": 6,
    "api": 6,
    "__init__": 7,
    "__main__": 8,
    "commands": 8,
}


#: Pairs that the ranks would allow but the design does not: the API orchestrates `iatc run`.
FORBIDDEN = {("runtime", "dataset")}


def _part(dotted: str) -> str:
    """The RANKS key of a module path relative to the package (``lang.check`` -> ``lang``)."""
    if dotted in RANKS:
        return dotted
    head = dotted.split(".", 1)[0]
    return head


def _imports(path: Path, module: str) -> list[str]:
    """Package-relative names of the instraug_dsl modules ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.rsplit(".", 1)[0] if not path.name == "__init__.py" else module
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, node.module] if node.module else base)
            elif node.module and node.module.startswith("instraug_dsl"):
                target = node.module.removeprefix("instraug_dsl").lstrip(".")
            else:
                continue
            names = [a.name for a in node.names]
            if node.module is None:  # from . import x
                found += [f"{target}.{n}".lstrip(".") for n in names]
            else:
                found.append(target)
        elif isinstance(node, ast.Import):
            found += [
                a.name.removeprefix("instraug_dsl").lstrip(".")
                for a in node.names
                if a.name.startswith("instraug_dsl")
            ]
    return [f for f in found if f]


def test_every_import_points_down_or_inside_its_own_package() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        module = module.removesuffix(".__init__") if module != "__init__" else module
        own = _part(module)
        for target in _imports(path, module):
            other = _part(target)
            if other == own or other.split(".")[0] == own.split(".")[0] and own != "lang":
                continue
            if own == "lang" and other.startswith("lang"):
                continue
            if RANKS.get(other, 99) >= RANKS.get(own, -1) or (own, other) in FORBIDDEN:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)
