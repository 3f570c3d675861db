"""Hypothesis properties of the language front end and the formatter.

(a) For generated programs (random layout, comments everywhere, odd
    strings), ``fmt`` keeps the meaning (``parse(fmt(src)) == parse(src)``
    modulo spans), keeps every comment, and is idempotent.
(b) String literals: ``decode(quote(s)) == s`` for any text, in both styles,
    and through a full parse of ``notes <literal>``.
(c) Arbitrary text and mutated programs give diagnostics, never an
    exception, through the API, the formatter and the CLI.

Example counts come from the profile loaded in ``conftest.py`` (``dev``
locally, ``ci`` when ``CI=true``); the never-crash properties run twice as
many.  Sources are generated as token lists joined by random separators
(the grammar ignores whitespace and comments between any two tokens), which
reaches every construct and every comment position; ``from_lark`` would need
explicit strategies for NAME and the string terminals anyway and cannot put
comments between tokens.
"""

from __future__ import annotations

import string
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from instraug_dsl import check_text
from instraug_dsl.errors import IatCheckError
from instraug_dsl.lang.fmt import format_source
from instraug_dsl.lang.irjson import to_data
from instraug_dsl.lang.parser import parse
from instraug_dsl.lang.strings import decode, quote

NEVER_CRASH = settings(max_examples=2 * settings.default.max_examples)

KEYWORDS = frozenset(
    """import type const sep prefix task category split source notes augment instances where
    target from slot each default instruction pin metaprompt strategies bootstrap system user
    description count take plan extends use samples temperature step top_p max_tokens model
    seed iterations attempts tasks all filter length_ratio placeholders dedup sampling
    raw_share mode per_task true false not names shuffle enumerate of carry""".split()
)

# ------------------------------------------------------------- atoms

# Built from small pieces: `from_regex` is several times slower to draw.
_HEAD = string.ascii_letters + "_"
names = st.builds(
    lambda head, tail, suffix: head + tail + suffix,
    st.sampled_from(_HEAD),
    st.text(_HEAD + string.digits, max_size=5),
    st.sampled_from(["", "", "", "-a", "-1_b"]),
).filter(lambda n: n not in KEYWORDS)
_sign = st.sampled_from(["", "", "-"])
ints = st.builds(lambda s, n: s + n, _sign, st.text(string.digits, min_size=1, max_size=4))
floats = st.builds(
    lambda s, a, b: f"{s}{a}.{b}",
    _sign,
    st.text(string.digits, min_size=1, max_size=2),
    st.text(string.digits, min_size=1, max_size=3),
)
numbers = st.one_of(ints, floats)

_ESCAPES = [
    "\\\\",
    '\\"',
    "\\n",
    "\\t",
    "\\r",
    "\\{",
    "\\}",
    "\\u00e9",
    "\\u007b",
    "\\u000a",
    "\\ud800",
]
_TEMPLATE_BITS = [
    "{{ instruction }}",
    "{{",
    "}}",
    "{%",
    "%}",
    "{# x #}",
    "{% if n %}",
    "{% endif %}",
    "|",
    "'",
]
_plain_text = st.text(
    st.characters(blacklist_characters='"\\\n', blacklist_categories=("Cs",)), max_size=8
)
_fragment = st.one_of(
    _plain_text,
    st.sampled_from(_ESCAPES),
    st.sampled_from(["{", "}", "#", " "]),
    names.map(lambda n: "{" + n + "}"),
    st.sampled_from(_TEMPLATE_BITS),
)
_triple_fragment = st.one_of(_fragment, st.sampled_from(["\n", "\r\n", '"x', '" ', "\n  "]))


@st.composite
def strings(draw: st.DrawFn) -> str:
    """A valid string literal as written in source (plain or triple-quoted)."""
    if draw(st.booleans()):
        return '"' + "".join(draw(st.lists(_fragment, max_size=5))) + '"'
    body = "".join(draw(st.lists(_triple_fragment, max_size=5)))
    return '"""' + body + '"""'


# ------------------------------------------------------------ syntax
# Each strategy returns a list of tokens; `programs` joins them.


