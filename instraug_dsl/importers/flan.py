"""Import FLAN's templates (``flan/templates.py``, ``flan/v2/templates.py``) without running them.

The file is parsed with :mod:`ast` and only literals are evaluated
(:func:`ast.literal_eval`, one template at a time): nothing in it is imported or executed.
Read is the module-level dict ``PATTERNS = {"task": [("input", "target"), ...], ...}``
(another variable with ``variable=``), plus later statements of the two forms
``PATTERNS["a"] = PATTERNS["b"]`` and ``PATTERNS["a"] = [...literal...]``.  Anything else
(a template that is not a pair of string literals, ``**other`` in the dict, a statement
that changes ``PATTERNS`` some other way) is listed in the report, never guessed at.

FLAN renders a template with ``re.split(r"({\\w*})", template)``
(``format_from_feature_dictionary`` in FLAN's ``preprocessors.py``): each ``{name}`` is the
example's feature ``name`` and every other character is literal.  That is not
``str.format``: ``{{``/``}}`` are not escapes (``{{x}}`` renders ``{`` + x + ``}``) and a
brace that does not enclose a name, such as JSON in a template, is plain text.  The import
reproduces FLAN's reading exactly.

``{options_}`` is FLAN's options block, built by ``format_options`` from the feature
``options``: ``"OPTIONS:\\n- " + "\\n- ".join(options)`` (v1 and v2), not shuffled; with
FLAN v2's ``use_char_options_format`` it is ``"OPTIONS:" + "".join("\\n(A) " + option
...)`` and the answer is the option's letter ``(A)``.  Each (input, target) pair becomes
one instruction with its own target (``-> "..."``), so an inverted template (one that
asks for the context, say) gets the right target.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, UsageError
from .emit import (
    CollectionResult,
    InstructionOut,
    Namer,
    Report,
    SlotOut,
    TaskOut,
    choice_of_decl,
    choices_decl,
    finish,
    split_pin,
    task_name,
    text_decl,
)
from .records import Part

IMPORTER = "flan"
OPTIONS_FIELD = "options_"
ANSWER_FIELD = "answer"
_FIELD = re.compile(r"({\w*})")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: ``--options``: how FLAN's ``format_options`` wrote the options block.
OPTION_STYLES = ("dash", "letters")


@dataclass(frozen=True, slots=True)
class Pattern:
    """One (input, target) pair as FLAN stores it, and where it is in the file."""

    task: str
    index: int
    inputs: str
    targets: str
    line: int


def parse_template(template: str) -> tuple[Part, ...]:
    """Split a FLAN template as FLAN's renderer does; raise :class:`ValueError` when
    FLAN would look up a field that cannot be a slot name.

    >>> parse_template("Q: {question}\\n{{x}} {a b}")  # doctest: +NORMALIZE_WHITESPACE
    (Part(slot=False, value='Q: '), Part(slot=True, value='question'),
     Part(slot=False, value='\\n{'), Part(slot=True, value='x'),
     Part(slot=False, value='} {a b}'))
    """
    parts: list[Part] = []
    for piece in _FIELD.split(template):
        if not piece:
            continue
        if piece[0] == "{" and piece[-1] == "}":  # FLAN's own test: a feature lookup
            name = piece[1:-1]
            if not _IDENT.match(name):
                shown = "an empty name" if not name else f"the field `{name}`"
                raise ValueError(
                    f"`{piece}` is read by FLAN as {shown}, which cannot be a slot name"
                )
            parts.append(Part(True, name))
        elif parts and not parts[-1].slot:
            parts[-1] = Part(False, parts[-1].value + piece)
        else:
            parts.append(Part(False, piece))
    return tuple(parts)


# ------------------------------------------------------------------ reading


def _key(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _target_key(node: ast.expr, variable: str) -> str | None:
    """``VARIABLE["key"]`` -> ``key``."""
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == variable
    ):
        return _key(node.slice)
    return None


def _mentions(node: ast.AST, variable: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == variable for n in ast.walk(node))


def _deep_copy(stmt: ast.stmt, variable: str) -> bool:
    """``NAME = copy.deepcopy(...)`` (or ``deepcopy(...)``) into another plain name."""
    if not (
        isinstance(stmt, ast.Assign)
        and all(isinstance(t, ast.Name) and t.id != variable for t in stmt.targets)
        and isinstance(stmt.value, ast.Call)
    ):
        return False
    func = stmt.value.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name == "deepcopy"


class _Reader:
    """Collects the patterns of one file, and what could not be read."""

    def __init__(self, name: str, variable: str, report: Report) -> None:
        self.name = name
        self.variable = variable
        self.report = report
        self.tasks: dict[str, list[Pattern]] = {}
        self.lines: dict[str, int] = {}

    def where(self, line: int) -> str:
        return f"{self.name}:{line}"

    def patterns(self, task: str, node: ast.expr) -> list[Pattern]:
        """The pairs of a task's list, each evaluated on its own."""
        if not isinstance(node, ast.List | ast.Tuple):
            self.report.skip(
                task,
                "",
                "its templates are not a list literal (not evaluated)",
                self.where(node.lineno),
            )
            return []
        found: list[Pattern] = []
        for index, element in enumerate(node.elts):
            label = f"[{index}]"
            try:
                value = ast.literal_eval(element)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                self.report.skip(
                    task,
                    label,
                    "not a literal (input, target) pair of strings (not evaluated)",
                    self.where(element.lineno),
                )
                continue
            if (
                not isinstance(value, tuple | list)
                or len(value) != 2
                or not all(isinstance(v, str) for v in value)
            ):
                self.report.skip(
                    task,
                    label,
                    "not an (input, target) pair of strings",
                    self.where(element.lineno),
                )
                continue
            found.append(Pattern(task, index, value[0], value[1], element.lineno))
        return found

    def read_dict(self, node: ast.Dict) -> None:
        for key_node, value in zip(node.keys, node.values, strict=True):
            if key_node is None:
                self.report.skip(
                    f"**{ast.unparse(value)}",
                    "",
                    f"`**` in {self.variable} is not a literal (not evaluated)",
                    self.where(value.lineno),
                )
                continue
            key = _key(key_node)
            if key is None:
                self.report.skip(
                    ast.unparse(key_node),
                    "",
                    "the task name is not a string literal",
                    self.where(key_node.lineno),
                )
                continue
            self.set(key, self.patterns(key, value), key_node.lineno)

    def set(self, task: str, patterns: list[Pattern], line: int) -> None:
        if task in self.tasks:
            self.report.note(
                task,
                "",
                f"defined again at line {line}; the later definition is used",
                self.where(line),
            )
        self.tasks[task] = patterns
        self.lines[task] = line

    def statement(self, stmt: ast.stmt) -> None:
        """A module-level statement after the dict: supported forms, or a report line."""
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            key = _target_key(stmt.targets[0], self.variable)
            if key is not None:
                source = _target_key(stmt.value, self.variable)
                if source is not None:
                    if source in self.tasks:
                        self.set(key, self.tasks[source], stmt.lineno)
                    else:
                        self.report.skip(
                            key,
                            "",
                            f"copies `{source}`, which was not read",
                            self.where(stmt.lineno),
                        )
                    return
                if not _mentions(stmt.value, self.variable):
                    self.set(key, self.patterns(key, stmt.value), stmt.lineno)
                    return
        if _deep_copy(stmt, self.variable):
            return  # `X = copy.deepcopy(PATTERNS)` reads it and changes nothing
        if _mentions(stmt, self.variable):
            self.report.skip(
                f"<{self.variable}>",
                "",
                f"statement at line {stmt.lineno} may change {self.variable} and is not "
                "evaluated; tasks it adds or changes are not imported",
                self.where(stmt.lineno),
            )


