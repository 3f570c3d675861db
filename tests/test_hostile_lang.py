"""Hostile `.iat` input (issue 10, items 1-3): the front end neither leaks, nor crashes, nor hangs.

1. Imports resolve only to `.iat` files inside the project (E063, E064); files that are
   not text are refused unread (E062); no diagnostic ever prints what such a file holds.
2. Meta-prompts are checked against the sandbox at check time (E070-E074); rendering
   is bounded, and a render that fails is an ``IatCompileError``, never exit 70.
3. Deep inheritance and import chains check in linear time without recursion;
   diagnostics of one kind are capped per file.

Each reproduction of the issue runs through the real CLI (``python -m instraug_dsl``)
where the exit code matters.  Timing is never asserted tightly: only a generous bound
that the old cubic checker missed by orders of magnitude.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from instraug_dsl.commands import exitcodes
from instraug_dsl.errors import IatCompileError
from instraug_dsl.lang import check as check_mod
from instraug_dsl.lang import ir
from instraug_dsl.lang.diagnostics import MAX_PER_CODE
from instraug_dsl.lang.frontend import check, check_text
from instraug_dsl.lang.templating import Limits, TemplateLimitError, render_template

ROOT = Path(__file__).resolve().parents[1]
TASK = 'task t { slot q: text  instruction i0 = "Answer: {q}" }\n'
MP = 'metaprompt m0 { user "Rewrite {{ instruction }}" }\n'
#: Generous: the old checker took 12.5 s for 600-deep chains and over 300 s for 5,000.
DEEP_BOUND_S = 20.0


def iatc(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the real CLI in a subprocess; return (exit code, stdout + stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "instraug_dsl", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout + proc.stderr


def codes(text: str, path: str = "t.iat") -> list[str]:
    return [d.code for d in check_text(text, path).diagnostics]


# ------------------------------------------------------------ 1. imports


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_import_of_proc_environ_prints_no_environment(tmp_path: Path) -> None:
    """GIVEN `import "/proc/self/environ"` WHEN `iatc check` runs with a secret in its
    environment THEN it exits 1 with E063 and the secret is nowhere in the output."""
    secret = f"hunter2-{secrets.token_hex(8)}"
    (tmp_path / "main.iat").write_text('import "/proc/self/environ"\n', encoding="utf-8")
    code, out = iatc("check", "main.iat", cwd=tmp_path, env={"IATC_TEST_SECRET": secret})
    assert code == exitcodes.DIAGNOSTICS, out
    assert "error[E063]" in out
    assert secret not in out and "IATC_TEST_SECRET" not in out


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_checking_proc_environ_itself_quotes_nothing(tmp_path: Path) -> None:
    """A file named on the command line that is not text (NUL bytes) is E062, unquoted."""
    secret = f"hunter2-{secrets.token_hex(8)}"
    code, out = iatc("check", "/proc/self/environ", cwd=tmp_path, env={"IATC_TEST_SECRET": secret})
    assert code == exitcodes.DIAGNOSTICS, out
    assert "error[E062]" in out and secret not in out


def _secret_tree(tmp_path: Path, secret: str) -> tuple[Path, Path]:
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    (outside / "secret.iat").write_text(f'task {secret} {{ "{secret}" }}\n', encoding="utf-8")
    (outside / "secret.txt").write_text(f"PASSWORD={secret}\n", encoding="utf-8")
    (project / "notes.txt").write_text(f"PASSWORD={secret}\n", encoding="utf-8")
    return project, outside


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ('import "notes.txt"', "E063"),  # inside the project, but not `.iat`
        ('import "../outside/secret.iat"', "E064"),  # a `.iat` file outside the project
        ('import "../outside/secret.txt"', "E063"),
        ('import "../outside/missing.iat"', "E064"),  # refused before looking: no probing
        ('import "link.iat"', "E064"),  # a link out of the project
        ('import "textlink.iat"', "E063"),  # a `.iat` link to a text file in the project
    ],
)
def test_imports_leave_neither_the_project_nor_iat_files(
    tmp_path: Path, line: str, code: str
) -> None:
    """GIVEN imports of files outside the project or not `.iat` (also through links)
    THEN each is a coded diagnostic (exit 1) and no line of the target is printed."""
    secret = f"s{secrets.token_hex(8)}"
    project, outside = _secret_tree(tmp_path, secret)
    (project / "link.iat").symlink_to(outside / "secret.iat")
    (project / "textlink.iat").symlink_to(project / "notes.txt")
    (project / "main.iat").write_text(f"{line}\n{TASK}", encoding="utf-8")
    status, out = iatc("check", "main.iat", cwd=project)
    assert status == exitcodes.DIAGNOSTICS, out
    assert f"error[{code}]" in out and secret not in out


def test_links_in_a_scanned_folder_are_held_to_the_same_rule(tmp_path: Path) -> None:
    """GIVEN a folder whose `.iat` files are links out of it WHEN the folder is checked
    THEN they are E064 (outside) / E063 (not `.iat`), never read."""
    secret = f"s{secrets.token_hex(8)}"
    project, outside = _secret_tree(tmp_path, secret)
    (project / "out.iat").symlink_to(outside / "secret.txt")
    (project / "in.iat").symlink_to(project / "notes.txt")
    (project / "ok.iat").write_text(TASK, encoding="utf-8")
    status, out = iatc("check", ".", cwd=project)
    assert status == exitcodes.DIAGNOSTICS, out
    assert "error[E064]" in out and "error[E063]" in out and secret not in out


@pytest.mark.parametrize(
    "content",
    [b"task t {\x00 SECRET }\n", "task t { SECRET \xe9 }\n".encode("latin-1")],
    ids=["nul-bytes", "not-utf8"],
)
def test_iat_files_that_are_not_text_are_not_quoted(tmp_path: Path, content: bytes) -> None:
    """GIVEN an imported `.iat` file with NUL bytes or invalid UTF-8 THEN E062, and the
    file's text is never shown (the message names an offset, not a byte)."""
    (tmp_path / "bad.iat").write_bytes(content)
    (tmp_path / "main.iat").write_text(f'import "bad.iat"\n{TASK}', encoding="utf-8")
    status, out = iatc("check", "main.iat", cwd=tmp_path)
    assert status == exitcodes.DIAGNOSTICS, out
    assert "error[E062]" in out and "SECRET" not in out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_named_iat_does_not_block(tmp_path: Path) -> None:
    """A named pipe is not a regular file: refused (E062) instead of read forever."""
    os.mkfifo(tmp_path / "pipe.iat")
    (tmp_path / "main.iat").write_text('import "pipe.iat"\n', encoding="utf-8")
    status, out = iatc("check", "main.iat", cwd=tmp_path)
    assert status == exitcodes.DIAGNOSTICS and "error[E062]" in out, out