@st.composite
def field_paths(draw: st.DrawFn) -> list[str]:
    out = [draw(names)]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["key", "index", "quoted"]))
        if kind == "key":
            out += [".", draw(names)]
        elif kind == "index":
            out += ["[", draw(ints), "]"]
        else:
            out += ["[", draw(strings()), "]"]
    return out


@st.composite
def type_exprs(draw: st.DrawFn) -> list[str]:
    if draw(st.integers(0, 5)) == 0:
        out = ["const", draw(strings())]
    else:
        out = [draw(st.one_of(st.sampled_from(["text", "bbox", "choices"]), names))]
    if draw(st.booleans()):
        out.append("[]")
    if draw(st.integers(0, 3)) == 0:
        out.append("?")
    # A repeated option is an error (E014), so each appears at most once.
    options = ["sep", "prefix", "names", "shuffle", "enumerate", "of"]
    for option in draw(st.lists(st.sampled_from(options), max_size=3, unique=True)):
        if option == "names":
            out += ["names", draw(strings())]
            for _ in range(draw(st.integers(0, 2))):
                out += [",", draw(strings())]
        elif option == "shuffle":
            out += ["shuffle", draw(st.sampled_from(["true", "false"]))]
        elif option == "of":
            out += ["of", draw(names)]
        else:
            out += [option, draw(strings())]
    return out


@st.composite
def task_members(draw: st.DrawFn) -> list[str]:
    kind = draw(
        st.sampled_from(
            [
                "category",
                "split",
                "source",
                "notes",
                "augment",
                "instances",
                "target",
                "slot",
                "instruction",
                "instruction",
                "instruction",
            ]
        )
    )
    if kind in ("category", "source", "notes"):
        return [kind, draw(strings())]
    if kind == "split":
        return ["split", draw(st.one_of(st.sampled_from(["train", "test"]), names))]
    if kind == "augment":
        return ["augment", draw(st.sampled_from(["true", "false"]))]
    if kind == "instances":
        out = ["instances", draw(strings())]
        if draw(st.booleans()):
            out += ["where", *(["not"] if draw(st.booleans()) else []), *draw(field_paths())]
        return out
    if kind == "target":
        return ["target", "from", *draw(field_paths())]
    if kind == "slot":
        out = ["slot", draw(names), ":", *draw(type_exprs())]
        clauses = st.lists(st.sampled_from(["from", "each", "default"]), max_size=3, unique=True)
        for clause in draw(clauses):
            out += [clause, *(draw(field_paths()) if clause == "from" else [draw(strings())])]
        return out
    out = ["instruction", draw(names), "="]
    for _ in range(draw(st.integers(1, 4))):
        out += (["pin"] if draw(st.integers(0, 2)) == 0 else []) + [draw(strings())]
    if draw(st.integers(0, 2)) == 0:
        out += ["->", draw(strings())]
    return out


@st.composite
def prompt_members(draw: st.DrawFn) -> list[str]:
    kind = draw(
        st.sampled_from(["system", "user", "user", "description", "strategies", "count", "take"])
    )
    if kind in ("system", "user", "description"):
        return [kind, draw(strings())]
    if kind == "strategies":
        return ["strategies", draw(names)]
    return [kind, draw(ints)]


@st.composite
def number_sets(draw: st.DrawFn) -> list[str]:
    if draw(st.booleans()):
        return [draw(numbers), "..", draw(numbers), "step", draw(numbers)]
    out = [draw(numbers)]
    for _ in range(draw(st.integers(0, 2))):
        out += [",", draw(numbers)]
    return out


@st.composite
def filter_members(draw: st.DrawFn) -> list[str]:
    kind = draw(st.sampled_from(["length_ratio", "placeholders", "dedup"]))
    if kind == "length_ratio":
        return ["length_ratio", draw(numbers), "..", draw(numbers)]
    if kind == "placeholders":
        return ["placeholders", draw(st.one_of(st.sampled_from(["exact", "multiset"]), names))]
    return ["dedup", draw(numbers)]


