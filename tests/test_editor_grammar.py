"""The VS Code extension (editors/vscode): its TextMate grammar, tokenized by the real engine.

VS Code highlights `.iat` files with ``editors/vscode/syntaxes/iat.tmLanguage.json``.  This
test installs the extension's pinned npm packages (``npm ci`` in a temporary copy of the
folder, so a clean checkout needs nothing but node and npm) and then

* runs the extension's own Node tests (``node --test``): vscode-textmate with the Oniguruma
  WebAssembly build, the engine VS Code uses, over the identity corpus, the template
  library, the examples and hostile input; golden scopes; the manifest; activation with a
  fake ``vscode``; and, when ``iatc lsp`` is available, a real LSP session with the server
  the extension would start;
* compares every token of the same corpus with the Lark parser of ``grammar/iat.lark``:
  each keyword gets a keyword scope, each name the scope of its role (a name spelled like a
  keyword is still a name), each string a string scope of its kind from its first to its
  last character and not one character further, each comment a comment scope, each
  ``{slot}`` the placeholder scope and nothing else in a string, Jinja only inside
  ``{{ }}``/``{% %}`` of templates.

Skipped only when node or npm is not installed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lark import Lark, Token, Tree

from instraug_dsl.lang.ir import BadBrace, SlotRef, StringLit
from instraug_dsl.lang.source import Span
from instraug_dsl.lang.strings import split_template

ROOT = Path(__file__).resolve().parents[1]
EDITOR = ROOT / "editors" / "vscode"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="node and npm are needed to test the VS Code grammar in editors/vscode",
)

NODE_TESTS = ["test/grammar.test.js", "test/extension.test.js", "test/lsp.test.js"]


# ------------------------------------------------------------------ set-up


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAT_")}
    env.update(
        IAT_REPO_ROOT=str(ROOT),
        npm_config_update_notifier="false",
        npm_config_fund="false",
        npm_config_audit="false",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of editors/vscode with its locked packages installed by ``npm ci``."""
    dest = tmp_path_factory.mktemp("editor") / "vscode"
    shutil.copytree(EDITOR, dest, ignore=shutil.ignore_patterns("node_modules", "*.vsix"))
    started = time.monotonic()
    assert NPM is not None
    proc = subprocess.run(
        [NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=dest,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"npm ci failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    print(f"npm ci: {time.monotonic() - started:.1f} s")
    return dest


def _server_path() -> str | None:
    """An ``iatc`` whose ``lsp`` command can run here, for the LSP smoke test."""
    try:
        import instraug_dsl.lsp.server  # noqa: F401
    except ImportError:
        return None
    beside = Path(sys.executable).with_name("iatc")
    if beside.is_file():
        return str(beside)
    return shutil.which("iatc")


@pytest.fixture(scope="module")
def tokenized(editor: Path) -> list[dict[str, Any]]:
    """The valid corpus of test/corpus.js, tokenized by vscode-textmate."""
    assert NODE is not None
    proc = subprocess.run(
        [NODE, "test/tokenize.js", "--corpus"],
        cwd=editor,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    items: list[dict[str, Any]] = json.loads(proc.stdout)
    return items


# -------------------------------------------------------------- node tests


def test_node_suite(editor: Path) -> None:
    """The extension's Node tests pass (grammar, golden scopes, manifest, activation, LSP)."""
    assert NODE is not None
    extra = {}
    server = _server_path()
    if server is not None:
        extra["IAT_SERVER_PATH"] = server
    proc = subprocess.run(
        [NODE, "--test", *NODE_TESTS],
        cwd=editor,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    failures = [line for line in output.splitlines() if line.startswith("not ok")]
    assert proc.returncode == 0, "\n".join(failures) + "\n\n" + output[-12000:]
    passed = re.search(r"^# pass (\d+)$", output, re.M)
    assert passed is not None and int(passed.group(1)) >= 20, output[-3000:]


def test_extension_is_valid_javascript() -> None:
    """``main`` (extension.js) and its helper parse as JavaScript (`node --check`)."""
    assert NODE is not None
    main = json.loads((EDITOR / "package.json").read_text(encoding="utf-8"))["main"]
    for name in (main, "server.js", "syntaxes/build-grammar.js"):
        proc = subprocess.run(
            [NODE, "--check", name], cwd=EDITOR, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr


def test_node_modules_stay_out_of_git() -> None:
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "node_modules/" in ignored


# ------------------------------------------------------- the Lark side


#: Lark terminals with a name of their own; every other token is a keyword or punctuation.
_NAMED = {
    "NAME", "NUMBER", "SIGNED_INT", "BOOL", "NOT", "RANGE", "LIST_SUFFIX", "OPTIONAL_MARK",
    "STRING", "COMMENT",
}  # fmt: skip

#: The scope of a declaration's name (its second name, if any, is the base it extends).
_DECLARED = {
    "task_decl": "entity.name.type.task.iat",
    "type_decl": "entity.name.type.alias.iat",
    "metaprompt_decl": "entity.name.function.metaprompt.iat",
    "bootstrap_decl": "entity.name.function.bootstrap.iat",
    "strategies_decl": "entity.name.namespace.strategies.iat",
    "plan_decl": "entity.name.function.plan.iat",
    "default_plan_decl": "entity.name.function.plan.iat",
    "sampling_decl": "entity.name.function.sampling.iat",
    "judge_decl": "entity.name.function.judge.iat",
    "slot_decl": "entity.name.variable.slot.iat",
    "instruction_decl": "entity.name.variable.instruction.iat",
    "strategy_item": "entity.name.variable.strategy.iat",
}
#: The scope of a name that refers to a declaration or is a choice among fixed values.
_NAME_ROLE = {
    "prompt_strategies": "variable.other.reference.strategies.iat",
    "plan_use": "variable.other.reference.prompt.iat",
    "select_names": "variable.other.reference.task.iat",
    "sampling_plan": "variable.other.reference.plan.iat",
    "plan_judge": "variable.other.reference.judge.iat",
    "task_split": "support.constant.split.iat",
    "filter_placeholders": "support.constant.placeholders.iat",
    "filter_reject": "support.constant.reject.iat",
    "filter_language": "support.constant.language.iat",
    "sampling_mode": "support.constant.mode.iat",
    "opt_of": "variable.other.reference.slot.iat",
    "field_path": "variable.other.property.iat",
    "step_key": "variable.other.property.iat",
}
_BUILTIN_TYPES = {"text", "bbox", "choices", "label", "choice"}
#: Strings whose `{name}` are placeholders, and templates (Jinja), by the rule holding them.
_PLACEHOLDER_STRINGS = {"part_text": ".template", "part_pinned": ".template",
                        "instruction_target": ".template",
                        "prompt_example": ".template", "slot_each": ".template.each"}  # fmt: skip
_JINJA_STRINGS = {"prompt_system", "prompt_user"}
#: An `each` field access: {value[0]}, {a.b} (instraug_dsl/dataset/eachfmt.py).
_ACCESS = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[-?[0-9]+\])*\}\Z")


@functools.cache
def _parser() -> tuple[Lark, list[Token]]:
    """The grammar of the checkout, keeping every token (keywords too) and the comments."""
    comments: list[Token] = []
    parser = Lark(
        (ROOT / "grammar" / "iat.lark").read_text(encoding="utf-8"),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=False,
        keep_all_tokens=True,
        lexer_callbacks={"COMMENT": comments.append},
    )
    return parser, comments


def _lark_keywords() -> set[str]:
    words: set[str] = set()
    for line in (ROOT / "grammar" / "iat.lark").read_text(encoding="utf-8").splitlines():
        code = line.split("//", 1)[0]
        words.update(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', code))
    return words


Path_ = tuple[Tree[Any], ...]
#: A test on the scopes of one character.
Check = Callable[[tuple[str, ...]], bool]


def _tokens(tree: Tree[Any], ancestors: Path_ = ()) -> Iterator[tuple[Token, Path_]]:
    """Every token with the rules around it, innermost last."""
    path = (*ancestors, tree)
    for child in tree.children:
        if isinstance(child, Token):
            yield child, path
        else:
            yield from _tokens(child, path)


def _name_scope(token: Token, path: Path_) -> str | None:
    """The scope a NAME must have where it stands (None: a rule this test does not know)."""
    name_node, owner = path[-1], path[-2]
    if owner.data == "type_name":
        builtin = token.value in _BUILTIN_TYPES
        return "support.type.builtin.iat" if builtin else "entity.name.type.iat"
    if owner.data in _DECLARED:
        names = [c for c in owner.children if isinstance(c, Tree) and c.data == "name"]
        if names[0] is not name_node:
            return "entity.other.inherited-class.iat"
        return _DECLARED[str(owner.data)]
    return _NAME_ROLE.get(str(owner.data))


@dataclass
class Scoped:
    """The scopes vscode-textmate gave each character of one source."""

    name: str
    text: str
    scopes: list[tuple[str, ...]]
    problems: list[str]

    def at(self, offset: int) -> tuple[str, ...]:
        return self.scopes[offset]

    def where(self, offset: int) -> str:
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return f"{self.name}:{line}:{col}"

    def require(self, start: int, end: int, ok: Check, what: str) -> None:
        for i in range(start, end):
            if self.text[i] in "\r\n":
                continue
            if not ok(self.scopes[i]):
                self.problems.append(
                    f"{self.where(i)} {self.text[start:end][:60]!r}: expected {what}, "
                    f"got {' '.join(self.scopes[i][1:])}"
                )
                return


def _scoped(item: dict[str, Any]) -> Scoped:
    text: str = item["text"]
    scopes: list[tuple[str, ...]] = [()] * len(text)
    offset = 0
    for line, tokens in zip(text.split("\n"), item["lines"], strict=True):
        for start, end, names in tokens:
            for i in range(start, end):
                scopes[offset + i] = tuple(names)
        offset += len(line) + 1
    return Scoped(item["name"], text, scopes, [])


def _has(*prefixes: str) -> Check:
    return lambda scopes: any(s.startswith(prefixes) for s in scopes)


def _lacks(*prefixes: str) -> Check:
    return lambda scopes: not any(s.startswith(prefixes) for s in scopes)


def _exactly(scope: str) -> Check:
    return lambda scopes: scope in scopes


def _keyword(word: str) -> Check:
    """A keyword scope naming the word: keyword.declaration.task.iat, keyword.other.from.iat."""
    suffix = f".{word}.iat"
    return lambda scopes: any(s.startswith("keyword.") and s.endswith(suffix) for s in scopes)


def _jinja_regions(raw: str) -> list[tuple[int, int]]:
    """Where ``{{ }}``, ``{% %}`` and ``{# #}`` are in a template literal (offsets in ``raw``)."""
    triple = raw.startswith('"""')
    i, stop = (3, len(raw) - 3) if triple else (1, len(raw) - 1)
    closing = {"{{": "}}", "{%": "%}", "{#": "#}"}
    regions = []
    while i < stop:
        if raw[i] == "\\":
            i += 2
            continue
        opener = raw[i : i + 2]
        if opener not in closing:
            i += 1
            continue
        j = i + 2
        while j < stop and not raw.startswith(closing[opener], j):
            if raw[j] == "\\":
                j += 2
            elif opener != "{#" and raw[j] in "'\"" and triple:
                end = raw.find(raw[j], j + 1)
                j = stop if end == -1 else end + 1
            else:
                j += 1
        end = min(j + 2, stop)
        regions.append((i, end))
        i = end
    return regions


def _placeholders(raw: str, start: int, each: bool) -> list[tuple[int, int]]:
    """Where the placeholders of a literal are, by the compiler's own splitter."""
    span = Span("<test>", start, start + len(raw), 1, 1, 1, 1)
    lit = StringLit("", raw.startswith('"""'), raw, span)
    spans = []
    for piece in split_template(lit):
        if isinstance(piece, SlotRef) or (
            each and isinstance(piece, BadBrace) and _ACCESS.match(piece.text)
        ):
            spans.append((piece.span.start, piece.span.end))
    return spans


#: What the scopes of a token must be, by its terminal (strings, names and keywords apart).
_TERMINAL_SCOPES: dict[str, tuple[Check, str]] = {
    "NUMBER": (_has("constant.numeric."), "a number"),
    "SIGNED_INT": (_has("constant.numeric."), "a number"),
    "BOOL": (_exactly("constant.language.boolean.iat"), "a boolean"),
    "RANGE": (_exactly("keyword.operator.range.iat"), "the range operator"),
    "LIST_SUFFIX": (_exactly("storage.modifier.list.iat"), "the list suffix"),
    "OPTIONAL_MARK": (_exactly("storage.modifier.optional.iat"), "the optional mark"),
}


@dataclass
class Expected:
    """Characters that must have a scope, and (everywhere else) must not."""

    placeholder: set[int]
    jinja: set[int]
    comment: set[int]
    string: set[int]


def _check_string(s: Scoped, token: Token, owner: str, starts: set[int], exp: Expected) -> None:
    start, end, raw = token.start_pos, token.end_pos, token.value
    exp.string.update(range(start, end))
    triple = raw.startswith('"""')
    suffix = _PLACEHOLDER_STRINGS.get(owner, ".jinja" if owner in _JINJA_STRINGS else "")
    scope = f"string.quoted.{'triple' if triple else 'double'}{suffix}.iat"
    s.require(start, end, _exactly(scope), scope)
    quote = 3 if triple else 1
    s.require(start, start + quote, _exactly("punctuation.definition.string.begin.iat"), "a quote")
    s.require(end - quote, end, _exactly("punctuation.definition.string.end.iat"), "a quote")
    if end < len(s.text) and end not in starts:
        s.require(end, end + 1, _lacks("string."), "the string to have ended")
    if owner in _PLACEHOLDER_STRINGS:
        for a, b in _placeholders(raw, start, each=owner == "slot_each"):
            exp.placeholder.update(range(a, b))
    if owner in _JINJA_STRINGS:
        for a, b in _jinja_regions(raw):
            exp.jinja.update(range(start + a, start + b))


def _check_token(s: Scoped, token: Token, path: Path_, seen_keywords: set[str]) -> None:
    start, end, kind = token.start_pos, token.end_pos, token.type
    if kind == "NAME":
        s.require(start, end, _lacks("keyword."), "a name, not a keyword")
        expected = _name_scope(token, path)
        if expected is not None:
            s.require(start, end, _exactly(expected), expected)
    elif kind in _TERMINAL_SCOPES:
        check, what = _TERMINAL_SCOPES[kind]
        s.require(start, end, check, what)
        if kind == "BOOL":
            seen_keywords.add(token.value)
    elif kind == "NOT" or (kind not in _NAMED and re.fullmatch(r"[a-z_]+", token.value)):
        seen_keywords.add(token.value)
        s.require(start, end, _keyword(token.value), f"keyword.*.{token.value}.iat")
    elif kind not in _NAMED:
        s.require(start, end, _has("punctuation.", "keyword.operator."), "punctuation")


def _check(item: dict[str, Any], seen_keywords: set[str]) -> list[str]:
    """Compare the scopes of one source with the parser's tokens; return the problems."""
    s = _scoped(item)
    if item["loops"] or item["stoppedEarly"] or item["endDepth"] != 1:
        s.problems.append(
            f"{s.name}: loops={item['loops']} stoppedEarly={item['stoppedEarly']} "
            f"endDepth={item['endDepth']} (a block or string left open)"
        )
    parser, comments = _parser()
    comments.clear()
    tokens = list(_tokens(parser.parse(s.text)))
    exp = Expected(set(), set(), set(), set())
    starts = {token.start_pos for token, _ in tokens if token.type == "STRING"}
    for token, path in tokens:
        if token.type == "STRING":
            _check_string(s, token, str(path[-1].data), starts, exp)
        else:
            _check_token(s, token, path, seen_keywords)
    for comment in comments:
        start, end = comment.start_pos, comment.end_pos
        exp.comment.update(range(start, end))
        s.require(start, end, _exactly("comment.line.number-sign.iat"), "a comment")
        s.require(start, start + 1, _exactly("punctuation.definition.comment.iat"), "a `#`")

    # Placeholders, comments and Jinja exactly where expected; nothing invalid; all code scoped.
    for i, ch in enumerate(s.text):
        if ch in "\r\n":
            continue
        scopes = s.at(i)
        for got, want, what in [
            ("variable.other.placeholder.iat" in scopes, i in exp.placeholder, "a placeholder"),
            ("comment.line.number-sign.iat" in scopes, i in exp.comment, "a comment"),
            (_has("meta.embedded.", "comment.block.jinja")(scopes), i in exp.jinja, "Jinja"),
        ]:
            if got != want:
                s.problems.append(
                    f"{s.where(i)} {ch!r}: {'expected' if want else 'unexpected'} {what} "
                    f"({' '.join(scopes[1:])})"
                )
        if any("invalid" in x for x in scopes):
            s.problems.append(f"{s.where(i)} {ch!r}: invalid scope {' '.join(scopes[1:])}")
        if not ch.isspace() and i not in exp.string and i not in exp.comment:
            innermost = scopes[-1] if scopes else "source.iat"
            if innermost == "source.iat" or innermost.startswith("meta."):
                s.problems.append(f"{s.where(i)} {ch!r}: code without a scope ({' '.join(scopes)})")
    return s.problems


def test_grammar_agrees_with_the_parser(tokenized: list[dict[str, Any]]) -> None:
    """Every token of the corpus is scoped as the Lark parser reads it."""
    names = [item["name"] for item in tokenized]
    assert sum(n.startswith("templates/") for n in names) >= 80
    assert sum(n.startswith("identity.iat#") for n in names) >= 20
    seen: set[str] = set()
    problems: list[str] = []
    for item in tokenized:
        problems += _check(item, seen)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])
    # Every keyword of the language occurs somewhere in the corpus as a keyword, so the
    # comparison above covered it; add a line to editors/vscode/test/fixtures/tricky.iat
    # for a new one.
    missing = sorted(_lark_keywords() - seen)
    assert not missing, f"keywords never used as keywords in the corpus: {missing}"
