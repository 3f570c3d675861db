"""Completion: keywords by context, declared names where a name is expected, slot names in
instruction strings after ``{`` and template variables in meta-prompts after ``{{``.

The text being typed rarely parses, so the context is read from the tokens before the
cursor (strings and comments are single tokens, so braces inside them do not count), and
the keywords that may come next are asked of the grammar itself
(:func:`instraug_dsl.lang.parser.next_words`).  Declared names come from the last check of
the document (its imports included) and from its last version that parsed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lsprotocol import types

from ..lang import ir
from ..lang.check import (
    BOOTSTRAP_VARS,
    BUILTIN_TYPES,
    LANGUAGES,
    METAPROMPT_VARS,
    PLACEHOLDER_POLICIES,
    REJECTABLE,
    SAMPLING_MODES,
    SPLITS,
)
from ..lang.parser import next_words

_TOKEN = re.compile(
    r"""
      (?P<comment>\#[^\n]*)
    | (?P<string>\"\"\"(?:[^"\\]|\\.|"(?!""))*(?:(?P<end3>\"\"\")|\Z)
                 | "(?:[^"\\\n]|\\.)*(?:(?P<end1>")|(?=\n)|\Z))
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)
    | (?P<number>-?[0-9]+(?:\.[0-9]+)?)
    | (?P<punct>\.\.|\[\]|->|[{}\[\]:=,.?])
    | (?P<space>\s+)
    | (?P<other>.)
    """,
    re.X | re.S,
)

#: Names after these words (in the block given, ``None``: anywhere) are of this kind.
_NAME_AFTER: dict[tuple[str, str | None], str] = {
    ("use", "plan"): "metaprompt",
    ("plan", "sampling"): "plan",
    ("strategies", "metaprompt"): "strategies",
    ("strategies", "bootstrap"): "strategies",
    ("tasks", "plan"): "task",
    (":", "task"): "type",
}
#: Fixed values after these words.
_VALUES: dict[str, tuple[str, ...]] = {
    "split": SPLITS,
    "placeholders": PLACEHOLDER_POLICIES,
    "language": LANGUAGES,
    "mode": SAMPLING_MODES,
    "reject": (*REJECTABLE, "none"),
}
#: The declaration class behind each kind of name.
_KINDS: dict[type, str] = {
    ir.TypeAlias: "type",
    ir.Task: "task",
    ir.MetaPrompt: "metaprompt",
    ir.Strategies: "strategies",
    ir.Bootstrap: "bootstrap",
    ir.Plan: "plan",
    ir.Sampling: "sampling",
}
_ITEM_KIND = {
    "type": types.CompletionItemKind.Class,
    "task": types.CompletionItemKind.Struct,
    "metaprompt": types.CompletionItemKind.Function,
    "bootstrap": types.CompletionItemKind.Function,
    "strategies": types.CompletionItemKind.Enum,
    "plan": types.CompletionItemKind.Module,
    "sampling": types.CompletionItemKind.Module,
}
#: Turns an offset of the document into an LSP position.
PositionOf = Callable[[int], types.Position]
_PLACEHOLDER = re.compile(r"(?:^|[^\\])(?:\\\\)*\{([A-Za-z0-9_]*)\Z")
_JINJA = re.compile(r"\{\{-?\s*([A-Za-z_0-9]*)\Z")


@dataclass(frozen=True)
class Token:
    """A token of the text: ``kind`` is a group name of the scanner."""

    kind: str
    text: str
    start: int
    end: int
    #: For a string: whether its closing quote is there.
    closed: bool = True


@dataclass
class Block:
    """An open ``{`` block: its keyword (``task``, ``plan``, ``filter``...) and name."""

    kind: str
    name: str | None
    #: Where its declaration starts (the keyword, or ``default`` before ``plan``).
    start: int
    #: Index of its ``{`` token.
    brace: int


def tokens(text: str) -> list[Token]:
    """The significant tokens of ``text`` (no white space)."""
    found = []
    for m in _TOKEN.finditer(text):
        kind = "string" if m.group("string") is not None else str(m.lastgroup)
        if kind != "space":
            closed = kind != "string" or m.group("end3") is not None or m.group("end1") is not None
            found.append(Token(kind, m.group(), m.start(), m.end(), closed))
    return found


def _open_block(before: list[Token], stack: list[Block], index: int) -> Block:
    """The block a ``{`` opens, from the tokens before it (``KW NAME [extends NAME] {``)."""
    if stack or len(before) < 2:  # nested: `filter {`
        kind = before[-1].text if before else ""
        return Block(kind, None, before[-1].start if before else 0, index)
    at = len(before) - 4 if len(before) >= 4 and before[-2].text == "extends" else len(before) - 2
    keyword, name = before[at], before[at + 1]
    start = before[at - 1].start if at > 0 and before[at - 1].text == "default" else keyword.start
    return Block(keyword.text, name.text, start, index)


@dataclass
class Context:
    """Where the cursor is."""

    all_tokens: list[Token]
    #: Tokens that end before the cursor (the word being typed left out).
    before: list[Token]
    stack: list[Block]
    #: The word being typed (up to the cursor) and where it starts.
    word: str
    word_start: int
    #: The string or comment the cursor is in.
    inside: Token | None = None


@functools.cache
def _top_keywords() -> frozenset[str]:
    """The keywords that start a declaration (``task``, ``plan``, ...), from the grammar."""
    found = next_words("")
    return frozenset(found[0]) - {"default"} if found is not None else frozenset()


def _starts_declaration(text: str, every: list[Token], index: int, top: frozenset[str]) -> bool:
    """A declaration keyword at the start of a line (``default`` only before ``plan``)."""
    tok = every[index]
    if tok.kind != "name" or (tok.start > 0 and text[tok.start - 1] != "\n"):
        return False
    if tok.text == "default":
        return index + 1 < len(every) and every[index + 1].text == "plan"
    return tok.text in top


def context_at(text: str, offset: int) -> Context:
    """Read the tokens up to ``offset``."""
    every = tokens(text)
    before: list[Token] = []
    stack: list[Block] = []
    top = _top_keywords()
    for index, tok in enumerate(every):
        if tok.start >= offset:
            break
        if _starts_declaration(text, every, index, top):
            stack.clear()  # as the parser resyncs: a broken block before ends here
        inside = tok.end > offset or (tok.end == offset and tok.kind == "comment")
        if tok.kind == "string" and not tok.closed and tok.end == offset:
            inside = True
        if tok.kind in ("string", "comment") and inside:
            return Context(every, before, stack, "", offset, tok)
        if tok.kind in ("name", "number") and tok.end >= offset:
            word = text[tok.start : offset]
            return Context(every, before, stack, word, tok.start)
        if tok.text == "{":
            stack.append(_open_block(before, stack, index))
        elif tok.text == "}" and stack:
            stack.pop()
        before.append(tok)
    return Context(every, before, stack, "", offset)


def _range(start: int, stop: int, position_of: PositionOf) -> types.Range:
    return types.Range(start=position_of(start), end=position_of(stop))


@dataclass
class Names:
    """Declared names by kind (``type``, ``plan``, ...) with a one-line detail each."""

    by_kind: dict[str, dict[str, str]]

    def of(self, kind: str) -> dict[str, str]:
        """Names of one kind (``metaprompt`` includes bootstrap prompts, as ``use`` does)."""
        found = dict(self.by_kind.get(kind, {}))
        if kind == "metaprompt":
            found.update(self.by_kind.get("bootstrap", {}))
        return found


def collect_names(modules: Iterable[ir.Module | None]) -> Names:
    """The names declared in ``modules`` (a document, what it imports, its last good
    version), and the built-in types."""
    by_kind: dict[str, dict[str, str]] = {}
    for module in modules:
        for item in module.items if module is not None else ():
            name = getattr(getattr(item, "name", None), "value", None)
            if isinstance(name, str):
                kind = _KINDS.get(type(item), type(item).__name__.lower())
                by_kind.setdefault(kind, {})[name] = f"{kind} {name}"
    for builtin in BUILTIN_TYPES:
        by_kind.setdefault("type", {})[builtin] = f"built-in type {builtin}"
    return Names(by_kind)


def _keywords(text: str, ctx: Context) -> tuple[tuple[str, ...], bool]:
    """The keywords the grammar accepts at the word being typed, and whether a name may come.

    When the text before does not parse (an earlier mistake), the declaration the cursor is
    in is parsed alone, then a skeleton of the blocks the cursor is in.
    """
    found = next_words(text[: ctx.word_start])
    if found is None and ctx.stack:
        start = ctx.stack[0].start
        blanked = re.sub(r"[^\n]", " ", text[:start]) + text[start : ctx.word_start]
        found = next_words(blanked)
    if found is None:
        skeleton = "".join(
            f"{b.kind} {{ " if i else f"{b.kind} {b.name or 'x'} {{ "
            for i, b in enumerate(ctx.stack)
        )
        found = next_words(skeleton)
    return found if found is not None else ((), False)


def _name_kind(ctx: Context, names_kinds: Iterable[str] = ()) -> str | None:
    """The kind of declared name expected at the cursor, if the context tells
    (``names_kinds``: the kinds of declarations there are)."""
    before = ctx.before
    if not before:
        return None
    prev = before[-1].text
    block = ctx.stack[-1].kind if ctx.stack else None
    if prev == "extends" and len(before) >= 3:
        return {"plan": "plan", "metaprompt": "metaprompt"}.get(before[-3].text, before[-3].text)
    if prev == "=" and len(before) >= 3 and before[-3].text == "type" and block is None:
        return "type"
    if prev == ",":  # `tasks a, b, |`
        i = len(before) - 1
        while i >= 1 and before[i].text == "," and before[i - 1].kind == "name":
            i -= 2
        if i >= 0 and before[i].text == "tasks" and block == "plan":
            return "task"
        return None
    known = _NAME_AFTER.get((prev, block))
    if known is None and block is not None and prev in names_kinds:
        return prev  # `judge NAME` in a plan: a name of the declaration kind it says
    return known


def _values(ctx: Context) -> tuple[str, ...]:
    """Fixed values expected at the cursor (``split train``, ``reject answers, ...``)."""
    before = ctx.before
    if not before:
        return ()
    i = len(before) - 1
    while i >= 1 and before[i].text == "," and before[i - 1].kind == "name":
        i -= 2
    keyword = before[i].text
    if i != len(before) - 1 and keyword != "reject":  # only `reject` takes a list
        return ()
    return _VALUES.get(keyword, ())


def _item(
    label: str,
    kind: types.CompletionItemKind,
    detail: str | None,
    edit_range: types.Range,
    new_text: str | None = None,
) -> types.CompletionItem:
    return types.CompletionItem(
        label=label,
        kind=kind,
        detail=detail,
        text_edit=types.TextEdit(range=edit_range, new_text=new_text or label),
    )


def _task_slots(ctx: Context, block: Block) -> dict[str, str]:
    """Slots declared in a task block (read from the tokens, so also while it is broken)."""
    found: dict[str, str] = {}
    toks = ctx.all_tokens
    depth = 0
    for i in range(block.brace, len(toks)):
        tok = toks[i]
        if tok.text == "{":
            depth += 1
        elif tok.text == "}":
            depth -= 1
            if depth == 0:
                break
        elif (
            depth == 1
            and tok.text == "slot"
            and i + 2 < len(toks)
            and toks[i + 1].kind == "name"
            and toks[i + 2].text == ":"
        ):
            spelled = "".join(t.text for t in toks[i + 3 : i + 6] if t.text in ("[]", "?"))
            type_name = toks[i + 3].text if i + 3 < len(toks) else ""
            found.setdefault(toks[i + 1].text, f"slot {toks[i + 1].text}: {type_name}{spelled}")
    return found


def _in_string(
    text: str, offset: int, ctx: Context, position_of: PositionOf
) -> list[types.CompletionItem]:
    tok = ctx.inside
    if tok is None or tok.kind != "string" or not ctx.stack:
        return []
    quote = 3 if tok.text.startswith('"""') else 1
    body = text[tok.start + quote : offset]
    block = ctx.stack[-1]
    if block.kind == "task":
        match = _PLACEHOLDER.search(body)
        if match is None:
            return []
        start = offset - len(match.group(1))
        closing = "" if text[offset : offset + 1] == "}" else "}"
        edit = _range(start, offset, position_of)
        return [
            _item(name, types.CompletionItemKind.Field, detail, edit, name + closing)
            for name, detail in sorted(_task_slots(ctx, block).items())
        ]
    if block.kind in ("metaprompt", "bootstrap"):
        match = _JINJA.search(body)
        if match is None:
            return []
        names = METAPROMPT_VARS if block.kind == "metaprompt" else BOOTSTRAP_VARS
        edit = _range(offset - len(match.group(1)), offset, position_of)
        return [
            _item(name, types.CompletionItemKind.Variable, "template variable", edit)
            for name in sorted(names)
        ]
    return []


def _declared_in_text(ctx: Context, names: Names) -> None:
    """Add the declarations of the text itself (``KW NAME`` at the top level), so names
    declared in a document that does not parse yet are offered too."""
    keywords = _top_keywords() - {"import"}
    depth = 0
    toks = ctx.all_tokens
    for i, tok in enumerate(toks):
        if tok.text == "{":
            depth += 1
        elif tok.text == "}":
            depth = max(depth - 1, 0)
        elif depth == 0 and tok.text in keywords and i + 1 < len(toks):
            name = toks[i + 1]
            if name.kind == "name" and name.start != ctx.word_start:
                names.by_kind.setdefault(tok.text, {}).setdefault(
                    name.text, f"{tok.text} {name.text}"
                )


def complete(
    text: str, offset: int, names: Names, position_of: PositionOf
) -> list[types.CompletionItem]:
    """Completion items at ``offset`` of ``text`` (the document as the editor has it)."""
    ctx = context_at(text, offset)
    _declared_in_text(ctx, names)
    if ctx.inside is not None:
        return _in_string(text, offset, ctx, position_of)
    edit = _range(ctx.word_start, offset, position_of)
    items: list[types.CompletionItem] = []
    keywords, name_ok = _keywords(text, ctx)
    for word in keywords:
        items.append(_item(word, types.CompletionItemKind.Keyword, "keyword", edit))
    kind = _name_kind(ctx, names.by_kind) if name_ok or not keywords else None
    if kind is not None:
        declared = names.of(kind)
        if ctx.before and ctx.before[-1].text == "extends":  # not the declaration itself
            declared.pop(ctx.before[-2].text, None)
        item_kind = _ITEM_KIND.get(kind, types.CompletionItemKind.Reference)
        for name, detail in sorted(declared.items()):
            items.append(_item(name, item_kind, detail, edit))
    for value in _values(ctx):
        items.append(_item(value, types.CompletionItemKind.EnumMember, "value", edit))
    unique: dict[str, types.CompletionItem] = {}  # `const`: a keyword and a built-in type
    for item in items:
        unique.setdefault(item.label, item)
    return list(unique.values())