@st.composite
def plan_members(draw: st.DrawFn) -> list[str]:
    kind = draw(
        st.sampled_from(
            [
                "use",
                "temperature",
                "top_p",
                "max_tokens",
                "model",
                "seed",
                "iterations",
                "attempts",
                "tasks",
                "filter",
            ]
        )
    )
    if kind == "use":
        return ["use", draw(names), *(["samples", draw(ints)] if draw(st.booleans()) else [])]
    if kind == "temperature":
        return ["temperature", *draw(number_sets())]
    if kind == "top_p":
        return ["top_p", draw(numbers)]
    if kind == "model":
        return ["model", draw(strings())]
    if kind == "tasks":
        choice = draw(st.integers(0, 2))
        if choice == 0:
            return ["tasks", "all"]
        if choice == 1:
            return ["tasks", "category", draw(strings())]
        out = ["tasks", draw(names)]
        for _ in range(draw(st.integers(0, 2))):
            out += [",", draw(names)]
        return out
    if kind == "filter":
        inner = draw(st.lists(filter_members(), max_size=3))
        return ["filter", "{", *[tok for m in inner for tok in m], "}"]
    return [kind, draw(ints)]


@st.composite
def sampling_members(draw: st.DrawFn) -> list[str]:
    kind = draw(
        st.sampled_from(["plan", "instances", "raw_share", "mode", "per_task", "seed", "carry"])
    )
    if kind == "instances":
        return ["instances", draw(strings())]
    if kind == "carry":
        out = ["carry", *draw(field_paths())]
        for _ in range(draw(st.integers(0, 2))):
            out += [",", *draw(field_paths())]
        return out
    if kind in ("plan", "mode"):
        return [kind, draw(names)]
    if kind == "raw_share":
        return [kind, draw(numbers)]
    return [kind, draw(ints)]


def _block(head: list[str], members: list[list[str]]) -> list[str]:
    return [*head, "{", *[tok for m in members for tok in m], "}"]


@st.composite
def items(draw: st.DrawFn) -> list[str]:
    kind = draw(
        st.sampled_from(
            [
                "import",
                "type",
                "task",
                "task",
                "metaprompt",
                "strategies",
                "bootstrap",
                "plan",
                "sampling",
            ]
        )
    )
    name = draw(names)
    if kind == "import":
        return ["import", draw(strings())]
    if kind == "type":
        return ["type", name, "=", *draw(type_exprs())]
    if kind == "task":
        return _block(["task", name], draw(st.lists(task_members(), max_size=5)))
    if kind in ("metaprompt", "bootstrap"):
        return _block([kind, name], draw(st.lists(prompt_members(), max_size=4)))
    if kind == "strategies":
        pairs = draw(st.lists(st.tuples(names, strings()), max_size=3))
        return _block(["strategies", name], [[n, ":", s] for n, s in pairs])
    if kind == "plan":
        head = ["plan", name, *(["extends", draw(names)] if draw(st.booleans()) else [])]
        return _block(head, draw(st.lists(plan_members(), max_size=5)))
    return _block(["sampling", name], draw(st.lists(sampling_members(), max_size=4)))


_comment_text = st.text(
    st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=8
)
_whitespace = st.sampled_from([" ", " ", " ", "\n", "\n\n", "\t", "\n    ", "\r\n"])
# Mostly whitespace; a comment in about one gap of five.
separators = st.one_of(
    _whitespace,
    _whitespace,
    _whitespace,
    _whitespace,
    _whitespace,
    _whitespace,
    _comment_text.map(lambda c: f" #{c}\n"),
    _comment_text.map(lambda c: f"\n\n#{c}\n\n"),
)


@st.composite
def programs(draw: st.DrawFn) -> str:
    """Source text of a syntactically valid program with random layout and comments."""
    tokens = [tok for item in draw(st.lists(items(), max_size=4)) for tok in item]
    out = [draw(st.sampled_from(["", "\n", "# head\n"]))]
    for tok in tokens:
        out += [tok, draw(separators)]
    return "".join(out)


@st.composite
def mutated_programs(draw: st.DrawFn) -> str:
    """A valid program with a few characters deleted or inserted."""
    text = draw(programs())
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        if text and draw(st.booleans()):
            text = text[:pos] + text[pos + draw(st.integers(1, 3)) :]
        else:
            char = draw(st.one_of(st.sampled_from(list('{}[]"\\#\n:=.,?')), st.characters()))
            text = text[:pos] + char + text[pos:]
    return text


# --------------------------------------------------------- (a) fmt