def test_allowed_folders_and_the_library_may_be_imported(tmp_path: Path) -> None:
    """`allow_imports` opens a folder outside the project; the shipped templates/ is open."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (elsewhere / "tasks.iat").write_text(TASK, encoding="utf-8")
    library = ROOT / "templates" / "common" / "metaprompts.iat"
    (project / "main.iat").write_text(
        f'import "../elsewhere/tasks.iat"\nimport "{library}"\nplan p {{ use direct }}\n',
        encoding="utf-8",
    )
    refused = check([project / "main.iat"])
    assert [d.code for d in refused.diagnostics] == ["E064"]
    allowed = check([project / "main.iat"], allow_imports=[elsewhere])
    assert allowed.ok, allowed.render()


_CONTENTS = st.binary(min_size=1, max_size=300)


@settings(
    max_examples=max(20, settings.default.max_examples // 5),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=_CONTENTS, other=_CONTENTS, name=st.sampled_from(["data.txt", "data", "d.iat.bak"]))
@example(content=b"SECRET=1\n", other=b"x", name="data.txt")
def test_no_byte_of_an_imported_non_iat_file_reaches_the_output(
    content: bytes, other: bytes, name: str
) -> None:
    """GIVEN any bytes in a file that is not `.iat` WHEN a program imports it (directly
    or through a `.iat` link) THEN the output is the same whatever the file holds: none
    of its bytes can appear in it."""
    outputs = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        main = project / "main.iat"
        main.write_text(f'import "{name}"\nimport "link.iat"\n{TASK}', encoding="utf-8")
        (project / "link.iat").symlink_to(project / name)
        for data in (content, other):
            (project / name).write_bytes(data)
            result = check([main])
            assert {d.code for d in result.diagnostics} == {"E063"}
            assert len(result.sources) == 1  # only main.iat was read
            outputs.append(result.render() + json.dumps([d.to_json() for d in result.diagnostics]))
    assert outputs[0] == outputs[1]


@settings(max_examples=max(20, settings.default.max_examples // 5))
@given(
    content=st.binary(max_size=300).map(lambda b: b + b"\x00")
    | st.binary(max_size=300).map(lambda b: b + b"\xff")
)
def test_binary_iat_files_keep_no_text(content: bytes) -> None:
    """GIVEN a `.iat` file that is not UTF-8 text THEN E062 and none of it is kept to quote."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bin.iat"
        path.write_bytes(content)
        result = check([path])
    assert [d.code for d in result.diagnostics] == ["E062"]
    assert [s.text for s in result.sources.values()] == [""]


