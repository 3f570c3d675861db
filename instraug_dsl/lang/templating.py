"""Sandboxed Jinja for user-authored meta-prompts, and nothing else.

Meta-prompt templates are written by users; the instruction, strategy and
other values are passed to them as *data*.  LLM output and instruction text
are never rendered as templates.  Only a sandboxed environment is used.

A `.iat` file may come from anyone, so the sandbox is closed in three layers:

1. :func:`analyse_template` (run by ``iatc check``) finds, with a position in
   the template, everything the compiler would refuse: loading another
   template (E070), recursion (E071: recursive macros, recursive loops,
   ``self``, macros passed around as values), constructs the sandbox refuses
   (E072: ``.format()``, private or internal attributes, changing the
   values), and nesting too deep to parse or compile (E073).
   :func:`trial_render` renders once with sample values to find templates
   that go over a limit whatever the data (E074).
2. The environment refuses the same constructs when rendering, so a template
   that was never checked gets an error, never a crash.
3. Every render is metered (:class:`Limits`): loop iterations, the size of
   every string or list an operator, filter or method builds, the total work
   and the size of the output are bounded; going over raises
   :class:`TemplateLimitError`.  Recursion that slips through ends in the same
   error, not in a crash.
"""

from __future__ import annotations

import contextvars
import functools
import re
import typing as t
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace


class Limits:
    """What one render may do (the same at check time and at compile time)."""

    #: Characters of one rendered message.
    OUTPUT_CHARS = 200_000
    #: Characters (or elements) of any one value a template builds.
    VALUE_CHARS = 1_000_000
    #: Iterations of all ``for`` loops of one render together.
    LOOP_ITERATIONS = 10_000
    #: Total work of one render: characters and elements that operators,
    #: filters, methods and output go through.
    WORK = 2_000_000
    #: Length of a ``range()``.
    RANGE = 10_000
    #: Exponent bits of ``**`` on integers (a 10,000-digit number is plenty).
    POWER_BITS = 40_000


