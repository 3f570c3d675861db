"""Import promptsource's ``templates.yaml`` files without running Jinja.

promptsource keeps one ``templates.yaml`` per dataset (``templates/<dataset>/templates.yaml``)
or subset (``templates/<dataset>/<subset>/templates.yaml``)::

    dataset: super_glue
    subset: rte
    templates:
      2b52a83c-...: !Template
        answer_choices: Yes ||| No
        id: 2b52a83c-...
        jinja: '{{premise}} Is "{{hypothesis}}" true? ||| {{ answer_choices[label] }}'
        metadata: !TemplateMetadata {...}
        name: does this imply

The YAML is read with a safe loader that builds ``!Template`` and ``!TemplateMetadata`` as
plain mappings.  Each file becomes one task (``super_glue_rte``, reading the records whose
``task_name`` is ``super_glue/rte``); each template becomes one instruction with its own
target, the two halves of its ``|||`` split.  promptsource renders a template with Jinja,
splits the output on ``|||`` and strips both halves (``Template.apply``); the import
translates the part of Jinja the renderer can express (see :mod:`.jinja_subset`) and
strips the literal text at both ends.  ``answer_choices[label]`` becomes a ``label`` slot
(``names[int(label)]``), ``answer_choices[0]`` and ``answer_choices | join(", ")``
``const`` slots, when the template's choices are fixed.  Every template that uses anything
else (``{% if %}``, ``{% for %}``, other filters, expressions, choices that depend on the
example) is listed in the report with the reason, and not imported.
"""

from __future__ import annotations

import importlib
import typing as t
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import DataError, UsageError
from .emit import (
    CollectionResult,
    InstructionOut,
    Namer,
    Report,
    SlotOut,
    TaskOut,
    const_decl,
    finish,
    ident,
    label_decl,
    path_of,
    task_name,
    text_decl,
)
from .jinja_subset import Expr, Token, Unsupported, parse_output, statement_name, tokenize
from .records import Part

IMPORTER = "promptsource"
TEMPLATES_FILE = "templates.yaml"
SEPARATOR = "|||"
EXTRA = "promptsource"


def _yaml() -> t.Any:
    """PyYAML, imported when needed (the ``[promptsource]`` extra)."""
    try:
        return importlib.import_module("yaml")
    except ImportError:
        raise UsageError(
            "`iatc import promptsource` reads YAML with PyYAML: "
            f"pip install 'instraug-dsl[{EXTRA}]'"
        ) from None


def _loader() -> t.Any:
    """A safe YAML loader that builds promptsource's two tags as plain mappings."""
    yaml = _yaml()

    class Loader(yaml.SafeLoader):  # type: ignore[misc,name-defined]
        pass

    def mapping(loader: t.Any, node: t.Any) -> dict[str, t.Any]:
        value = dict(loader.construct_mapping(node, deep=True))
        value["__line__"] = node.start_mark.line + 1
        return value

    Loader.add_constructor("!Template", mapping)
    Loader.add_constructor("!TemplateMetadata", mapping)
    return Loader


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """One promptsource template, as read from the YAML."""

    id: str
    name: str
    jinja: str
    answer_choices: str | None
    line: int


@dataclass(frozen=True, slots=True)
class DatasetTemplates:
    """One ``templates.yaml``: which dataset (and subset) and its templates."""

    dataset: str
    subset: str | None
    templates: tuple[PromptTemplate, ...]
    path: str  # relative to the input folder

    @property
    def original(self) -> str:
        """The dataset's name as promptsource spells it (``super_glue/rte``)."""
        return f"{self.dataset}/{self.subset}" if self.subset else self.dataset


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def read_file(path: Path, shown: str, report: Report) -> DatasetTemplates | None:
    """Read one ``templates.yaml``; a file that cannot be read is reported (``None``)."""
    yaml = _yaml()
    parts = Path(shown).parts[:-1]
    guess = "/".join(parts) if parts else path.parent.name
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())
    except (OSError, UnicodeDecodeError) as exc:
        report.skip(guess, "", f"cannot read the file: {exc}", shown)
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{shown}:{mark.line + 1}" if mark is not None else shown
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        report.skip(guess, "", f"not valid promptsource YAML: {problem}", at)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("templates"), dict):
        report.skip(guess, "", "no `templates:` mapping", shown)
        return None
    dataset = _text(data.get("dataset"))
    subset = _text(data.get("subset"))
    if dataset is None:  # no `dataset:` key: the folders say it (dataset/subset/templates.yaml)
        dataset = parts[0] if parts else guess
        subset = subset or ("/".join(parts[1:]) if len(parts) > 1 else None)
    original = f"{dataset}/{subset}" if subset else dataset
    templates: list[PromptTemplate] = []
    for key, raw in data["templates"].items():
        if not isinstance(raw, dict):
            report.skip(original, str(key), "not a template mapping", shown)
            continue
        line = raw.get("__line__", 0)
        name, jinja = _text(raw.get("name")), _text(raw.get("jinja"))
        choices = raw.get("answer_choices")
        label = name or str(key)
        if jinja is None:
            report.skip(original, label, "no `jinja` text", f"{shown}:{line}")
            continue
        if choices is not None and not isinstance(choices, str):
            report.skip(original, label, "`answer_choices` is not text", f"{shown}:{line}")
            continue
        templates.append(
            PromptTemplate(str(raw.get("id", key)), name or str(key), jinja, choices, line)
        )
    return DatasetTemplates(dataset, subset, tuple(templates), shown)