# --------------------------------------------------- 2. the template sandbox

_HOSTILE_TEMPLATES = [
    ('{% include "x" %}', "E070"),
    ('{% import "x" as y %}', "E070"),
    ('{% extends "x" %}', "E070"),
    ('{% from "x" import y %}', "E070"),
    ('{{ "{}".format(n) }}', "E072"),
    ('{{ "{a}".format_map(dict(a=1)) }}', "E072"),
    ("{{ instruction.__class__ }}", "E072"),
    ("{{ instruction['__class__'] }}", "E072"),
    ('{{ tokens|map(attribute="__class__")|list }}', "E072"),
    ("{{ tokens.append(1) }}", "E072"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "E071"),
    ("{% macro f() %}{{ g() }}{% endmacro %}{% macro g() %}{{ f() }}{% endmacro %}", "E071"),
    ("{% macro f(k) %}{{ k(k) }}{% endmacro %}{{ f(f) }}", "E071"),
    ("{% for x in tokens recursive %}{{ loop(tokens) }}{% endfor %}", "E071"),
    ("{{ self }}", "E071"),
    ("{% for i in range(10**9) %}{% endfor %}", "E074"),
    ('{{ "x" * 10**9 }}', "E074"),
    ("{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}", "E074"),
    ('{{ "x"|center(10**9) }}', "E074"),
    ('{{ "%999999999s"|format(1) }}', "E074"),
    ("{{ (1).to_bytes(10**9, 'big') }}", "E074"),
    (
        '{% set ns = namespace(x="ab") %}{% for i in range(60) %}{% set ns.x = ns.x ~ ns.x %}'
        "{% endfor %}",
        "E074",
    ),
    ("{{ x|no_such_filter }}", "E054"),
    ("{% if n %}" * 3000 + "{% endif %}" * 3000, "E073"),
    ("{% for t in tokens %}" * 25 + "{% endfor %}" * 25, "E073"),
    ("{{ " + "(" * 300 + "n" + ")" * 300 + " }}", "E073"),
]


def _program(template: str, suffix: str = "") -> str:
    """A task, a meta-prompt `m` whose user message is ``template``, and a plan using it."""
    body = template.replace('"""', '\\"\\"\\"')
    return (
        TASK.replace("task t ", f"task t{suffix} ")
        + f'metaprompt m{suffix} {{ user """{body} {{{{ instruction }}}}""" }}\n'
        + f"plan p{suffix} {{ use m{suffix} }}\n"
    )


