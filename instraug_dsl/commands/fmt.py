"""``iatc fmt``: rewrite `.iat` files in the canonical layout (see :mod:`instraug_dsl.lang.fmt`).

``-`` formats standard input to standard output (for editors); ``--check`` and ``--diff``
change nothing and exit 1 when something would change.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from . import exitcodes
from .app import PathsArg, app, fail

#: The path argument that means standard input.
STDIN = "-"


def unified_diff(before: str, after: str, name: str) -> str:
    """A unified diff of one file (``patch -p0`` applies it); empty when nothing changes.

    A last line without a line break gets ``\\ No newline at end of file``, as in git.
    """

    def lines(text: str) -> list[str]:
        # Only "\n" ends a line: splitlines() would also split at "\x0c", "\u2028", ...
        out = [line + "\n" for line in text.split("\n")]
        if out[-1] == "\n":
            out.pop()  # the text ended with a line break (or was empty)
        else:
            out[-1] = out[-1][:-1] + "\n\\ No newline at end of file\n"
        return out

    diff: Iterable[str] = difflib.unified_diff(
        lines(before),
        lines(after),
        fromfile=f"{name}\t(original)",
        tofile=f"{name}\t(formatted)",
    )
    return "".join(diff)


def _not_text(name: str, exc: UnicodeDecodeError) -> str:
    """E062 for content that is not UTF-8 (the offset is named, never a byte of it)."""
    from ..lang.diagnostics import Diagnostic, render
    from ..lang.source import SourceFile

    why = f"not UTF-8 text (invalid byte at offset {exc.start})"
    diag = Diagnostic("E062", f"cannot read `{name}`: {why}", SourceFile(name, "").span(0, 0))
    return render(diag, None)


def _read_stdin(name: str) -> str | None:
    stream = getattr(sys.stdin, "buffer", None)
    data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        typer.echo(_not_text(name, exc), err=True)
        return None


def _write_stdout(text: str) -> None:
    """Write UTF-8 whatever the locale (a text-only stream, as in some test runners, as is)."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(text)
        return
    buffer.write(text.encode("utf-8"))
    buffer.flush()


def _format(raw: str, name: str) -> str | None:
    """The formatted text, or ``None`` after printing why the text cannot be formatted."""
    from ..errors import IatCheckError
    from ..lang.fmt import format_source

    # Read line breaks as `iatc check` does (universal newlines), so the
    # meaning of a multi-line string never differs; \r\n files still change.
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    try:
        return format_source(text, name)
    except IatCheckError as exc:
        typer.echo(exc.render(), err=True)
        return None


def _fmt_stdin(name: str, check: bool, diff: bool) -> None:
    """``iatc fmt -``: the formatted text (or the diff, or the name) on standard output."""
    raw = _read_stdin(name)
    if raw is None:
        raise typer.Exit(exitcodes.DIAGNOSTICS)
    formatted = _format(raw, name)
    if formatted is None:
        raise typer.Exit(exitcodes.DIAGNOSTICS)
    changed = formatted != raw
    if diff:
        _write_stdout(unified_diff(raw, formatted, name))
    elif check:
        if changed:
            typer.echo(name)
    else:
        _write_stdout(formatted)
        raise typer.Exit(exitcodes.OK)
    raise typer.Exit(exitcodes.DIAGNOSTICS if changed else exitcodes.OK)


@app.command("fmt")
def fmt_cmd(
    paths: PathsArg,
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; list files that would change.")
    ] = False,
    diff: Annotated[
        bool,
        typer.Option("--diff", help="Change nothing; print a unified diff of what would change."),
    ] = False,
    stdin_filename: Annotated[
        str | None,
        typer.Option(
            "--stdin-filename", help="The name standard input (`-`) is given in messages."
        ),
    ] = None,
) -> None:
    """Format `.iat` files in place (comments kept); `-` formats standard input to standard
    output.  `--check` and `--diff` change nothing and exit 1 if anything would change."""
    from ..lang.loader import expand_paths

    if any(str(p) == STDIN for p in paths):
        if len(paths) != 1:
            fail("`-` (standard input) cannot be combined with other paths")
        _fmt_stdin(stdin_filename or "<stdin>", check, diff)
    if stdin_filename is not None:
        fail("--stdin-filename only applies to `-` (standard input)")
    try:
        files = expand_paths(paths)
    except FileNotFoundError as exc:
        fail(f"no such file or directory: {exc.args[0]}")
    dry_run = check or diff
    changed: list[Path] = []
    broken = unreadable = 0
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            typer.echo(f"iatc: error: cannot read {path}: {exc.strerror or exc}", err=True)
            unreadable += 1
            continue
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Content that is not text is the input's problem, as for `iatc check` (E062).
            typer.echo(_not_text(str(path), exc), err=True)
            broken += 1
            continue
        formatted = _format(raw, str(path))
        if formatted is None:
            broken += 1
            continue
        if formatted == raw:
            continue
        changed.append(path)
        if diff:
            _write_stdout(unified_diff(raw, formatted, str(path)))
            continue
        if check:
            typer.echo(str(path))
            continue
        try:
            path.write_text(formatted, encoding="utf-8", newline="")
        except OSError as exc:
            typer.echo(f"iatc: error: cannot write {path}: {exc.strerror or exc}", err=True)
            unreadable += 1
    verb = "would reformat" if dry_run else "reformatted"
    summary = f"{verb} {len(changed)} of {len(files)} file{'s' * (len(files) != 1)}"
    if broken:
        summary += f"; {broken} with errors left unchanged"
    typer.echo(summary, err=True)
    if unreadable:
        raise typer.Exit(exitcodes.USAGE)
    if broken or (dry_run and changed):
        raise typer.Exit(exitcodes.DIAGNOSTICS)
    raise typer.Exit(exitcodes.OK)
