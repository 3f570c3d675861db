"""Loading: files and directories in, a :class:`~instraug_dsl.lang.ir.Program` out.

Follows ``import`` statements relative to the importing file, reports
missing files and import cycles, and parses every file exactly once.  The
source text of every file is kept so diagnostics can be rendered later.

Where an import may point (a checked `.iat` file can come from anyone, and
diagnostics quote the lines of what it imports):

* only to a `.iat` file (E063), also after following symbolic links;
* ``@name/file.iat`` names a file of a library shipped with iatc
  (``templates/name/``), from anywhere;
* only inside the *project*: the folder of each path given to :func:`load`
  (a directory itself, the folder of a file), the folders in
  ``allow_imports``, and the template library shipped with iatc
  (``templates/``).  Anything else is E064, whether or not it exists, so an
  import cannot probe the file system.  Symbolic links are followed first,
  so a link that leads out of the project counts as outside.

Files that are not text (NUL bytes, not UTF-8) or larger than
:data:`MAX_FILE_BYTES` are E062 and none of their content is kept, so no
diagnostic can quote it.  Imports are followed with an explicit stack: a
chain of thousands of files needs no recursion.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import ir
from .diagnostics import Diagnostics
from .parser import parse_source
from .source import SourceFile, Span

#: A `.iat` file is text written by people; anything bigger is refused unread (E062).
MAX_FILE_BYTES = 8 * 1024 * 1024
#: Import chains longer than this are shortened in E061 messages.
_CHAIN_SHOWN = 12


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
    return [path for path, _ in _expand(paths)]


def _expand(paths: Iterable[str | Path]) -> list[tuple[Path, bool]]:
    """Like :func:`expand_paths`, with whether each file was found in a directory scan."""
    files: list[tuple[Path, bool]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend((p, True) for p in sorted(path.rglob("*.iat")) if _is_file(p))
        elif path.exists():
            files.append((path, False))
        else:
            raise FileNotFoundError(str(path))
    return files


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def library_dirs() -> tuple[Path, ...]:
    """The template library shipped with iatc (``templates/``), where it exists."""
    package = Path(__file__).resolve().parents[1]
    found = [package / "templates"]
    if (package.parent / "grammar" / "iat.lark").is_file():  # a source checkout
        found.append(package.parent / "templates")
    return tuple(p.resolve() for p in found if p.is_dir())


def library_path(spec: str) -> Path | None:
    """The folder (or file) a command-line ``@name[/file.iat]`` names in the shipped
    libraries, or ``None`` when there is no such library."""
    name, _, rest = spec.removeprefix("@").partition("/")
    library = _find_library(name, ())
    if library is None:
        return None
    candidate = library / rest if rest else library
    return candidate if candidate.exists() else None


def project_roots(
    paths: Iterable[str | Path], allow_imports: Iterable[str | Path] = ()
) -> tuple[Path, ...]:
    """The folders imports may point into (resolved): see the module docstring."""
    roots: list[Path] = []
    for raw in paths:
        path = Path(raw)
        try:
            if path.is_dir():
                roots.append(path.resolve())
            else:
                roots.append(path.absolute().parent.resolve())
                roots.append(path.resolve().parent)  # a link's target: its imports are relative
        except (OSError, RuntimeError, ValueError):
            continue
    for raw in allow_imports:
        try:
            roots.append(Path(raw).resolve())
        except (OSError, RuntimeError, ValueError):
            continue
    roots.extend(library_dirs())
    return tuple(dict.fromkeys(roots))


def _inside(target: Path, roots: Sequence[Path]) -> bool:
    return any(target.is_relative_to(root) for root in roots)


def _display(path: Path) -> str:
    """Paths are shown relative to the working directory when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):
        return str(path)


def read_source(path: Path) -> tuple[str | None, str | None]:
    """Return ``(text, None)``, or ``(None, why)`` for a file that is not readable `.iat` text.

    Reads at most :data:`MAX_FILE_BYTES` (``/dev/zero`` ends too), refuses what is
    not a regular file (a FIFO would block), and returns no text at all for
    binary or non-UTF-8 content: the reason names an offset, never a byte.
    Line breaks are read as :meth:`Path.read_text` reads them (universal newlines).
    """
    try:
        if not path.is_file():
            return None, "not a regular file"
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__
    if len(data) > MAX_FILE_BYTES:
        return None, f"larger than {MAX_FILE_BYTES // 2**20} MiB"
    if b"\0" in data:
        return None, "it contains NUL bytes, so it is not a text file"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (invalid byte at offset {exc.start})"
    return text.replace("\r\n", "\n").replace("\r", "\n"), None