@pytest.mark.parametrize(
    ("template", "code"), _HOSTILE_TEMPLATES, ids=[c for _, c in _HOSTILE_TEMPLATES]
)
def test_check_refuses_what_the_compiler_would(template: str, code: str) -> None:
    """GIVEN a meta-prompt the sandbox refuses or cannot render within its limits
    THEN `check` reports it with a code, pointing into the template."""
    text = _program(template)
    result = check_text(text, "t.iat")
    found = [d for d in result.diagnostics if d.code == code]
    assert found, result.render()
    literal = (text.index('user """') + len("user "), text.index('""" }') + 3)
    assert all(literal[0] <= d.span.start < d.span.end <= literal[1] for d in found)


def test_hostile_templates_through_the_cli(tmp_path: Path) -> None:
    """GIVEN each reproduction of the issue, one file each WHEN `iatc check` and
    `iatc compile` run on them THEN both exit 1 with every diagnostic: never 70."""
    for i, (template, _) in enumerate(_HOSTILE_TEMPLATES):
        (tmp_path / f"m{i}.iat").write_text(_program(template, str(i)), encoding="utf-8")
    status, out = iatc("check", ".", cwd=tmp_path)
    assert status == exitcodes.DIAGNOSTICS, out[-3000:]
    for i, (template, code) in enumerate(_HOSTILE_TEMPLATES):
        assert f"m{i}.iat" in out and f"error[{code}]" in out, template
    assert "internal error" not in out and "Traceback" not in out
    status, out = iatc("compile", ".", "--plan", "p0", "-o", tmp_path / "out", cwd=tmp_path)
    assert status == exitcodes.DIAGNOSTICS, out[-3000:]


@pytest.mark.parametrize("template", ["{{ 1 / 0 }}", "{{ instruction + 1 }}", "{{ tokens[9] }}"])
def test_a_template_that_fails_on_the_data_is_a_compile_error(
    tmp_path: Path, template: str
) -> None:
    """GIVEN a meta-prompt that passes check but fails on the real values
    THEN `iatc compile` reports it (exit 1, naming the meta-prompt), never exit 70."""
    path = tmp_path / "m.iat"
    path.write_text(_program(template), encoding="utf-8")
    status, out = iatc("compile", path, "-o", tmp_path / "out", cwd=tmp_path)
    assert status == exitcodes.DIAGNOSTICS, out
    assert "meta-prompt `m`" in out and "internal error" not in out


def _render_at_compile(template: str) -> object:
    """Render ``template`` as a meta-prompt's user message the way `iatc compile` does."""
    from instraug_dsl.compile.prompt import render_messages

    catalog = check_text(TASK + MP, "t.iat").raise_for_errors()
    mp = dataclasses.replace(catalog.metaprompts["m0"][0], user=template)
    return render_messages(mp, "Answer: {A}", ("{A}",), catalog.tasks["t"])


@pytest.mark.parametrize(
    ("template", "code"), _HOSTILE_TEMPLATES, ids=[c for _, c in _HOSTILE_TEMPLATES]
)
def test_compile_refuses_the_same_without_check(template: str, code: str) -> None:
    """Defence in depth: rendered without checking first, every hostile template is an
    IatCompileError naming the meta-prompt."""
    with pytest.raises(IatCompileError, match="meta-prompt `m0`"):
        _render_at_compile(template)


def test_render_limits_are_template_errors() -> None:
    """Each limit ends in a TemplateLimitError naming it (output, loops, work, values)."""
    cases = {
        "{% for i in range(9000) %}{{ 'x' * 900 }}{% endfor %}": "longer than",
        "{% for i in range(9000) %}{% for j in range(9000) %}{% endfor %}{% endfor %}": "loops",
        "{% for i in range(9000) %}{{ range(9000)|list|sort|length }}{% endfor %}": "work",
        "{{ 'ab' * 900000 }}": "longer than",
    }
    for template, words in cases.items():
        with pytest.raises(TemplateLimitError, match=words):
            render_template(template, {})
    assert Limits.LOOP_ITERATIONS < 9000 * 9000


