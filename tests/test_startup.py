"""Start-up: the grammar is strict, the parser cache is safe, `check` stays light.

Timing itself is measured by ``bench/bench_check.py``, never asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from instraug_dsl.commands.main import _fast_check
from instraug_dsl.lang import parser as parser_mod

SAMPLE = 'task t { slot q: text from a.b[0] instruction i0 = "Q: {q}" pin "x" }\n'


@pytest.fixture
def fresh_parser(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forget the process-wide parser before and after a test that moves the cache."""
    parser_mod.lark_parser.cache_clear()
    parser_mod._example_failures.cache_clear()
    yield
    monkeypatch.undo()
    parser_mod.lark_parser.cache_clear()
    parser_mod._example_failures.cache_clear()


def test_grammar_is_conflict_free_in_strict_mode() -> None:
    """Built from scratch with strict=True: no shift/reduce or regex collisions."""
    built = parser_mod.build_parser()
    assert built.options.strict is True
    assert built.options.parser == "lalr"


def test_cached_parser_parses_like_a_fresh_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_parser: None
) -> None:
    """GIVEN an empty cache dir WHEN the parser is needed twice in two 'processes'
    THEN the second comes from the cache file and parses identically."""
    monkeypatch.setenv("IATC_CACHE_DIR", str(tmp_path / "cache"))
    first = parser_mod.lark_parser()
    files = list((tmp_path / "cache").rglob("iat-parser-*.pickle"))
    assert len(files) == 1
    parser_mod.lark_parser.cache_clear()
    second = parser_mod.lark_parser()
    assert second is not first and second.source_path == "<deserialized>"
    assert second.parse(SAMPLE) == parser_mod.build_parser().parse(SAMPLE)
    module, diags = parser_mod.parse("task t { slot q }")
    assert module is None and "a slot needs a type" in diags.sorted()[0].message


def test_corrupt_cache_falls_back_to_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_parser: None
) -> None:
    """A truncated or garbage cache file is ignored and replaced."""
    monkeypatch.setenv("IATC_CACHE_DIR", str(tmp_path))
    parser_mod.lark_parser()
    (cache,) = tmp_path.rglob("iat-parser-*.pickle")
    cache.write_bytes(b"not a pickle")
    parser_mod.lark_parser.cache_clear()
    assert parser_mod.lark_parser().parse(SAMPLE)
    assert cache.read_bytes() != b"not a pickle"


def test_unusable_cache_dir_is_harmless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_parser: None
) -> None:
    """A cache dir that cannot be created (a file is in the way) only costs time."""
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("IATC_CACHE_DIR", str(blocker / "cache"))
    assert parser_mod.lark_parser().parse(SAMPLE)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_shared_writable_cache_dir_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_parser: None
) -> None:
    """A world-writable cache dir is neither written nor read (the cache is a pickle)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("IATC_CACHE_DIR", str(shared))
    assert parser_mod.lark_parser().parse(SAMPLE)
    assert list(shared.iterdir()) == []


def test_empty_cache_setting_disables_the_cache(
    monkeypatch: pytest.MonkeyPatch, fresh_parser: None
) -> None:
    """IATC_CACHE_DIR="" means: always build."""
    monkeypatch.setenv("IATC_CACHE_DIR", "")
    assert parser_mod._cache_file(parser_mod.grammar_text()) is None
    assert parser_mod.lark_parser().parse(SAMPLE)


def test_cache_key_follows_the_grammar() -> None:
    """Another grammar text gets another cache file."""
    text = parser_mod.grammar_text()
    assert parser_mod._cache_file(text) != parser_mod._cache_file(text + "\n// changed")


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["check", "--help"],
        ["check", "-h", "x"],
        ["check", "x", "--strict"],
        ["check", "--format", "xml", "x"],
        ["fmt", "x"],
        [],
    ],
)
def test_fast_check_leaves_unusual_command_lines_to_typer(argv: list[str]) -> None:
    """Only the plain `check PATH... [--format F]` form skips typer."""
    assert _fast_check(argv) is None


def _modules_after_check(path: Path) -> set[str]:
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print(' '.join(sorted({m.split('.')[0] for m in sys.modules}))))\n"
        "from instraug_dsl.commands.main import main\nmain()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split("\n")[-2].split())


def test_check_imports_jinja_only_for_meta_prompts(tmp_path: Path) -> None:
    """Tasks alone need neither jinja2 nor pydantic; a meta-prompt brings jinja2 in."""
    tasks = tmp_path / "tasks.iat"
    tasks.write_text(SAMPLE, encoding="utf-8")
    loaded = _modules_after_check(tasks)
    assert "jinja2" not in loaded and "pydantic" not in loaded and "litellm" not in loaded
    assert "ray" not in loaded  # only `--executor ray` imports it
    prompts = tmp_path / "prompts.iat"
    prompts.write_text('metaprompt m { user "Rewrite {{ instruction }}" }\n', encoding="utf-8")
    assert "jinja2" in _modules_after_check(prompts)


def test_every_command_module_is_registered_in_pipeline_order() -> None:
    """GIVEN the modules under commands/ THEN cli.STAGES lists each exactly once."""
    import pkgutil

    from instraug_dsl import commands
    from instraug_dsl.commands import app as cli

    modules = {m.name for m in pkgutil.iter_modules(commands.__path__)}
    assert sorted(cli.STAGES) == sorted(modules - {"app", "main", "exitcodes"})