def read_patterns(
    path: str | Path, report: Report, variable: str = "PATTERNS"
) -> tuple[dict[str, list[Pattern]], dict[str, int]]:
    """The FLAN patterns of ``path``: task -> pairs, in file order (nothing executed), and
    the line of each task's definition."""
    name = Path(path).name
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        module = ast.parse(text, filename=name)
    except SyntaxError as exc:
        raise DataError(f"{name}:{exc.lineno}: not Python: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise DataError(f"{name}: cannot parse: {exc}") from None
    reader = _Reader(name, variable, report)
    found = False
    for stmt in module.body:
        value: ast.expr | None = None
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == variable for t in stmt.targets
        ):
            value = stmt.value
        elif (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == variable
        ):
            value = stmt.value
        if value is not None:
            if not isinstance(value, ast.Dict):
                raise DataError(
                    f"{name}:{stmt.lineno}: `{variable}` is not a dict literal "
                    f'(`{variable} = {{"task": [(input, target), ...]}}`)'
                )
            if found:
                reader.report.note(
                    f"<{variable}>",
                    "",
                    f"assigned again at line {stmt.lineno}; the last assignment is used",
                    reader.where(stmt.lineno),
                )
                reader.tasks.clear()
            found = True
            reader.read_dict(value)
        elif found:
            reader.statement(stmt)
    if not found:
        raise DataError(
            f"{name}: no module-level `{variable} = {{...}}` (FLAN's templates.py defines "
            "`PATTERNS`; name another dict with --variable)"
        )
    return reader.tasks, reader.lines


# ------------------------------------------------------------------ translating