def _chain(names: Sequence[str]) -> str:
    """``a -> b -> c``, with the middle left out of very long chains."""
    if len(names) > _CHAIN_SHOWN:
        half = _CHAIN_SHOWN // 2
        skipped = len(names) - 2 * half
        names = [*names[:half], f"... ({skipped} more)", *names[-half:]]
    return " -> ".join(names)


def load_text(text: str, path: str = "<string>") -> LoadResult:
    """Load a single in-memory source (its imports are not followed)."""
    result = LoadResult(ir.Program(()))
    source = SourceFile(path, text)
    result.sources[path] = source
    module = parse_source(source, result.diagnostics)
    modules = [module] if module else []
    result.program = ir.Program(tuple(modules))
    result.entry_paths = (path,)
    return result


@dataclass
class _Frame:
    """A file being loaded: its module and how far its imports have been followed."""

    real: Path
    module: ir.Module
    next_item: int = 0


class _Loader:
    def __init__(
        self, roots: tuple[Path, ...], result: LoadResult, overlay: Mapping[Path, str]
    ) -> None:
        self.roots = roots
        self.result = result
        self.overlay = overlay
        self.modules: list[ir.Module] = []
        self.done: dict[Path, str] = {}  # real path -> display path
        self.stack: list[_Frame] = []
        self.on_stack: set[Path] = set()

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.result.diagnostics.add(code, message, span, hint=hint)

    def open(self, path: Path, real: Path) -> None:
        """Read and parse one file; push it so its imports are followed next."""
        display = _display(path)
        self.done[real] = display
        overlaid = self.overlay.get(real)
        text, problem = (overlaid, None) if overlaid is not None else read_source(real)
        if text is None:
            source = SourceFile(display, "")  # nothing of the file is kept, nothing quoted
            self.result.sources[display] = source
            self.error("E062", f"cannot read `{display}`: {problem}", source.span(0, 0))
            return
        source = SourceFile(display, text)
        self.result.sources[display] = source
        module = parse_source(source, self.result.diagnostics)
        if module is not None:
            self.stack.append(_Frame(real, module))
            self.on_stack.add(real)

    def run(self, entry: Path) -> None:
        """Load ``entry`` and everything it imports, depth first (imports before importers)."""
        self.open(entry, entry.resolve())
        while self.stack:
            frame = self.stack[-1]
            items = frame.module.items
            while frame.next_item < len(items):
                item = items[frame.next_item]
                frame.next_item += 1
                if isinstance(item, ir.Import):
                    target = self.resolve(frame.real, item)
                    if target is not None:
                        self.open(target, target)
                        break  # follow the new file first
            else:
                self.stack.pop()
                self.on_stack.discard(frame.real)
                self.modules.append(frame.module)

    def resolve(self, importer: Path, item: ir.Import) -> Path | None:
        """The file an import names, if it may be loaded and is not loaded yet."""
        written = item.path.value
        span = item.path.span
        if not written.endswith(".iat"):
            self.error(
                "E063",
                f"`{_clip(written)}` is not a `.iat` file; only `.iat` files can be imported",
                span,
            )
            return None
        if written.startswith("@"):
            return self.resolve_library(written, span)
        try:
            target = (importer.parent / written).resolve()
        except (OSError, RuntimeError, ValueError):
            # A NUL, an unencodable character or a symbolic link loop: no such file.
            self.error("E060", f"imported file `{_clip(written)}` not found", span)
            return None
        if not _inside(target, self.roots):
            # Name where a symbolic link leads; a plain path speaks for itself.
            plain = Path(os.path.normpath(importer.parent / written))
            leads = "" if plain == target else f" (it leads to {_clip(_display(target))})"
            self.error(
                "E064",
                f"`{_clip(written)}` is outside the project{leads}",
                span,
                hint="imports stay inside the folders being checked and the folders"
                " explicitly allowed for imports",
            )
            return None
        if target.suffix != ".iat":
            self.error(
                "E063",
                f"`{_clip(written)}` links to `{_clip(_display(target))}`,"
                " which is not a `.iat` file",
                span,
            )
            return None
        if target in self.on_stack:
            # Only the ends of a long chain are named: thousands of files closing
            # cycles into a deep chain must not each spell out the whole chain.
            frames = self.stack
            hidden = len(frames) - 2 * _CHAIN_SHOWN
            if hidden > 0:
                frames = [*frames[:_CHAIN_SHOWN], *frames[-_CHAIN_SHOWN:]]
            names = [self.done[f.real] for f in frames] + [self.done[target]]
            if hidden > 0:
                names[_CHAIN_SHOWN:_CHAIN_SHOWN] = [""] * hidden  # keeps the count right
            self.error("E061", f"import cycle: {_chain(names)}", span)
            return None
        if target in self.done:
            return None
        if not _exists(target):  # a FIFO or a folder is opened, and refused as E062
            self.error(
                "E060",
                f"imported file `{_clip(written)}` not found"
                f" (looked for {_clip(_display(target))})",
                span,
            )
            return None
        return target

    def resolve_library(self, written: str, span: Span) -> Path | None:
        """``@name/file.iat``: a file of the library ``name`` shipped with iatc."""
        name, _, rest = written[1:].partition("/")
        library = _find_library(name, self.roots)
        if library is None or not rest:
            libraries = {p.name for root in library_dirs() for p in root.iterdir() if p.is_dir()}
            shipped = ", ".join(f"@{n}" for n in sorted(libraries)) or "none"
            self.error(
                "E060",
                f"no library `@{_clip(name)}` ships with iatc (libraries: {shipped})",
                span,
                hint="write `@LIBRARY/FILE.iat`, e.g. `@common/metaprompts.iat`",
            )
            return None
        try:
            target = (library / rest).resolve()
        except (OSError, RuntimeError, ValueError):
            target = library / "\0"  # cannot exist: reported as not found below
        if not target.is_relative_to(library.resolve()) or not _exists(target):
            self.error("E060", f"imported file `{_clip(written)}` not found", span)
            return None
        if target in self.on_stack or target in self.done:
            return None
        return target