class TemplateLimitError(TemplateRuntimeError):
    """A render went over a :class:`Limits` bound, or recursed too deeply."""


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem found in a template, located by character offsets into its text.

    ``start``/``end`` of ``None`` means the whole template.
    """

    code: str
    message: str
    start: int | None = None
    end: int | None = None
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class TemplateReport:
    """What :func:`analyse_template` learnt about one template."""

    #: False when the template could not be parsed (syntax error, too deep).
    parsed: bool
    #: The Jinja syntax error (E054), if any.
    syntax_error: str | None
    #: The variables the template reads.
    variables: frozenset[str]
    #: Everything the sandbox would refuse (E054, E070-E073).
    findings: tuple[Finding, ...]


# ----------------------------------------------------------------- metering


class _Meter:
    """Counts what one render does; see :class:`Limits`."""

    __slots__ = ("iterations", "work")

    def __init__(self) -> None:
        self.iterations = 0
        self.work = 0

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > Limits.LOOP_ITERATIONS:
            raise TemplateLimitError(
                f"loops ran more than {Limits.LOOP_ITERATIONS:,} times in one render"
            )

    def spend(self, units: int) -> None:
        self.work += units
        if self.work > Limits.WORK:
            raise TemplateLimitError(f"one render did more than {Limits.WORK:,} units of work")


_METER: contextvars.ContextVar[_Meter | None] = contextvars.ContextVar("iat_meter", default=None)


def _spend(units: int) -> None:
    meter = _METER.get()
    if meter is not None:
        meter.spend(units)


def _size(value: object, cap: int = Limits.VALUE_CHARS) -> int:
    """Roughly how many characters ``str(value)`` has, counted only to just past ``cap``.

    Walks containers without recursion; shared or cyclic containers count once.
    """
    total = 0
    stack: list[object] = [value]
    seen: set[int] = set()
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() * 3 // 10 + 1
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, list | tuple | set | frozenset | dict | range | Namespace):
            if id(item) in seen:
                total += 8
                continue
            seen.add(id(item))
            if isinstance(item, Namespace):
                item = dict(item._Namespace__attrs)
            size = len(item)
            total += 2 + 4 * size
            if total > cap or isinstance(item, range):
                continue
            if isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            else:
                stack.extend(t.cast(t.Iterable[object], item))
        else:
            total += 16
    return total


def _check_size(value: object, what: str) -> None:
    if _size(value) > Limits.VALUE_CHARS:
        raise TemplateLimitError(f"{what} would be longer than {Limits.VALUE_CHARS:,} characters")


def _check_estimate(estimate: int, what: str) -> None:
    if estimate > Limits.VALUE_CHARS:
        raise TemplateLimitError(f"{what} would be longer than {Limits.VALUE_CHARS:,} characters")
    _spend(max(1, estimate))


def _as_int(value: object) -> int:
    return value if isinstance(value, int) else 0


_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _percent_estimate(fmt: str, args: object) -> int:
    """An upper bound of ``len(fmt % args)``; ``*`` widths are refused."""
    widths = 0
    for match in _PERCENT_FIELD.finditer(fmt):
        for group in match.groups():
            if group == "*":
                raise TemplateLimitError("`*` widths in `%` formatting are not allowed")
            if group:
                if len(group) > 9:
                    raise TemplateLimitError("a `%` format width is too large")
                widths += int(group)
    return len(fmt) + widths + 2 * _size(args)


# --------------------------------------------------------- size pre-checks


def _str_method_estimate(obj: str | bytes, name: str, args: tuple[t.Any, ...]) -> int | None:
    """Upper bound of the result size of a str/bytes method that can grow a value."""
    n = len(obj)
    if name in ("center", "ljust", "rjust", "zfill"):
        return n + _as_int(args[0] if args else 0)
    if name == "expandtabs":
        tab = _as_int(args[0]) if args else 8
        tabs = obj.count("\t") if isinstance(obj, str) else obj.count(b"\t")
        return n + tabs * max(tab, 0)
    if name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        count = _as_int(args[2]) if len(args) > 2 and args[2] is not None else -1
        if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
            return n
        hits = obj.count(old) if old else n + 1  # type: ignore[arg-type]
        if count >= 0:
            hits = min(hits, count)
        return n + hits * len(new)
    if name == "join" and args:
        items = args[0]
        if not hasattr(items, "__len__"):
            return None  # materialised by the caller first
        return _size(items) + len(items) * n
    if name == "translate" and args and isinstance(args[0], Mapping):
        widest = max((_size(v) for v in args[0].values()), default=1)
        return n * max(widest, 1)
    return n


def _int_method_estimate(obj: int, name: str, args: tuple[t.Any, ...]) -> int | None:
    if name == "to_bytes":
        return _as_int(args[0]) if args else 1
    return None


# Filters that can make a value much bigger than their input: the size of the
# result is bounded before the filter runs.  Each gets (value, args, kwargs).
def _pre_center(value: t.Any, args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> int:
    return _size(value) + _as_int(args[0] if args else kwargs.get("width", 80))


def _pre_indent(value: t.Any, args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> int:
    width = args[0] if args else kwargs.get("width", 4)
    per_line = len(width) if isinstance(width, str) else _as_int(width)
    size = _size(value)
    if size > Limits.VALUE_CHARS:
        return size
    text = value if isinstance(value, str) else str(value)
    first = args[1] if len(args) > 1 else kwargs.get("first", False)
    return size + (text.count("\n") + (1 if first else 0)) * per_line


def _pre_format(value: t.Any, args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> int:
    return _percent_estimate(str(value), kwargs or args) if isinstance(value, str) else 0


def _pre_replace(value: t.Any, args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> int:
    text = value if isinstance(value, str) else str(value)[: Limits.VALUE_CHARS + 1]
    full = (*args, *(kwargs[k] for k in ("old", "new", "count") if k in kwargs))
    return (
        _str_method_estimate(
            text, "replace", tuple(str(a) if i < 2 else a for i, a in enumerate(full))
        )
        or 0
    )


def _pre_wordwrap(value: t.Any, args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> int:
    width = max(_as_int(args[0] if args else kwargs.get("width", 79)), 1)
    wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring")
    size = _size(value)
    return size + (size // width + 1) * len(str(wrap) if wrap is not None else "\n")


def _pre_join(value: t.Any, args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> int:
    sep = args[0] if args else kwargs.get("d", "")
    count = len(value) if hasattr(value, "__len__") else 0
    return _size(value) + count * _size(sep)


def _pre_fill(value: t.Any, args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> int:
    """``batch``/``slice``: a huge count with ``fill_with`` builds a huge list."""
    count = _as_int(args[0] if args else kwargs.get("linecount", kwargs.get("slices", 1)))
    if count > Limits.RANGE:
        raise TemplateLimitError(f"a count above {Limits.RANGE:,} is not allowed here")
    return _size(value) + count


def _pre_tojson(value: t.Any, args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> int:
    indent = args[0] if args else kwargs.get("indent")
    step = len(indent) if isinstance(indent, str) else _as_int(indent)
    if step > 16:
        raise TemplateLimitError("`tojson` indents by at most 16")
    return _size(value) * (step + 2)


def _pre_sum(value: t.Any, args: tuple[t.Any, ...], kwargs: dict[str, t.Any]) -> int:
    start = args[1] if len(args) > 1 else kwargs.get("start", 0)
    if not isinstance(start, int | float):
        raise TemplateLimitError("`sum` adds numbers only")
    return _size(value)


_FILTER_ESTIMATES: dict[str, Callable[[t.Any, tuple[t.Any, ...], dict[str, t.Any]], int]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "format": _pre_format,
    "replace": _pre_replace,
    "wordwrap": _pre_wordwrap,
    "join": _pre_join,
    "batch": _pre_fill,
    "slice": _pre_fill,
    "tojson": _pre_tojson,
    "sum": _pre_sum,
}
#: Filters a meta-prompt cannot use: ``random`` would make compiler output
#: differ between runs; ``urlize`` multiplies its arguments into the text (HTML only).
_REMOVED_FILTERS = ("random", "urlize")


def _metered_filter(name: str, func: Callable[..., t.Any]) -> Callable[..., t.Any]:
    """Wrap a filter: bound its result before it runs, charge its input as work."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    estimate = _FILTER_ESTIMATES.get(name)

    @functools.wraps(func)  # keeps jinja_pass_arg, which says what to pass first
    def metered(*args: t.Any, **kwargs: t.Any) -> t.Any:
        if len(args) > skip:
            value = args[skip]
            if name == "join" and not hasattr(value, "__len__"):
                value = list(value)  # a generator: count it before joining
                args = (*args[:skip], value, *args[skip + 1 :])
            _spend(_size(value) + 1)
            if estimate is not None:
                _check_estimate(estimate(value, args[skip + 1 :], kwargs), f"`{name}`")
        result = func(*args, **kwargs)
        if isinstance(result, str | list | tuple):
            _check_size(result, f"the result of `{name}`")
        return result

    return metered