def _options_slot(style: str) -> SlotOut:
    if style == "letters":
        decl = choices_decl(
            source="options",
            name=OPTIONS_FIELD,
            prefix="OPTIONS:\n",
            sep="\n",
            shuffle=False,
            enumerate_="(A) ",
        )
    else:
        decl = choices_decl(
            source="options", name=OPTIONS_FIELD, prefix="OPTIONS:\n- ", sep="\n- ", shuffle=False
        )
    return SlotOut(OPTIONS_FIELD, decl)


def _parenthesized(parts: tuple[Part, ...]) -> tuple[Part, ...]:
    """``{answer}`` as ``({answer})``, literal text merged."""
    out: list[Part] = []
    for part in parts:
        pieces = (
            [Part(False, "("), part, Part(False, ")")]
            if part.slot and part.value == ANSWER_FIELD
            else [part]
        )
        for piece in pieces:
            if out and not piece.slot and not out[-1].slot:
                out[-1] = Part(False, out[-1].value + piece.value)
            else:
                out.append(piece)
    return tuple(out)


def translate(
    task: str,
    patterns: list[Pattern],
    report: Report,
    source_name: str,
    style: str = "dash",
) -> TaskOut | None:
    """One FLAN task as a :class:`TaskOut`; untranslatable pairs go to the report."""
    out = TaskOut(task_name(task), task)
    pairs: list[tuple[Pattern, tuple[Part, ...], tuple[Part, ...]]] = []
    for p in patterns:
        where = f"{source_name}:{p.line}"
        try:
            inputs = parse_template(p.inputs)
            targets = parse_template(p.targets)
        except ValueError as exc:
            report.skip(task, f"[{p.index}]", str(exc), where)
            continue
        if not p.inputs.strip():
            report.skip(task, f"[{p.index}]", "the input template is empty", where)
            continue
        for text in (p.inputs, p.targets):
            if "{{" in text or "}}" in text:
                report.note(
                    task,
                    f"[{p.index}]",
                    "`{{`/`}}` are not escapes for FLAN's renderer: kept as FLAN renders "
                    "them (`{{x}}` is `{` + x + `}`)",
                    where,
                )
                break
        pairs.append((p, inputs, targets))
    if not pairs:
        return None
    uses_options = any(
        part.slot and part.value == OPTIONS_FIELD for _, i, t in pairs for part in (*i, *t)
    )
    for _, inputs, targets in pairs:
        for part in (*inputs, *targets):
            if not part.slot or part.value in out.slots:
                continue
            if part.value == OPTIONS_FIELD:
                out.slots[part.value] = _options_slot(style)
            elif part.value == ANSWER_FIELD and style == "letters" and uses_options:
                out.slots[part.value] = SlotOut(
                    ANSWER_FIELD, choice_of_decl(OPTIONS_FIELD, ANSWER_FIELD)
                )
            else:
                out.slots[part.value] = SlotOut(part.value, text_decl(None, part.value))
    letters = style == "letters" and uses_options
    names = Namer()
    for p, inputs, targets in pairs:
        if letters:  # FLAN's answer is the stripped enumerator `(A)`; a choice slot is `A`
            inputs, targets = _parenthesized(inputs), _parenthesized(targets)
        body, pin = split_pin(inputs, {OPTIONS_FIELD})
        out.instructions.append(
            InstructionOut(
                names.take(f"i{p.index}"),
                body,
                pin,
                targets,
                origin=f"[{p.index}]",
            )
        )
    return out


def import_flan(
    path: str | Path,
    out_dir: str | Path,
    *,
    variable: str = "PATTERNS",
    options: str = "dash",
    write: bool = True,
    force: bool = False,
) -> CollectionResult:
    """Import FLAN's ``templates.py`` at ``path`` into ``out_dir`` (one file per task).

    Nothing is written unless every file passes the checker; an instruction the checker
    refuses is dropped and listed in ``OUT/import-report.json`` with every pair that
    could not be translated.
    """
    if options not in OPTION_STYLES:
        raise UsageError(f"--options must be one of {', '.join(OPTION_STYLES)}, not {options!r}")
    source_name = Path(path).name
    report = Report(IMPORTER, source_name, {"options": options, "variable": variable})
    found, lines = read_patterns(path, report, variable)
    tasks: list[TaskOut] = []
    for task, patterns in found.items():
        where = f"{source_name}:{lines[task]}"
        translated = translate(task, patterns, report, source_name, options)
        if translated is not None:
            translated.where = where
            tasks.append(translated)
        elif not patterns and not any(item.task == task for item in report.skipped):
            report.skip(task, "", "no templates", where)
    return finish(IMPORTER, tasks, report, source_name, out_dir, write=write, force=force)