def find_files(root: Path) -> list[tuple[Path, str]]:
    """The ``templates.yaml`` files under ``root`` (or ``root`` itself), sorted by path,
    each with the path to show (relative to ``root``)."""
    if root.is_file():
        return [(root, root.name)]
    found = sorted(root.rglob(TEMPLATES_FILE), key=lambda p: p.relative_to(root).parts)
    return [(p, p.relative_to(root).as_posix()) for p in found if p.is_file()]


# ------------------------------------------------------------------ translating


def fixed_choices(expr: str | None) -> list[str] | None:
    """The choices of a template when they do not depend on the example (``None`` if they
    do, or if there are none), split and stripped as promptsource does."""
    if expr is None or any(mark in expr for mark in ("{{", "{%", "{#")):
        return None
    return [choice.strip() for choice in expr.split(SEPARATOR)]


class _TaskBuilder:
    """Slots shared by the templates of one task, named once per distinct meaning."""

    def __init__(self, task: TaskOut) -> None:
        self.task = task
        self.names = Namer()
        self.keys: dict[tuple[object, ...], str] = {}
        self.consts: dict[str, str] = {}

    def copy(self) -> _TaskBuilder:
        """A scratch copy: a template that fails half-way adds no slot to the task."""
        other = _TaskBuilder(replace(self.task, slots=dict(self.task.slots)))
        other.names = self.names.copy()
        other.keys = dict(self.keys)
        other.consts = dict(self.consts)
        return other

    def slot(self, key: tuple[object, ...], base: str, decl: Callable[[str], str]) -> str:
        name = self.keys.get(key)
        if name is None:
            name = self.names.take(base)
            self.keys[key] = name
            self.task.slots[name] = SlotOut(name, decl(name))
        return name

    def const_value(self, name: str) -> str | None:
        """The text of a ``const`` slot made here (``None`` for other slots)."""
        return self.consts.get(name)

    def part(self, expr: Expr, choices: list[str] | None, answer_expr: str | None) -> Part:
        if expr.kind == "literal":
            return Part(False, expr.text)
        if expr.kind == "path":
            assert expr.path is not None
            path = path_of(expr.path.steps)
            name = self.slot(
                ("path", path), ident(expr.path.spelled()), lambda n: text_decl(path, n)
            )
            return Part(True, name)
        if choices is None:
            if answer_expr is None:
                raise Unsupported("uses `answer_choices`, but the template has none")
            raise Unsupported(f"its answer_choices depend on the example (`{answer_expr}`)")
        fixed = tuple(choices)
        if expr.kind == "choice_index":
            try:
                value = choices[expr.index]
            except IndexError:
                raise Unsupported(
                    f"`answer_choices[{expr.index}]` is out of range ({len(choices)} choices)"
                ) from None
            base = f"answer_choices_{expr.index}".replace("-", "m")
            name = self.slot(("index", fixed, expr.index), base, lambda n: const_decl(value))
            self.consts[name] = value
            return Part(True, name)
        if expr.kind == "choice_join":
            joined = expr.sep.join(choices)
            name = self.slot(
                ("join", fixed, expr.sep), "answer_choices_list", lambda n: const_decl(joined)
            )
            self.consts[name] = joined
            return Part(True, name)
        assert expr.kind == "choice_label" and expr.path is not None
        path = path_of(expr.path.steps)
        name = self.slot(
            ("label", fixed, path), "answer_choices", lambda n: label_decl(choices, path, n)
        )
        return Part(True, name)


def _split(tokens: list[Token]) -> tuple[list[Token], list[Token]]:
    """The tokens before and after the one ``|||`` of a template."""
    count = sum(tok.text.count(SEPARATOR) for tok in tokens if tok.kind == "text")
    if count == 0:
        raise Unsupported("no `|||`: the template has no target")
    if count > 1:
        raise Unsupported(f"`|||` appears {count} times; one splits the prompt from the target")
    i = next(i for i, tok in enumerate(tokens) if tok.kind == "text" and SEPARATOR in tok.text)
    tok = tokens[i]
    before, after = tok.text.split(SEPARATOR)
    head = tokens[:i] + ([Token("text", before, tok.offset)] if before else [])
    tail = ([Token("text", after, tok.offset)] if after else []) + tokens[i + 1 :]
    return head, tail