def _bounded_range(*args: int) -> range:
    """``range()`` in templates: at most :attr:`Limits.RANGE` numbers."""
    numbers = range(*args)
    if len(numbers) > Limits.RANGE:
        raise TemplateLimitError(f"range() of more than {Limits.RANGE:,} numbers")
    return numbers


class _Metered:
    """A loop's iterable that counts each iteration against the render's budget."""

    __slots__ = ("_items",)

    def __init__(self, items: t.Any) -> None:
        self._items = items

    def __iter__(self) -> Iterator[t.Any]:
        meter = _METER.get()
        for item in self._items:
            if meter is not None:
                meter.iterate()
            yield item

    def __len__(self) -> int:  # loop.length; TypeError when the iterable has none
        return len(self._items)


def _finalize(value: t.Any) -> t.Any:
    """Every ``{{ ... }}`` goes through here before it becomes text."""
    size = _size(value, Limits.OUTPUT_CHARS)
    if size > Limits.OUTPUT_CHARS:
        raise TemplateLimitError(
            f"a value to print is longer than {Limits.OUTPUT_CHARS:,} characters"
        )
    _spend(size)
    return value


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus the refusals and limits of this module."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=False,
            finalize=_finalize,
        )
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # lipsum(n, min=..., max=...) writes without bound
        for name in _REMOVED_FILTERS:
            self.filters.pop(name, None)
        self.filters = {name: _metered_filter(name, f) for name, f in self.filters.items()}

    def iat_iterate(self, items: t.Any) -> _Metered:
        """Wraps the iterable of every ``for`` loop (see :func:`_instrument`)."""
        return _Metered(items)

    def iat_concat(self, *parts: t.Any) -> str:
        """``a ~ b``, with the size of the result bounded first."""
        texts = [str(p) for p in parts]
        _check_estimate(sum(len(x) for x in texts), "a `~` result")
        return "".join(texts)

    def wrap_str_format(self, value: t.Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` are refused (E072), not sandboxed."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None

        def refused(*args: t.Any, **kwargs: t.Any) -> str:
            raise SecurityError("`.format()` cannot be used in a meta-prompt")

        return refused

    def call_binop(self, context: Context, operator: str, left: t.Any, right: t.Any) -> t.Any:
        """``*``, ``**``, ``%`` and ``+``, with the size of the result bounded first."""
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
                    _check_estimate(_size(seq) * max(times, 0), "a `*` result")
        elif operator == "+":
            if isinstance(left, str | bytes | list | tuple):
                _check_estimate(_size(left) + _size(right), "a `+` result")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                if right.bit_length() > 32 or right * abs(left).bit_length() > Limits.POWER_BITS:
                    raise TemplateLimitError("a `**` result would have too many digits")
        elif operator == "%" and isinstance(left, str):
            _check_estimate(_percent_estimate(left, right), "a `%` result")
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: t.Any, /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Every call in a template: methods that grow a value are bounded first."""
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", "")
        estimate: int | None = None
        if isinstance(owner, str | bytes) and not isinstance(owner, type):
            if name == "join" and args and not hasattr(args[0], "__len__"):
                args = (list(args[0]), *args[1:])
            estimate = _str_method_estimate(owner, name, args)
        elif isinstance(owner, int) and not isinstance(owner, bool):
            estimate = _int_method_estimate(owner, name, args)
        _spend(1 + sum(_size(a) for a in args))
        if estimate is not None:
            _check_estimate(estimate, f"the result of `{name}()`")
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(result, str | bytes | list | tuple):
            _check_size(result, f"the result of `{name or 'a call'}()`")
        return result


@functools.lru_cache(maxsize=1)
def environment() -> _Sandbox:
    """One sandbox per process; undefined variables are errors, not blanks."""
    return _Sandbox()


# ------------------------------------------------------------ static analysis

#: Attributes of Python internals the sandbox refuses (besides names starting with ``_``).
_INTERNAL_ATTRIBUTES = frozenset(
    {"mro", "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_code", "ag_frame", "gi_yieldfrom"}
)
#: Methods that change a list, dict or set: the values a template gets are read-only.
_MUTATING_METHODS = frozenset(
    {
        "append",
        "appendleft",
        "clear",
        "difference_update",
        "discard",
        "extend",
        "extendleft",
        "insert",
        "intersection_update",
        "pop",
        "popitem",
        "popleft",
        "remove",
        "reverse",
        "rotate",
        "setdefault",
        "sort",
        "symmetric_difference_update",
        "update",
        "add",
    }
)
#: Filters whose string arguments name attributes (``map(attribute="x")``).
_ATTRIBUTE_FILTERS = frozenset(
    {
        "attr",
        "map",
        "selectattr",
        "rejectattr",
        "sort",
        "groupby",
        "sum",
        "join",
        "unique",
        "min",
        "max",
    }
)
_LOADERS: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from",
}


class _Locator:
    """Turns a template line and a pattern into character offsets of the template.

    Jinja nodes know their line, not their column.  Findings are looked up in
    source order, so each line keeps a cursor and the next search starts where
    the last one ended: a one-line template with thousands of findings is
    scanned once, not once per finding.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.starts = [0, *(m.end() for m in re.finditer("\n", source))]
        self.cursor: dict[int, int] = {}

    def restart(self) -> None:
        """Start again from the top (a new pass over the template)."""
        self.cursor.clear()

    def find(self, lineno: int, pattern: str) -> tuple[int | None, int | None]:
        """The next match of ``pattern`` on line ``lineno`` (the whole line if none)."""
        if not 1 <= lineno <= len(self.starts):
            return None, None
        begin = self.starts[lineno - 1]
        stop = self.starts[lineno] - 1 if lineno < len(self.starts) else len(self.source)
        regex = re.compile(pattern)
        found = regex.search(self.source, self.cursor.get(lineno, begin), stop)
        if found is None and lineno in self.cursor:  # out of order: look from the start
            found = regex.search(self.source, begin, stop)
        if found is not None:
            self.cursor[lineno] = found.end()
            return found.start(), found.end()
        line = self.source[begin:stop]
        lead = len(line) - len(line.lstrip())
        return begin + lead, begin + len(line.rstrip()) if line.strip() else stop


def _private(name: str) -> bool:
    return name.startswith("_") or name in _INTERNAL_ATTRIBUTES


def _children(node: nodes.Node) -> Iterator[nodes.Node]:
    for field in node.fields:
        value = getattr(node, field, None)
        if isinstance(value, nodes.Node):
            yield value
        elif isinstance(value, list):
            yield from (v for v in value if isinstance(v, nodes.Node))


def _static_findings(ast: nodes.Template, source: str) -> list[Finding]:
    """Everything the sandbox refuses, found without running the template."""
    where = _Locator(source)
    found: list[Finding] = []

    def add(
        code: str, node: nodes.Node, pattern: str, message: str, hint: str | None = None
    ) -> None:
        start, end = where.find(node.lineno, pattern)
        found.append(Finding(code, message, start, end, hint))

    macros: dict[str, list[nodes.Macro]] = {}
    defined: list[nodes.Macro] = []
    calls: dict[str, set[str]] = {}
    callees: set[int] = set()  # ids of Name nodes that are called directly
    names: list[tuple[nodes.Name, str | None]] = []
    stack: list[tuple[nodes.Node, str | None]] = [(ast, None)]
    while stack:
        node, owner = stack.pop()
        if type(node) in _LOADERS:
            keyword = _LOADERS[type(node)]
            add(
                "E070",
                node,
                rf"\b{keyword}\b",
                f"`{{% {keyword} %}}` cannot be used: a meta-prompt cannot load another template",
                hint="write the text into this template (a macro can share it within the template)",
            )
        elif isinstance(node, nodes.Macro):
            macros.setdefault(node.name, []).append(node)
            defined.append(node)
            owner = node.name
        elif isinstance(node, nodes.For) and node.recursive:
            add(
                "E071",
                node,
                r"\brecursive\b",
                "recursive loops are not allowed in a meta-prompt",
                hint="loop over the values directly",
            )
        elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            callees.add(id(node.node))
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            names.append((node, owner))
        elif isinstance(node, nodes.Getattr | nodes.Getitem):
            attr = node.attr if isinstance(node, nodes.Getattr) else None
            if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
                # `x["key"]` is a lookup first (a `_key` of a dict is fine); only what
                # falls back to a refused attribute is reported.
                key = node.arg.value if isinstance(node.arg.value, str) else ""
                dunder = key.startswith("__") or key in _INTERNAL_ATTRIBUTES
                attr = key if dunder or key in ("format", "format_map") else None
            if attr is not None:
                pattern = rf"\.\s*{re.escape(attr)}\b" if isinstance(node, nodes.Getattr) else None
                _check_attribute(node, attr, pattern or re.escape(attr), add)
        elif isinstance(node, nodes.Filter) and node.name in _ATTRIBUTE_FILTERS:
            for arg in [*node.args, *(k.value for k in node.kwargs)]:
                if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                    if any(_private(part) for part in arg.value.split(".")):
                        add(
                            "E072",
                            node,
                            re.escape(arg.value),
                            f"attribute `{arg.value}` is private: the sandbox refuses it",
                        )
        stack.extend((child, owner) for child in reversed(list(_children(node))))
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            if node.node.attr in _MUTATING_METHODS:
                add(
                    "E072",
                    node,
                    rf"\.\s*{node.node.attr}\b",
                    f"`.{node.node.attr}()` would change a value: the values a meta-prompt"
                    " gets are read-only",
                    hint="build a new value with filters instead (`|list`, `~`, `+`)",
                )

    where.restart()
    for name, owner in names:
        if name.name in macros:
            if owner is not None:
                calls.setdefault(owner, set()).add(name.name)
            if id(name) not in callees:
                add(
                    "E071",
                    name,
                    rf"\b{re.escape(name.name)}\b",
                    f"macro `{name.name}` is used as a value; macros may only be called by name",
                    hint="passing a macro around could make it call itself",
                )
        elif name.name == "caller" and id(name) not in callees:
            add(
                "E071",
                name,
                r"\bcaller\b",
                "`caller` is used as a value; it may only be called",
            )
        elif name.name == "self":
            add(
                "E071",
                name,
                r"\bself\b",
                "`self` cannot be used in a meta-prompt: a block that renders itself never ends",
            )
    cycle_of = {name: cycle for cycle in _cycles(calls) for name in cycle}
    where.restart()
    for macro in defined:  # in source order
        cycle = cycle_of.get(macro.name)
        if cycle is None:
            continue
        through = [n for n in cycle[:4] if n != macro.name][:3]
        more = len(cycle) - 1 - len(through)
        listed = ", ".join(f"`{n}`" for n in through) + (f" and {more} more" if more else "")
        via = f" (through {listed})" if through else ""
        add(
            "E071",
            macro,
            rf"\bmacro\s+{re.escape(macro.name)}\b",
            f"macro `{macro.name}` calls itself{via}: recursion is not allowed",
        )
    return found


def _check_attribute(
    node: nodes.Node,
    attr: str,
    pattern: str,
    add: Callable[[str, nodes.Node, str, str, str | None], None],
) -> None:
    if attr in ("format", "format_map"):
        add(
            "E072",
            node,
            pattern,
            f"`.{attr}()` cannot be used in a meta-prompt",
            'join text with `~`, or use the `format` filter (`"%s" | format(x)`)',
        )
    elif _private(attr):
        add(
            "E072",
            node,
            pattern,
            f"attribute `{attr}` is private or internal: the sandbox refuses it",
            None,
        )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components that contain a cycle (Tarjan's, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    out.append(sorted(component))
    return out


_TOO_DEEP = "the template is nested too deeply"


@functools.lru_cache(maxsize=256)
def analyse_template(source: str) -> TemplateReport:
    """Parse, inspect and compile one template; never raises for any input."""
    env = environment()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateReport(False, f"{exc.message} (template line {exc.lineno})", frozenset(), ())
    except (RecursionError, MemoryError):
        return TemplateReport(False, None, frozenset(), (_deep_finding(),))
    try:
        variables = frozenset(meta.find_undeclared_variables(ast))
    except TemplateSyntaxError as exc:  # it compiles the template: e.g. an unknown filter
        return TemplateReport(False, f"{exc.message} (template line {exc.lineno})", frozenset(), ())
    except (RecursionError, MemoryError):
        return TemplateReport(False, None, frozenset(), (_deep_finding(),))
    findings = _static_findings(ast, source)
    if not findings:
        problem = _compile_problem(source, ast)
        if problem is not None:
            findings.append(problem)
    return TemplateReport(True, None, variables, tuple(findings))


def _deep_finding() -> Finding:
    return Finding(
        "E073",
        _TOO_DEEP,
        hint="Jinja and Python both limit nesting: flatten the `{% if %}`/`{% for %}` blocks",
    )


def _compile_problem(source: str, ast: nodes.Template) -> Finding | None:
    try:
        _remember(source, _compile_checked(ast))
    except TemplateLimitError:
        return _deep_finding()
    except TemplateSyntaxError as exc:  # e.g. an unknown filter
        return Finding("E054", f"invalid template: {exc.message} (template line {exc.lineno})")
    except TemplateError as exc:
        return Finding("E054", f"invalid template: {exc}")
    return None


def _instrument(ast: nodes.Template) -> None:
    """Meter loops and ``~`` in the parsed template (in place, without recursion)."""
    stack: list[nodes.Node] = [ast]
    while stack:
        node = stack.pop()
        for field in node.fields:
            value = getattr(node, field, None)
            if isinstance(value, nodes.Concat):
                setattr(node, field, _call("iat_concat", value.nodes, value))
            elif isinstance(value, list):
                value[:] = [
                    _call("iat_concat", v.nodes, v) if isinstance(v, nodes.Concat) else v
                    for v in value
                ]
        if isinstance(node, nodes.For):
            node.iter = _call("iat_iterate", [node.iter], node.iter)
        stack.extend(_children(node))


def _call(method: str, args: t.Sequence[nodes.Node], at: nodes.Node) -> nodes.Call:
    return nodes.Call(
        nodes.EnvironmentAttribute(method, lineno=at.lineno),
        list(args),
        [],
        None,
        None,
        lineno=at.lineno,
    )


#: Compiled templates by source: ``check`` compiles each one anyway, so compiling
#: for rendering in the same process reuses that work.
_COMPILED: dict[str, t.Any] = {}


def _remember(source: str, template: t.Any) -> t.Any:
    if len(_COMPILED) >= 512:
        _COMPILED.clear()
    _COMPILED[source] = template
    return template


def _compiled(source: str) -> t.Any:
    """The template compiled for rendering; refused constructs raise :class:`SecurityError`."""
    found = _COMPILED.get(source)
    if found is not None:
        return found
    env = environment()
    try:
        ast = env.parse(source)
        refused = _static_findings(ast, source)
    except (RecursionError, MemoryError):
        raise TemplateLimitError(_TOO_DEEP) from None
    if refused:
        raise SecurityError(refused[0].message)
    return _remember(source, _compile_checked(ast))


def _compile_checked(ast: nodes.Template) -> t.Any:
    """Compile a parsed template that passed :func:`_static_findings` (the AST is changed)."""
    env = environment()
    try:
        _instrument(ast)
        ast.set_environment(env)
        code = env.compile(ast)
    except (RecursionError, MemoryError):
        raise TemplateLimitError(_TOO_DEEP) from None
    except SyntaxError as exc:  # Python's own limits (statically nested blocks)
        if isinstance(exc, TemplateSyntaxError):
            raise
        raise TemplateLimitError(_TOO_DEEP) from None
    return env.template_class.from_code(env, code, env.make_globals(None), None)


# ------------------------------------------------------------------ rendering


def template_problems(source: str) -> tuple[str | None, set[str]]:
    """Return (syntax problem or None, variables the template reads)."""
    report = analyse_template(source)
    problem = report.syntax_error
    if problem is None and not report.parsed:
        problem = _TOO_DEEP
    return problem, set(report.variables)


def render_template(source: str, variables: Mapping[str, object]) -> str:
    """Render a user template with values passed as data, within :class:`Limits`.

    Raises :class:`jinja2.TemplateError` (a :class:`TemplateLimitError` for a
    limit) for anything that goes wrong in the template.
    """
    return _render(source, variables, _Meter())


def _render(source: str, variables: Mapping[str, object], meter: _Meter) -> str:
    token = _METER.set(meter)
    try:
        template = _compiled(source)
        out: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > Limits.OUTPUT_CHARS:
                raise TemplateLimitError(
                    f"the rendered text is longer than {Limits.OUTPUT_CHARS:,} characters"
                )
            out.append(chunk)
        return "".join(out)
    except (RecursionError, MemoryError):
        raise TemplateLimitError("the template recursed or nested too deeply") from None
    finally:
        _METER.reset(token)


#: Values for a trial render at check time (unknown names get a short text).
SAMPLE_VALUES: dict[str, object] = {
    "instruction": "Describe the image in {A} words.",
    "tokens": ["{A}"],
    "n": 3,
    "count": 10,
    "strategy": "Use synonyms.",
    "task": "task",
    "category": "category",
}


class TrialBudget:
    """How much trial rendering one check may do in all.

    Each render is bounded, but a file of thousands of meta-prompts, each just
    under the bounds, would still take minutes; past this budget templates are
    only checked statically (compiling still enforces every limit).  Identical
    templates are rendered once.
    """

    ITERATIONS = 20 * Limits.LOOP_ITERATIONS
    WORK = 5 * Limits.WORK

    def __init__(self) -> None:
        self.iterations = 0
        self.work = 0
        self.results: dict[tuple[str, frozenset[str]], str | None] = {}

    @property
    def exhausted(self) -> bool:
        """True once the renders so far used up the budget."""
        return self.iterations > self.ITERATIONS or self.work > self.WORK


def trial_render(
    source: str, names: t.Iterable[str], budget: TrialBudget | None = None
) -> str | None:
    """Render with sample values; return what limit was exceeded, if any.

    Only limits are reported: other errors may well depend on the real values.
    """
    key = (source, frozenset(names))
    if budget is not None:
        if key in budget.results:
            return budget.results[key]
        if budget.exhausted:
            return None
    variables = {name: SAMPLE_VALUES.get(name, "text") for name in sorted(key[1])}
    meter = _Meter()
    result: str | None = None
    try:
        _render(source, variables, meter)
    except TemplateLimitError as exc:
        result = str(exc.message or exc)
    except Exception:  # noqa: BLE001 - any other failure may depend on the data
        result = None
    if budget is not None:
        budget.iterations += meter.iterations
        budget.work += meter.work
        budget.results[key] = result
    return result