def _find_library(name: str, roots: Sequence[Path]) -> Path | None:
    """The folder ``@name`` means: a folder of that name among the project's own folders
    (the library being edited, or a copy of the libraries checked together) wins over
    the one shipped with iatc, so a library's files never load twice."""
    if not name or name in (".", ".."):
        return None
    for root in (*roots, *library_dirs()):
        if root.name == name and root.is_dir():
            return root
        if (root / name).is_dir():
            return root / name
    return None


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a folder on the way that may not be searched
        return True  # then reading it says why (E062)


def _clip(text: str, limit: int = 200) -> str:
    """A path as shown in a message: very long ones are shortened."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def load(
    paths: Sequence[str | Path],
    allow_imports: Sequence[str | Path] = (),
    overlay: Mapping[Path, str] | None = None,
) -> LoadResult:
    """Parse the given files/directories and everything they import.

    ``allow_imports`` names further folders imports may point into (see the
    module docstring for the rule).  ``overlay`` maps resolved file paths to
    text read instead of the file (an editor's unsaved buffers, line breaks
    already ``\\n``); the import rules stay the same.
    """
    result = LoadResult(ir.Program(()))
    entries = _expand(paths)
    result.entry_paths = tuple(_display(p) for p, _ in entries)
    roots = project_roots(paths, allow_imports)
    loader = _Loader(roots, result, overlay or {})
    for entry, scanned in entries:
        try:
            real = entry.resolve()
        except (OSError, RuntimeError, ValueError):
            real = entry.absolute()
        if real in loader.done:
            continue
        if scanned and not (_inside(real, roots) and real.suffix == ".iat"):
            # A link in a scanned folder that leads out of the project (or to a
            # file that is not `.iat`): the same rule as for imports.
            display = str(entry)  # the link as found, not where it leads
            source = SourceFile(display, "")
            result.sources[display] = source
            loader.done[real] = display
            code, what = (
                ("E064", "is a link that leads outside the project")
                if not _inside(real, roots)
                else ("E063", "links to a file that is not `.iat`")
            )
            result.diagnostics.add(code, f"`{display}` {what}", source.span(0, 0))
            continue
        loader.run(entry)
    result.program = ir.Program(tuple(loader.modules))
    return result