def _module_data(src: str) -> object:
    module, diags = parse(src)
    assert module is not None, [str(d) for d in diags]
    assert not diags.errors, [str(d) for d in diags]
    return to_data(module, spans=False)


def _comment_texts(src: str) -> Counter[str]:
    module, _ = parse(src)
    assert module is not None
    return Counter(c.text.rstrip() for c in module.comments)


@given(programs())
@example('task t { instruction i0 = """{a\\n}""" "x" }')
@example('metaprompt m { user """\\"""" }')
def test_fmt_keeps_meaning_and_comments_and_is_idempotent(src: str) -> None:
    """parse(fmt(src)) == parse(src) modulo spans; comments kept; fmt(fmt(x)) == fmt(x)."""
    meaning = _module_data(src)
    out = format_source(src)
    assert _module_data(out) == meaning
    assert _comment_texts(out) == _comment_texts(src)
    assert format_source(out) == out


# ----------------------------------------------------- (b) strings


@given(st.text(st.characters(blacklist_categories=())), st.booleans())
def test_quote_then_decode_is_identity(value: str, triple: bool) -> None:
    """Any text (lone surrogates included) survives quote → decode, without escape errors."""
    chars, errors = decode(quote(value, triple))
    assert errors == []
    assert "".join(c.ch for c in chars) == value


@given(st.text(st.characters(blacklist_categories=())), st.booleans())
def test_quoted_text_parses_back(value: str, triple: bool) -> None:
    """`notes <quote(s)>` parses to a literal with value s and the same style."""
    module, diags = parse(f"task t {{ notes {quote(value, triple)} }}")
    assert module is not None and not diags.errors, [str(d) for d in diags]
    lit = module.items[0].members[0].value  # type: ignore[union-attr]
    assert (lit.value, lit.triple) == (value, triple)
    out = format_source(f"task t {{ notes {quote(value, triple)} }}")
    assert _module_data(out) == _module_data(f"task t {{ notes {quote(value, triple)} }}")


# --------------------------------------------------- (c) never crash


def _never_crashes(text: str) -> None:
    result = check_text(text, "fuzz.iat")
    assert isinstance(result.render(), str)
    assert all(d.span.path == "fuzz.iat" for d in result.diagnostics)
    try:
        out = format_source(text, "fuzz.iat")
    except IatCheckError as err:
        assert err.diagnostics and isinstance(err.render(), str)
    else:
        # Whatever parses must also format soundly.
        assert _module_data(out) == _module_data(text)
        assert format_source(out) == out


# Random sequences of real tokens reach many more parser error states than random text.
_token = st.one_of(
    st.sampled_from(sorted(KEYWORDS) + list("{}[]:=.,?#\n") + ["..", "[]", '"', '"""', "-", "->"]),
    names,
    ints,
    floats,
    strings(),
)
token_soup = st.lists(_token, max_size=30).map(" ".join)


@NEVER_CRASH
@given(st.one_of(st.text(), token_soup))
@example("plan p { seed " + "9" * 5000 + " }")
@example("plan p { seed " + "9" * 400 + " use m }")
@example("plan p { temperature 0.0..2.0 step 0.0000000000000000001 }")
def test_arbitrary_text_never_crashes(text: str) -> None:
    """Random text or token soup yields diagnostics (or a clean check), never an exception."""
    _never_crashes(text)


@NEVER_CRASH
@given(mutated_programs())
def test_mutated_programs_never_crash(text: str) -> None:
    """Near-valid programs (a few characters deleted or inserted) never crash."""
    _never_crashes(text)


@settings(max_examples=max(10, settings.default.max_examples // 25))
@given(st.one_of(mutated_programs(), programs(), st.text()))
@example('import """\\ud800""" ')  # found by this property: unencodable import path
@example('import "\\u0000"')  # NUL in an import path
def test_cli_check_never_crashes(text: str) -> None:
    """`iatc check` on fuzzed files exits 0 or 1 with no exception."""
    from instraug_dsl.commands.app import app
    from instraug_dsl.commands.app import register_commands as _register_commands

    _register_commands()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.iat"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        for args in (["check", str(path)], ["fmt", "--check", str(path)]):
            result = CliRunner().invoke(app, args)
            assert result.exit_code in (0, 1), (args, result.output, result.exception)
            assert result.exception is None or isinstance(result.exception, SystemExit)
