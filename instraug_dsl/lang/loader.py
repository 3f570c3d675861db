"""Loading: files and directories in, a :class:`~instraug_dsl.lang.ir.Program` out.

Follows ``import`` statements relative to the importing file, reports
missing files and import cycles, and parses every file exactly once.  The
source text of every file is kept so diagnostics can be rendered later.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import ir
from .diagnostics import Diagnostics
from .parser import parse_source
from .source import SourceFile


@dataclass
class LoadResult:
    """The program, every source file by path, and what went wrong."""

    program: ir.Program
    sources: dict[str, SourceFile] = field(default_factory=dict)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    entry_paths: tuple[str, ...] = ()


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Turn files and directories into a sorted list of `.iat` files.

    Raises :class:`FileNotFoundError` for a path that does not exist.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.iat") if p.is_file()))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(str(path))
    return files


def _display(path: Path) -> str:
    """Paths are shown relative to the working directory when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_text(text: str, path: str = "<string>") -> LoadResult:
    """Load a single in-memory source (imports resolved against the cwd)."""
    result = LoadResult(ir.Program(()))
    source = SourceFile(path, text)
    result.sources[path] = source
    module = parse_source(source, result.diagnostics)
    modules = [module] if module else []
    result.program = ir.Program(tuple(modules))
    result.entry_paths = (path,)
    return result


def load(paths: Sequence[str | Path]) -> LoadResult:
    """Parse the given files/directories and everything they import."""
    result = LoadResult(ir.Program(()))
    modules: list[ir.Module] = []
    done: dict[Path, str] = {}
    entries = expand_paths(paths)
    result.entry_paths = tuple(_display(p) for p in entries)

    def visit(path: Path, stack: tuple[Path, ...]) -> None:
        real = path.resolve()
        if real in done:
            return
        display = _display(path)
        done[real] = display
        try:
            text = real.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            source = SourceFile(display, "")
            result.sources[display] = source
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            result.diagnostics.add("E062", f"cannot read `{display}`: {reason}", source.span(0, 0))
            return
        source = SourceFile(display, text)
        result.sources[display] = source
        module = parse_source(source, result.diagnostics)
        if module is None:
            return
        for item in module.items:
            if not isinstance(item, ir.Import):
                continue
            try:
                target = (real.parent / item.path.value).resolve()
            except ValueError:  # a NUL or an unencodable character: no such file
                result.diagnostics.add(
                    "E060", f"imported file `{item.path.value}` not found", item.path.span
                )
                continue
            if target in stack or target == real:
                chain = (
                    " -> ".join(done.get(p, str(p)) for p in (*stack, real))
                    + f" -> {done.get(target, item.path.value)}"
                )
                result.diagnostics.add("E061", f"import cycle: {chain}", item.path.span)
                continue
            if not target.is_file():
                result.diagnostics.add(
                    "E060",
                    f"imported file `{item.path.value}` not found (looked for {_display(target)})",
                    item.path.span,
                )
                continue
            visit(target, (*stack, real))
        modules.append(module)

    for entry in entries:
        visit(entry, ())
    result.program = ir.Program(tuple(modules))
    return result