_FRAGMENTS = st.sampled_from(
    [
        "{{ instruction }}",
        "{{ tokens|join(', ') }}",
        "{{ n }}",
        "{% if n %}",
        "{% else %}",
        "{% endif %}",
        "{% for t in tokens %}",
        "{% for i in range(n * 1000) %}",
        "{% endfor %}",
        "{{ loop.index }}",
        '{{ "{}".format(n) }}',
        '{% include "x" %}',
        "{% macro f() %}",
        "{% endmacro %}",
        "{{ f() }}",
        "{% call f() %}",
        "{% endcall %}",
        "{{ caller() }}",
        "{{ 'x' * 10**9 }}",
        "{{ instruction * 10**n }}",
        "{{ n ** n ** n ** n }}",
        "{{ instruction|center(10**n) }}",
        "{{ 1 / 0 }}",
        "{{ instruction.__class__ }}",
        "{{ self }}",
        "{% set ns = namespace(x=instruction) %}",
        "{% set ns.x = ns.x ~ ns.x %}",
        "{% set x = instruction ~ instruction %}",
        "{{ x }}",
        "{% raw %}",
        "{% endraw %}",
        "{#",
        "#}",
        "{{",
        "}}",
        "{%",
        "%}",
        "(",
        ")",
        "[",
        "]",
        "|",
        "~",
        " ",
        "\n",
    ]
)
_TEMPLATES = st.one_of(
    st.lists(_FRAGMENTS, max_size=14).map("".join),
    st.text(max_size=60),
)