def _strip(parts: list[Part]) -> tuple[Part, ...]:
    """What ``str.strip()`` does to the rendered half, on its literal ends."""
    out = [p for p in parts if p.slot or p.value]
    merged: list[Part] = []
    for p in out:
        if merged and not p.slot and not merged[-1].slot:
            merged[-1] = Part(False, merged[-1].value + p.value)
        else:
            merged.append(p)
    if merged and not merged[0].slot:
        merged[0] = Part(False, merged[0].value.lstrip())
    if merged and not merged[-1].slot:
        merged[-1] = Part(False, merged[-1].value.rstrip())
    return tuple(p for p in merged if p.slot or p.value)


def _translate_half(
    tokens: list[Token], builder: _TaskBuilder, template: PromptTemplate
) -> tuple[Part, ...]:
    choices = fixed_choices(template.answer_choices)
    parts: list[Part] = []
    for tok in tokens:
        if tok.kind == "text":
            parts.append(Part(False, tok.text))
        elif tok.kind == "output":
            part = builder.part(parse_output(tok.text), choices, template.answer_choices)
            value = part.value if not part.slot else builder.const_value(part.value)
            if value is not None and SEPARATOR in value:
                raise Unsupported(
                    f"`{{{{ {tok.text.strip()} }}}}` renders `|||`, where promptsource would "
                    "split the prompt from the target"
                )
            parts.append(part)
    return _strip(parts)


def translate_template(builder: _TaskBuilder, template: PromptTemplate) -> InstructionOut:
    """One template as an instruction; raise :class:`Unsupported` with the reason."""
    tokens = tokenize(template.jinja)
    for tok in tokens:
        if tok.kind == "statement":
            raise Unsupported(
                f"`{{% {statement_name(tok.text)} %}}`: Jinja statements are not translated"
            )
        if tok.kind == "output" and tok.trim_after:
            # Template.apply puts `| string | truncate(...)` before every `}}`, after the `-`
            raise Unsupported("`-}}`: promptsource's own rendering (Template.apply) fails on it")
    head, tail = _split(tokens)
    scratch = builder.copy()
    body = _translate_half(head, scratch, template)
    target = _translate_half(tail, scratch, template)
    if not body:
        raise Unsupported("the prompt (before `|||`) is empty")
    if not target:
        raise Unsupported("the target (after `|||`) is empty")
    builder.names, builder.keys, builder.consts = scratch.names, scratch.keys, scratch.consts
    builder.task.slots.update(scratch.task.slots)
    return InstructionOut(
        "",
        body,
        (),
        target,
        comment=f'"{template.name}" ({template.id})',
        origin=template.name,
    )


def translate(data: DatasetTemplates, report: Report) -> TaskOut | None:
    """One ``templates.yaml`` as a task; what cannot be expressed goes to the report."""
    original = data.original
    task = TaskOut(task_name(original), original, source=original, instances=original)
    task.where = data.path
    builder = _TaskBuilder(task)
    names = Namer()
    for template in data.templates:
        try:
            ins = translate_template(builder, template)
        except Unsupported as exc:
            report.skip(original, template.name, str(exc), f"{data.path}:{template.line}")
            continue
        name = names.take(ident(template.name))
        task.instructions.append(
            InstructionOut(name, ins.body, ins.pin, ins.target, ins.comment, ins.origin)
        )
    return task if task.instructions else None


def import_promptsource(
    path: str | Path,
    out_dir: str | Path,
    *,
    write: bool = True,
    force: bool = False,
) -> CollectionResult:
    """Import every ``templates.yaml`` under ``path`` (or the one file ``path``) into
    ``out_dir``: one ``.iat`` file per dataset/subset, the untranslatable templates in
    ``OUT/import-report.json``.  Nothing is written unless every file passes the checker."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    _yaml()  # a missing extra is a clear error before anything is read
    shown_root = root.name
    report = Report(IMPORTER, shown_root)
    files = find_files(root)
    if not files:
        raise DataError(f"{root}: no `{TEMPLATES_FILE}` files found")
    tasks: list[TaskOut] = []
    for file, shown in files:
        data = read_file(file, shown, report)
        if data is None:
            continue
        task = translate(data, report)
        if task is not None:
            tasks.append(task)
        elif not data.templates:
            report.skip(data.original, "", "no templates", data.path)
    return finish(IMPORTER, tasks, report, shown_root, out_dir, write=write, force=force)