@settings(max_examples=max(30, settings.default.max_examples // 3), deadline=None)
@given(_TEMPLATES)
@example(
    "{% for i in range(10000) %}{% for t in tokens %}{{ instruction }}{% endfor %}{% endfor %}"
)
@example("{% macro f() %}{% call f() %}{{ caller() }}{% endcall %}{% endmacro %}{{ f() }}")
def test_any_template_never_crashes_check_or_compile(template: str) -> None:
    """GIVEN any template text THEN check returns diagnostics (no exception), and
    rendering it as `iatc compile` does returns messages or raises IatCompileError."""
    result = check_text(_program(template), "t.iat")
    assert isinstance(result.render(), str)
    started = time.monotonic()
    try:
        _render_at_compile(template)
    except IatCompileError:
        pass
    assert time.monotonic() - started < DEEP_BOUND_S


# ------------------------------------------- 3. deep chains, capped output


def _deep(kind: str, n: int, folder: Path) -> Path:
    if kind == "plans":
        lines = [TASK, MP, "plan p0 { use m0 }\n"]
        lines += [f"plan p{i} extends p{i - 1} {{ seed {i} }}\n" for i in range(1, n)]
    elif kind == "metaprompts":
        lines = [TASK, MP]
        lines += [f"metaprompt m{i} extends m{i - 1} {{ }}\n" for i in range(1, n)]
        lines.append(f"plan p {{ use m{n - 1} }}\n")
    else:  # a chain of files, each importing the next
        for i in range(n):
            nxt = f'import "f{i + 1}.iat"\n' if i + 1 < n else TASK
            (folder / f"f{i}.iat").write_text(nxt, encoding="utf-8")
        lines = ['import "f0.iat"\n']
    main = folder / "main.iat"
    main.write_text("".join(lines), encoding="utf-8")
    return main


@pytest.mark.parametrize("kind", ["plans", "metaprompts", "imports"])
def test_chains_of_5000_check_quickly_and_resolve(tmp_path: Path, kind: str) -> None:
    """GIVEN a 5,000-deep `extends` or import chain WHEN `iatc check` runs THEN it exits 0
    well within a generous bound (the old checker needed over 300 s), with no recursion."""
    main = _deep(kind, 5000, tmp_path)
    started = time.monotonic()
    status, out = iatc("check", main, cwd=tmp_path)
    assert status == exitcodes.OK, out[-2000:]
    assert time.monotonic() - started < DEEP_BOUND_S


def test_deep_chains_resolve_like_shallow_ones(tmp_path: Path) -> None:
    """Inheritance resolved through a memo gives what walking each chain gives."""
    catalog = check([_deep("plans", 1200, tmp_path)]).raise_for_errors()
    deepest = catalog.plans["p1199"]
    assert deepest.uses == (("m0", 1),) and deepest.seed == 1199
    assert catalog.plans["p1"].seed == 1 and catalog.plans["p0"].seed == 1
    catalog = check([_deep("metaprompts", 1200, tmp_path)]).raise_for_errors()
    assert catalog.metaprompts["m1199"][0].user == "Rewrite {{ instruction }}"


def test_cycles_of_5000_are_reported_briefly(tmp_path: Path) -> None:
    """A 5,000-long inheritance cycle: E052 for each, capped, with shortened chains."""
    lines = [TASK, MP] + [
        f"plan p{i} extends p{(i + 1) % 5000} {{ use m0 }}\n" for i in range(5000)
    ]
    path = tmp_path / "cycle.iat"
    path.write_text("".join(lines), encoding="utf-8")
    status, out = iatc("check", path, cwd=tmp_path)
    assert status == exitcodes.DIAGNOSTICS
    assert out.count("error[E052]") == MAX_PER_CODE + 1 and "(4989 more)" in out
    assert len(out) < 50_000


def test_import_cycle_of_5000_files(tmp_path: Path) -> None:
    for i in range(5000):
        (tmp_path / f"f{i}.iat").write_text(f'import "f{(i + 1) % 5000}.iat"\n', encoding="utf-8")
    status, out = iatc("check", "f0.iat", cwd=tmp_path)
    assert status == exitcodes.DIAGNOSTICS and out.count("error[E061]") == 1, out[-2000:]
    assert len(out) < 5_000


def test_ten_thousand_nested_braces_print_a_screenful(tmp_path: Path) -> None:
    """GIVEN a 20 KB instruction of 10,000 nested braces THEN a few diagnostics (the first
    20 of each code, then a summary), each excerpt cut around its column."""
    path = tmp_path / "braces.iat"
    path.write_text('task t { instruction i0 = "' + "{" * 10_000 + "}" * 10_000 + '" }\n')
    status, out = iatc("check", path, cwd=tmp_path)
    assert status == exitcodes.DIAGNOSTICS
    assert "... and 19978 more E031 diagnostics" in out
    assert len(out) < 100_000


def test_3000_nested_ifs_are_a_diagnostic_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "ifs.iat"
    path.write_text(_program("{% if n %}" * 3000 + "x" + "{% endif %}" * 3000), encoding="utf-8")
    status, out = iatc("check", path, cwd=tmp_path)
    assert status == exitcodes.DIAGNOSTICS and "error[E073]" in out, out[-2000:]


# -------------------------- memoized inheritance equals walking every chain


def _naive_members(mp: ir.MetaPrompt, table: dict[str, ir.MetaPrompt]) -> list[object]:
    """The effective members as computed before memoization (one walk per declaration)."""
    chain = [mp]
    while chain[-1].extends is not None and chain[-1].extends.value in table:
        parent = table[chain[-1].extends.value]
        if parent in chain:
            break
        chain.append(parent)
    members: list[object] = []
    kinds: set[type] = set()
    for decl in chain:
        own = [m for m in decl.members if type(m) not in kinds]
        members.extend(own)
        kinds.update(type(m) for m in own)
    return members


_MEMBER = st.sampled_from(
    ['user "{{ instruction }}"', 'system "s"', 'description "d"', "count 3", 'user "u2"']
)


@settings(max_examples=max(30, settings.default.max_examples // 3))
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.one_of(st.none(), st.integers(0, 6)),
            st.lists(_MEMBER, max_size=3),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_memoized_prompt_members_equal_walking_each_chain(
    decls: list[tuple[int, int | None, list[str]]],
) -> None:
    """GIVEN any meta-prompts extending each other (cycles, duplicates, unknown parents)
    THEN the memoized effective members equal the old chain walk for every declaration."""
    text = "".join(
        f"metaprompt m{n}{f' extends m{p}' if p is not None else ''} {{ {' '.join(ms)} }}\n"
        for n, p, ms in decls
    )
    module = check_text(text, "t.iat")
    ctx = module.context
    for mp in check_mod.all_of(module.program, ir.MetaPrompt):
        assert check_mod.prompt_members(mp, ctx) == _naive_members(mp, ctx.metaprompts)


def _naive_chain(decl: ir.Plan, table: dict[str, ir.Plan]) -> list[ir.Plan]:
    chain = [decl]
    while chain[-1].extends is not None and chain[-1].extends.value in table:
        parent = table[chain[-1].extends.value]
        if parent in chain:
            break
        chain.append(parent)
    return chain


def _naive_cycle_messages(table: dict[str, ir.Plan]) -> list[str]:
    """E052 messages as the old checker worded them (one walk per declaration)."""
    out = []
    for decl in table.values():
        seen = [decl.name.value]
        cur = decl
        while cur.extends is not None and cur.extends.value in table:
            nxt = cur.extends.value
            if nxt in seen:
                if nxt == decl.name.value:
                    out.append(f"plan `{nxt}` extends itself: {' -> '.join([*seen, nxt])}")
                break
            seen.append(nxt)
            cur = table[nxt]
    return sorted(out)


_PLAN_MEMBER = st.sampled_from(["use m0", "use m1 samples 2", "seed 5", "seed 7", "iterations 1"])


@settings(max_examples=max(30, settings.default.max_examples // 3))
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.one_of(st.none(), st.integers(0, 6)),
            st.lists(_PLAN_MEMBER, max_size=3, unique=True),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_memoized_plan_inheritance_equals_walking_each_chain(
    decls: list[tuple[int, int | None, list[str]]],
) -> None:
    """GIVEN any plans extending each other THEN E052, E053 and the resolved plans
    are what one walk per declaration gives."""
    text = TASK + MP + 'metaprompt m1 { user "{{ instruction }}" }\n'
    text += "".join(
        f"plan p{n}{f' extends p{p}' if p is not None else ''} {{ {' '.join(ms)} }}\n"
        for n, p, ms in decls
    )
    result = check_text(text, "t.iat")
    ctx = result.context
    messages = sorted(d.message for d in result.diagnostics if d.code == "E052")
    assert messages == _naive_cycle_messages(ctx.plans)
    for plan in check_mod.all_of(result.program, ir.Plan):
        chain = _naive_chain(plan, ctx.plans)
        assert check_mod.uses_a_metaprompt(plan, ctx) == any(
            isinstance(m, ir.Use) for p in chain for m in p.members
        )
    if result.catalog is not None:
        for name, spec in result.catalog.plans.items():
            uses: dict[str, int] = {}
            seed = 1
            for p in reversed(_naive_chain(ctx.plans[name], ctx.plans)):
                for m in p.members:
                    if isinstance(m, ir.Use):
                        uses[m.metaprompt.value] = m.samples.value if m.samples else 1
                    elif isinstance(m, ir.Seed):
                        seed = m.value.value
            assert spec.uses == tuple(uses.items()) and spec.seed == seed


def test_deep_alias_chains_resolve_completely() -> None:
    """Aliases are resolved once each, to the end of the chain (not 32 steps deep)."""
    n = 3000
    text = 'type a0 = text[] sep "|"\n' + "".join(f"type a{i} = a{i - 1}\n" for i in range(1, n))
    text += (
        f'task t {{ slot q: a{n - 1}  slot r: a{n - 1} sep ";"  instruction i0 = "{{q}} {{r}}" }}\n'
    )
    catalog = check_text(text, "t.iat").raise_for_errors()
    q, r = catalog.tasks["t"].slots
    assert (q.base, q.is_list, q.sep) == ("text", True, "|")
    assert (r.base, r.is_list, r.sep) == ("text", True, ";")
