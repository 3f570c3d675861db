"""Issue 10 "Hardening", the runtime and dataset reproductions: each is proved here.

* 4: hostile instance records (lone surrogates, 5,000-digit numbers, 100,000-deep nesting,
  ``NaN``/``Infinity``/``1e999``) are error rows with their line; the output is strict JSON.
* 5: a damaged ``cache.sqlite`` is reported naming the file and the way out; ``--fresh``
  sets it aside (``cache.sqlite.damaged-N``) and starts a new one.
* 6: a full disk is an ``OutputError`` naming the file ("no space left on device"), leaves
  no partial file, and the run resumes cleanly once there is room (a real small tmpfs when
  the tests run as root, a patched ``ENOSPC`` otherwise).
* 7: replies are bounded while they are read: a huge or endless body fails that call
  (kind ``oversize``), never the run, never unbounded memory.
* 8: no command writes over a user's file; ``-o`` naming a file is a usage error.
* 9: no credential reaches a file of the run directory, stdout or stderr.
* 10: one writer per run directory, proved with two processes.

Every exit code is the README's: 0 ok, 1 diagnostics or a strict record, 2 usage, data or
output, 3 runtime, provider, budget or locked run; never 70.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from engine_support import warm_up_litellm
from fakeserver import FakeServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from run_small_support import INSTANCES
from typer.testing import CliRunner

from instraug_dsl import api
from instraug_dsl.commands import exitcodes
from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.errors import DataError, OutputError
from instraug_dsl.fsio import AtomicFile
from instraug_dsl.runtime import llm, replycap
from instraug_dsl.runtime.cache import CachedCall, CallCache
from instraug_dsl.runtime.secrets import MASK, call_secrets, redact, redact_url

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
COMMON = ROOT / "templates" / "common"
IATC = [sys.executable, "-c", "from instraug_dsl.commands.main import main; main()"]

_register_commands()
warm_up_litellm()
runner = CliRunner()


def iatc(*args: object) -> tuple[int, str]:
    """Run ``iatc`` in-process; (exit code, stdout and stderr)."""
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def strict_loads(line: str) -> Any:
    """Strict JSON: NaN/Infinity refused; the text must be writable as UTF-8."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-strict JSON constant {name}")

    line.encode("utf-8")  # a lone surrogate cannot be
    value = json.loads(line, parse_constant=refuse)
    _assert_clean(value)
    return value


def _assert_clean(value: object) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            assert math.isfinite(item)
        elif isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def assert_strict_folder(folder: Path) -> None:
    """Every JSON and JSON Lines file under ``folder`` is strict, UTF-8 JSON."""
    for path in folder.rglob("*"):
        if path.suffix == ".jsonl":
            for line in path.read_bytes().decode("utf-8").splitlines():
                strict_loads(line)
        elif path.suffix == ".json":
            strict_loads(path.read_bytes().decode("utf-8"))


def partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith((".partial", ".tmp"))]


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------------------
# 4. Hostile instance records


GOOD = {
    "unique_id": "match-ok",
    "task_name": "object_match",
    "image_path": "img/7.jpg",
    "region": [[1, 2, 3, 4], [0.5, 1.5, 70.25, 358.75]],
    "options": ["same", "different"],
    "target": "same",
}


def good_line(uid: str = "match-ok") -> str:
    return json.dumps({**GOOD, "unique_id": uid})


HOSTILE_LINES = {
    # (reported reason fragment, field or None)
    "lone surrogate in unique_id": (
        '{"unique_id": "s\\ud800", "task_name": "VQA_color", "question": "q?", '
        '"options": ["a"], "target": "a"}',
        "lone surrogate",
        "unique_id",
    ),
    "lone surrogate in task_name": (
        '{"unique_id": "t", "task_name": "VQA\\udc00", "target": "a"}',
        "lone surrogate",
        "task_name",
    ),
    "lone surrogate in image_path": (
        '{"unique_id": "i", "task_name": "object_match", "image_path": "\\ud800.jpg", '
        '"region": [[1, 2, 3, 4], [1, 2, 3, 4]], "options": ["a", "b"], "target": "a"}',
        "lone surrogate",
        "image_path",
    ),
    "lone surrogate in a key": (
        '{"unique_id": "k", "task_name": "object_match", "meta": {"\\ud800": 1}}',
        "lone surrogate",
        "meta",
    ),
    "5,000-digit unique_id": (
        '{"unique_id": ' + "9" * 5000 + ', "task_name": "VQA_color"}',
        "too many digits",
        None,
    ),
    "5,000-digit bbox number": (
        '{"unique_id": "b", "task_name": "object_match", "region": [[' + "9" * 5000 + ", 1, 2, 3],"
        ' [1, 2, 3, 4]], "options": ["a", "b"], "target": "a"}',
        "too many digits",
        None,
    ),
    "100,000-deep nesting": ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested", None),
    "NaN in a bbox": (good_line().replace("[1, 2, 3, 4]", "[NaN, Infinity, 1, 2]"), "NaN", None),
    "Infinity in a bbox": (good_line().replace("[1, 2, 3, 4]", "[1, Infinity, 1, 2]"), "Inf", None),
    "1e999 in a bbox": (good_line().replace("[1, 2, 3, 4]", "[1e999, 1, 1, 2]"), "1e999", None),
    "a float of 251 digits times 1e60": (
        good_line().replace("[1, 2, 3, 4]", "[1" + "0" * 250 + "e60, 1, 1, 2]"),
        "too large",
        None,
    ),
    "bytes that are not UTF-8": ('{"unique_id": "\xff\xfe"}', "utf-8", None),
}


def _write_lines(path: Path, lines: list[str]) -> None:
    # latin-1 for the one non-UTF-8 case (bytes as given), else UTF-8 (escapes stay ASCII)
    data = b"".join(
        (line.encode("latin-1") if "\xff" in line else line.encode("utf-8")) + b"\n"
        for line in lines
    )
    path.write_bytes(data)


@pytest.mark.parametrize("case", sorted(HOSTILE_LINES))
def test_hostile_record_is_an_error_row_with_its_line(
    case: str, run_small: Path, tmp_path: Path
) -> None:
    """GIVEN an instance file with one hostile record between two good ones
    WHEN it is materialized (non-strict, through the CLI)
    THEN exit 0, the hostile line is an error row with its line number and reason, the good
    records are written, and every output file is strict JSON."""
    line, reason, field = HOSTILE_LINES[case]
    instances = tmp_path / "instances.jsonl"
    _write_lines(instances, [good_line("ok-1"), line, good_line("ok-2")])
    out = tmp_path / "out"
    code, output = iatc("materialize", run_small, "--instances", instances, "-o", out)
    assert code == exitcodes.OK, output
    errors = rows(out / "errors.jsonl")
    assert [e["line"] for e in errors] == [2], errors
    assert reason.lower() in errors[0]["reason"].lower()
    assert errors[0]["field"] == field
    assert [r["unique_id"] for r in rows(out / "train.jsonl")] == ["ok-1", "ok-2"]
    assert "nan" not in (out / "train.jsonl").read_text().split('"prompt"')[1].split(",")[0]
    assert_strict_folder(out)


def test_strict_mode_names_the_hostile_line(run_small: Path, tmp_path: Path) -> None:
    instances = tmp_path / "instances.jsonl"
    line = HOSTILE_LINES["NaN in a bbox"][0]
    _write_lines(instances, [good_line(), line])
    code, output = iatc(
        "materialize", run_small, "--instances", instances, "-o", tmp_path / "o", "--strict"
    )
    assert code == exitcodes.DIAGNOSTICS, output
    assert f"{instances}:2" in output
    assert not (tmp_path / "o" / "train.jsonl").exists()
    assert partial_files(tmp_path) == []


def test_every_hostile_record_at_once(run_small: Path, tmp_path: Path) -> None:
    """All of them in one file: one error row each, in line order, nothing else lost."""
    instances = tmp_path / "instances.jsonl"
    hostile = [HOSTILE_LINES[c][0] for c in sorted(HOSTILE_LINES)]
    _write_lines(instances, [good_line("first"), *hostile, good_line("last")])
    manifest = api.materialize(run_small, instances, tmp_path / "o").manifest
    errors = rows(tmp_path / "o" / "errors.jsonl")
    assert [e["line"] for e in errors] == list(range(2, 2 + len(hostile)))
    assert manifest.counts.errors == len(hostile) and manifest.counts.written == 2
    assert_strict_folder(tmp_path / "o")


# Values a hostile instance file may hold, as JSON text (not all of it valid JSON).
_HOSTILE_VALUES = st.sampled_from(
    [
        "NaN",
        "-Infinity",
        "1e999",
        "-1e400",
        "9" * 5000,
        "1" + "0" * 250 + "e60",
        '"\\ud800"',
        '"\\udfff x"',
        '"\\ud83d\\ude00"',  # a valid pair: fine
        '"\\u0000"',
        '"\\\\ud800"',  # an escaped backslash: plain text
        "[" * 3000 + "]" * 3000,
        '{"\\ud800": 1}',
        "null",
        "true",
        "[]",
        "{}",
        '"' + "x" * 10_000 + '"',
        "1e308",
        "-0.0",
        "12345678901234567890",
    ]
)
_TASKS = st.sampled_from(
    [
        '"object_match"',
        '"VQA_color"',
        '"image_caption"',
        '"commonsense_VQA"',
        '"unknown"',
        "null",
        "3",
        "[1]",
    ]
)


@st.composite
def _record_line(draw: st.DrawFn) -> bytes:
    """A record in the shape of an instance, with hostile values in any field."""
    fields = {
        "unique_id": draw(st.one_of(_HOSTILE_VALUES, st.just('"u"'))),
        "task_name": draw(_TASKS),
        "image_path": draw(st.one_of(_HOSTILE_VALUES, st.just('"a.jpg"'))),
        "region": draw(
            st.one_of(
                st.just("[[1, 2, 3, 4], [5, 6, 7, 8]]"),
                _HOSTILE_VALUES.map(lambda v: f"[[{v}, 2, 3, 4], [5, 6, 7, 8]]"),
                _HOSTILE_VALUES,
            )
        ),
        "question": draw(st.one_of(_HOSTILE_VALUES, st.just('"q?"'))),
        "options": draw(
            st.one_of(st.just('["a", "b"]'), _HOSTILE_VALUES.map(lambda v: f'["a", {v}]'))
        ),
        "target": draw(st.one_of(_HOSTILE_VALUES, st.just('"a"'))),
    }
    keys = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
    body = ", ".join(f'"{k}": {fields[k]}' for k in keys)
    return ("{" + body + "}").encode("utf-8")


_LINES = st.one_of(_record_line(), st.binary(max_size=200), st.text(max_size=80).map(str.encode))


def _strictly_usable(raw: bytes) -> bool:
    """The oracle: a line that is a strict JSON object, writable as UTF-8."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=lambda c: 1 / 0)
        _assert_clean(value)
    except (ValueError, ZeroDivisionError, RecursionError, UnicodeError, AssertionError):
        return False
    return isinstance(value, dict)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(_LINES, min_size=1, max_size=4))
def test_property_any_line_never_crashes_materialize(run_small: Path, lines: list[bytes]) -> None:
    """Any bytes in the instance file: materialize never crashes, every output line is strict
    JSON, and every non-blank line that is not a strict JSON object is an error row."""
    with tempfile.TemporaryDirectory() as scratch:
        instances = Path(scratch) / "instances.jsonl"
        data = b"".join(line.replace(b"\n", b" ").replace(b"\r", b" ") + b"\n" for line in lines)
        instances.write_bytes(data + (good_line() + "\n").encode())
        out = Path(scratch) / "out"
        manifest = api.materialize(run_small, instances, out).manifest
        assert_strict_folder(out)
        reported = {e["line"] for e in rows(out / "errors.jsonl")}
        for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
            if raw.strip(b" \t\r\n\x0b\x0c") and not _strictly_usable(raw):
                assert number in reported, (number, raw[:80])
        assert manifest.counts.written >= 1  # the good line


# --------------------------------------------------------------------------------------
# 5. A damaged cache.sqlite


def _augment_args(run_dir: Path, url: str, *extra: object) -> list[object]:
    return [
        "augment",
        QUICKSTART,
        "-o",
        run_dir,
        "--model",
        "openai/fake",
        "--api-base",
        url,
        "--limit",
        "6",
        "-q",
        *extra,
    ]


def _damage(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"this is not a database at all\n" * 100)
    else:  # pages overwritten after the header: a "malformed" image
        data = bytearray(path.read_bytes())
        for i in range(4096, len(data), 5):
            data[i] = 0x41
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["garbage", "pages"])
def test_damaged_cache_is_named_and_fresh_sets_it_aside(tmp_path: Path, how: str) -> None:
    """GIVEN a run directory whose cache.sqlite was damaged
    WHEN augment runs again: exit 2 naming the file and --fresh, no call paid
    THEN with --fresh the damaged file becomes cache.sqlite.damaged-1 and a new cache is used;
    the run after that is served from the new cache."""
    run_dir = tmp_path / "run"
    with FakeServer() as srv:
        assert iatc(*_augment_args(run_dir, srv.base_url))[0] == 0
        paid = srv.requests
        cache = run_dir / "cache.sqlite"
        for side in ("-wal", "-shm"):
            (run_dir / f"cache.sqlite{side}").unlink(missing_ok=True)
        _damage(cache, how)

        code, out = iatc(*_augment_args(run_dir, srv.base_url))
        assert code == exitcodes.USAGE, out
        assert str(cache) in out and "damaged" in out and "--fresh" in out
        assert "internal error" not in out
        assert srv.requests == paid  # nothing sent

        code, out = iatc(*_augment_args(run_dir, srv.base_url, "--fresh"))
        assert code == exitcodes.OK, out
        assert "set aside as cache.sqlite.damaged-1" in out
        assert (run_dir / "cache.sqlite.damaged-1").is_file()
        assert srv.requests == 2 * paid

        assert iatc(*_augment_args(run_dir, srv.base_url))[0] == 0
        assert srv.requests == 2 * paid  # the new cache serves every call

        _damage(cache, how)  # a second damage gets the next free name
        for side in ("-wal", "-shm"):
            (run_dir / f"cache.sqlite{side}").unlink(missing_ok=True)
        assert iatc(*_augment_args(run_dir, srv.base_url, "--fresh"))[0] == 0
        assert (run_dir / "cache.sqlite.damaged-2").is_file()


class _Broken:
    """A connection whose every statement fails with ``error``."""

    def __init__(self, error: sqlite3.Error) -> None:
        self.error = error

    def execute(self, *args: object) -> Any:
        raise self.error

    def close(self) -> None:
        raise self.error


def _call() -> CachedCall:
    return CachedCall("text", 1, 1, 0.0, 0.1)


def test_cache_errors_after_opening_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    cache = CallCache(path)
    real = cache._db
    try:
        cache._db = _Broken(sqlite3.DatabaseError("database disk image is malformed"))  # type: ignore[assignment]
        with pytest.raises(DataError, match=re.escape(str(path)) + ".*damaged.*--fresh"):
            cache.get("k")
        cache._db = _Broken(sqlite3.OperationalError("database or disk is full"))  # type: ignore[assignment]
        with pytest.raises(OutputError, match="no space left on device"):
            cache.put("k", request="r", attempt=1, model="m", call=_call())
        with pytest.raises(OutputError, match=re.escape(str(path))):
            cache.contains("k")
        cache.close()  # never raises, even when the checkpoint cannot be written
    finally:
        real.close()


_SQLITE_HEADER = b"SQLite format 3\x00"


@settings(max_examples=min(100, settings.default.max_examples))
@given(
    data=st.one_of(
        st.binary(max_size=8192),
        st.binary(min_size=100, max_size=8192).map(lambda b: _SQLITE_HEADER + b),
    )
)
def test_property_any_cache_file_opens_or_is_named(data: bytes) -> None:
    """Whatever bytes are in cache.sqlite: opening it either works or raises an IatError
    naming the file (never a bare sqlite3 error), and with fresh=True it always works."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "cache.sqlite"
        path.write_bytes(data)
        try:
            with CallCache(path) as cache:
                cache.put("k", request="r", attempt=1, model="m", call=_call())
                assert cache.get("k") == _call()
        except (DataError, OutputError) as exc:
            assert str(path) in str(exc) and "--fresh" in str(exc)
        with CallCache(path, fresh=True) as cache:
            cache.put("k", request="r", attempt=1, model="m", call=_call())
            assert len(cache) >= 1


def test_cache_folder_that_cannot_be_made_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot create"):
        CallCache(tmp_path / "file" / "cache.sqlite")


# --------------------------------------------------------------------------------------
# 6. A full disk


@contextlib.contextmanager
def small_disk(path: Path, kib: int) -> Iterator[Path]:
    """A tmpfs of ``kib`` KiB at ``path`` (root only; skips the test otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _grow(path: Path, kib: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={kib}k", str(path)], check=True)


def test_full_disk_during_augment_is_clean_and_resumes(tmp_path: Path) -> None:
    """GIVEN disks that fill up at every stage of a run (compile, cache, outputs)
    WHEN augment runs: exit 0 or exit 2 naming a file with "no space left on device"
    THEN no partial file is left, and once there is room the same command finishes with
    the same instructions.jsonl as a run that never ran out of space."""
    reference = tmp_path / "reference"
    args = ["--model", "offline/rules", "-q"]
    assert iatc("augment", QUICKSTART, "-o", reference, *args)[0] == 0
    failures = 0
    for kib in (150, 200, 300, 560, 600, 620):
        mount = tmp_path / f"disk{kib}"
        with small_disk(mount, kib):
            run_dir = mount / "run"
            code, out = iatc("augment", QUICKSTART, "-o", run_dir, *args)
            assert code in (exitcodes.OK, exitcodes.USAGE), (kib, out)
            if code == exitcodes.USAGE:
                failures += 1
                assert "no space left on device" in out, out
                assert re.search(r"cannot write \S*" + re.escape(str(run_dir)), out), out
            assert partial_files(mount) == [], kib
            _grow(mount, 8192)
            code, out = iatc("augment", QUICKSTART, "-o", run_dir, *args)
            assert code == exitcodes.OK, (kib, out)
            for name in ("instructions.jsonl", "rejected.jsonl", "failed.jsonl"):
                assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), name
    assert failures >= 3  # the sizes really did run out at several stages


def test_full_disk_during_materialize_is_clean(run_small: Path, tmp_path: Path) -> None:
    mount = tmp_path / "disk"
    big = tmp_path / "big.jsonl"
    big.write_text(INSTANCES.read_text() * 300)
    with small_disk(mount, 64):
        code, out = iatc("materialize", run_small, "--instances", big, "-o", mount / "out")
        assert code == exitcodes.USAGE, out
        assert "no space left on device" in out and str(mount / "out") in out
        assert partial_files(mount) == []
        assert not (mount / "out" / "manifest.json").exists()


def test_enospc_while_writing_outputs_is_an_output_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same without a tmpfs: the write of instructions.jsonl fails with ENOSPC."""
    real_init = AtomicFile.__init__

    def init(self: AtomicFile, path: Path, **kwargs: Any) -> None:
        real_init(self, path, **kwargs)
        if path.name == "instructions.jsonl":
            self._handle = _FullDisk(self.handle)  # type: ignore[assignment]

    monkeypatch.setattr(AtomicFile, "__init__", init)
    run_dir = tmp_path / "run"
    code, out = iatc("augment", QUICKSTART, "-o", run_dir, "--model", "offline/rules", "-q")
    assert code == exitcodes.USAGE, out
    assert f"cannot write {run_dir / 'instructions.jsonl'}: no space left on device" in out
    assert partial_files(tmp_path) == [] and not (run_dir / "instructions.jsonl").exists()
    monkeypatch.undo()
    code, out = iatc("augment", QUICKSTART, "-o", run_dir, "--model", "offline/rules", "-q")
    assert code == exitcodes.OK, out
    assert json.loads((run_dir / "summary.json").read_text())["run"]["calls_made"] == 0


class _FullDisk:
    """A file handle on a full disk: every write fails with ENOSPC."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        self._handle.close()


def test_sqlite_full_disk_is_an_output_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``database or disk is full`` from SQLite in the middle of a run: exit 2, the file
    named, every other worker stopped cleanly (no stray task errors)."""
    real_put = CallCache.put
    puts = {"n": 0}

    def put(self: CallCache, key: str, **kwargs: Any) -> None:
        puts["n"] += 1
        if puts["n"] > 5:
            with self._guard():
                raise sqlite3.OperationalError("database or disk is full")
        real_put(self, key, **kwargs)

    monkeypatch.setattr(CallCache, "put", put)
    run_dir = tmp_path / "run"
    with FakeServer(latency=0.01) as srv:
        code, out = iatc(*_augment_args(run_dir, srv.base_url, "--limit", "20"))
    assert code == exitcodes.USAGE, out
    assert f"cannot write {run_dir / 'cache.sqlite'}: no space left on device" in out
    assert "Traceback" not in out and "internal error" not in out


# --------------------------------------------------------------------------------------
# 7. Bounded replies


def _llm_call(url: str | None, *, max_tokens: int = 256, **kw: Any) -> llm.LLMCall:
    return llm.LLMCall(
        model=kw.pop("model", "openai/fake"),
        messages=({"role": "user", "content": "<instruction>Say {A} hi</instruction>"},),
        temperature=0.7,
        top_p=0.9,
        max_tokens=max_tokens,
        seed=1,
        timeout=kw.pop("timeout", 20.0),
        api_base=url,
        **kw,
    )


def _fails(call: llm.LLMCall) -> llm.BackendError:
    with pytest.raises(llm.BackendError) as caught:
        llm.run_async(llm.acomplete(call))
    return caught.value


def test_reply_limit_follows_max_tokens() -> None:
    assert replycap.reply_limit(256) == 256 * 16 + 64 * 1024
    assert replycap.reply_limit(0) == 64 * 1024


@pytest.mark.parametrize("fault", ["huge", "endless"])
def test_oversize_reply_fails_the_call_while_reading(fault: str) -> None:
    """A 10 MB reply (declared) or an endless body: kind ``oversize``, quickly, and the
    client stops reading long before the server stops sending."""
    with FakeServer(script=[fault]) as srv:
        started = time.monotonic()
        error = _fails(_llm_call(srv.base_url))
        elapsed = time.monotonic() - started
        time.sleep(0.2)  # let the server notice the hang-up
        sent = srv.body_bytes
    assert error.kind == "oversize", error.message
    assert "limit" in error.message and str(replycap.reply_limit(256)) in error.message
    assert elapsed < 10
    if fault == "endless":
        assert sent < 32 * 1024 * 1024  # what the socket buffers hold, not gigabytes


@settings(max_examples=min(100, settings.default.max_examples))
@given(
    chunks=st.lists(st.integers(min_value=0, max_value=5000), max_size=20),
    limit=st.integers(min_value=0, max_value=40_000),
    compressed=st.booleans(),
)
def test_property_capped_stream_reads_exactly_up_to_the_limit(
    chunks: list[int], limit: int, compressed: bool
) -> None:
    """However the body is cut into chunks (and compressed or not), the reader returns it
    whole when it fits the limit and raises ReplyTooLarge, having decoded at most one byte
    past the limit per step, when it does not."""
    body = b"".join(bytes([65 + i % 26]) * n for i, n in enumerate(chunks))
    wire = gzip.compress(body) if compressed else body
    pieces = [wire[i : i + 777] for i in range(0, len(wire), 777)]

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            for piece in pieces:
                yield piece

    async def read() -> bytes:
        decoder = zlib.decompressobj(32 + zlib.MAX_WBITS) if compressed else None
        stream = replycap._CappedStream(Body(), limit, decoder)
        out = b""
        async for part in stream:
            out += part
            assert len(out) <= limit + 1
        return out

    if len(body) <= limit:
        assert asyncio.run(read()) == body
    else:
        with pytest.raises(replycap.ReplyTooLarge):
            asyncio.run(read())


def test_compressed_reply_is_bounded_at_its_decoded_size() -> None:
    """A gzip bomb (100 MB of zeros in ~100 KB) is cut off at the decoded limit."""
    bomb = gzip.compress(b"0" * (100 * 1024 * 1024))

    class Body(httpx.AsyncByteStream):
        def __init__(self, data: bytes) -> None:
            self.data = data

        async def __aiter__(self) -> Any:
            for i in range(0, len(self.data), 65536):
                yield self.data[i : i + 65536]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept-encoding"] == "identity"
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=Body(bomb))

    async def fetch(limit: int) -> bytes:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(handler),
            event_hooks={"request": [replycap._on_request], "response": [replycap._on_response]},
        ) as client:
            with replycap.bounded(limit):
                response = await client.get("http://fake/v1/chat/completions")
            return response.content

    with pytest.raises(replycap.ReplyTooLarge):
        asyncio.run(fetch(1 << 20))
    bomb = gzip.compress(b'{"ok": true}')  # a small compressed reply is decoded as usual
    assert asyncio.run(fetch(1 << 20)) == b'{"ok": true}'


def test_oversize_text_from_any_provider_is_not_kept() -> None:
    """Providers not read through the bounded client are checked once the text arrived."""
    call = _llm_call(None, max_tokens=10, model="offline/rules")
    message = SimpleNamespace(content="x" * (replycap.reply_limit(10) + 1))
    response = SimpleNamespace(choices=[SimpleNamespace(message=message)], usage=None)
    with pytest.raises(llm.BackendError) as caught:
        llm._result(response, call, 0.1)
    assert caught.value.kind == "oversize"


def test_oversize_replies_are_recorded_failures_of_a_run(tmp_path: Path) -> None:
    """Six 10 MB replies and an endless one in a run: exit 0, each is one failed request of
    kind ``oversize`` (not retried), and the run directory stays small."""
    script = ["huge"] * 6 + ["endless"]
    run_dir = tmp_path / "run"
    with FakeServer(script=script) as srv:
        code, out = iatc(*_augment_args(run_dir, srv.base_url, "--limit", "12"))
        requests = srv.requests
    assert code == exitcodes.OK, out
    failed = rows(run_dir / "failed.jsonl")
    assert sorted(r["kind"] for r in failed) == ["oversize"] * 7
    assert all(r["attempts"] == 1 for r in failed)  # paid once, never asked again
    assert requests >= 12
    size = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    assert size < 5 * 1024 * 1024, size
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["totals"]["failed"] == 7 and summary["totals"]["reconciled"]


# --------------------------------------------------------------------------------------
# 8. Never overwrite a user's file


def _unchanged(path: Path, text: str) -> None:
    assert path.read_text() == text, f"{path} was overwritten"


def test_o_naming_a_file_or_a_path_below_one_is_a_usage_error(
    run_small: Path, tmp_path: Path
) -> None:
    user = tmp_path / "mine.txt"
    user.write_text("mine")
    below = user / "sub"
    for target in (user, below):
        cases: list[tuple[object, ...]] = [
            ("compile", QUICKSTART, "-o", target),
            ("augment", QUICKSTART, "-o", target, "--model", "offline/rules", "-q"),
            ("materialize", run_small, "--instances", INSTANCES, "-o", target),
            ("import", "jsonl", _import_source(tmp_path), "-o", target),
        ]
        for args in cases:
            code, out = iatc(*args)
            assert code == exitcodes.USAGE, (args, out)
            assert "internal error" not in out
        _unchanged(user, "mine")


def test_html_naming_a_folder_is_a_usage_error(run_small: Path, tmp_path: Path) -> None:
    code, out = iatc("stats", run_small, "--html", tmp_path)
    assert code == exitcodes.USAGE and "is a folder" in out


def test_compile_refuses_to_overwrite_a_users_files(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"mine": true}')
    code, out = iatc("compile", QUICKSTART, "-o", folder)
    assert code == exitcodes.USAGE, out
    assert "manifest.json" in out and "not written by `iatc compile`" in out
    _unchanged(folder / "manifest.json", '{"mine": true}')
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json"]
    # an earlier compile is rewritten without complaint
    assert iatc("compile", QUICKSTART, "-o", tmp_path / "c")[0] == 0
    assert iatc("compile", QUICKSTART, "-o", tmp_path / "c")[0] == 0


def test_augment_refuses_a_folder_with_a_users_summary(tmp_path: Path) -> None:
    """A user's ``summary.json`` does not make a folder a run directory."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "summary.json").write_text('{"my": "notes"}')
    with FakeServer() as srv:
        code, out = iatc(*_augment_args(folder, srv.base_url))
        assert srv.requests == 0
    assert code == exitcodes.USAGE and "not an iatc run directory" in out
    _unchanged(folder / "summary.json", '{"my": "notes"}')
    assert sorted(p.name for p in folder.iterdir()) == ["summary.json"]


def test_materialize_refuses_a_folder_with_a_users_manifest(
    run_small: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"format": "not ours"}')
    (folder / "train.parquet").write_text("my parquet")
    code, out = iatc("materialize", run_small, "--instances", INSTANCES, "-o", folder)
    assert code == exitcodes.USAGE and "not an iatc dataset folder" in out
    _unchanged(folder / "manifest.json", '{"format": "not ours"}')
    # --force writes into it, but never deletes the user's other files as "stale"
    code, out = iatc("materialize", run_small, "--instances", INSTANCES, "-o", folder, "--force")
    assert code == exitcodes.OK, out
    _unchanged(folder / "train.parquet", "my parquet")


def test_bootstrap_refuses_a_users_file_before_asking(tmp_path: Path) -> None:
    mine = tmp_path / "boot.iat"
    mine.write_text("# my strategies\n")
    with FakeServer(mode="fixed", content="1. Use synonyms.\n2. Reorder.\n") as srv:
        base = ("bootstrap", COMMON, "--prompt", "rewrite_strategies", "--model", "openai/fake")
        code, out = iatc(*base, "--api-base", srv.base_url, "-n", "2", "-o", mine)
        assert code == exitcodes.USAGE and "not written by `iatc bootstrap`" in out
        code, out = iatc(*base, "--api-base", srv.base_url, "-n", "2", "-o", tmp_path)
        assert code == exitcodes.USAGE and "is a folder" in out
        assert srv.requests == 0  # validated before any call
    _unchanged(mine, "# my strategies\n")


def _import_source(tmp_path: Path) -> Path:
    source = tmp_path / "instructions.jsonl"
    source.write_text(
        json.dumps({"task": "caption_it", "template": "Describe the image briefly."})
        + "\n"
        + json.dumps({"task": "caption_it", "template": "Write a caption for the picture."})
        + "\n"
    )
    return source


def test_import_refuses_iat_files_it_did_not_generate(tmp_path: Path) -> None:
    source = _import_source(tmp_path)
    out = tmp_path / "lib"
    out.mkdir()
    mine = out / "caption_it.iat"
    mine.write_text("# hand-written\ntask caption_it {}\n")
    code, output = iatc("import", "jsonl", source, "-o", out)
    assert code == exitcodes.USAGE, output
    assert str(mine) in output and "--force" in output
    _unchanged(mine, "# hand-written\ntask caption_it {}\n")
    assert sorted(p.name for p in out.iterdir()) == ["caption_it.iat"]  # nothing written
    assert iatc("import", "jsonl", source, "-o", out, "--check")[0] == exitcodes.DIAGNOSTICS
    code, output = iatc("import", "jsonl", source, "-o", out, "--force")
    assert code == exitcodes.OK, output
    assert mine.read_text().startswith("# Generated by `iatc import jsonl`")
    # a file the import generated is updated without --force
    source.write_text(
        source.read_text()
        + json.dumps({"task": "caption_it", "template": "Caption this image."})
        + "\n"
    )
    code, output = iatc("import", "jsonl", source, "-o", out)
    assert code == exitcodes.OK, output
    assert "Caption this image." in mine.read_text()


# --------------------------------------------------------------------------------------
# 9. Secrets


KEY = "hunter2-SUPER-secret-key-0042"
PASSWORD = "pa55w0rd-BASIC-secret"
TOKEN = "QUERYTOKEN-9f8e7d6c5b4a"
ENV_KEY = "env-OPENAI-secret-4242-abcdef"


def _secrets_in(folder: Path, *texts: str) -> list[str]:
    found = []
    for secret in (KEY, PASSWORD, TOKEN, ENV_KEY):
        for path in folder.rglob("*"):
            if path.is_file() and secret.encode() in path.read_bytes():
                found.append(f"{secret} in {path}")
        found += [f"{secret} in output" for text in texts if secret in text]
    return found


def _run_iatc(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IATC, *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def _augment_cmd(run_dir: Path, api_base: str, *extra: object) -> list[object]:
    return [
        "augment",
        QUICKSTART,
        "-o",
        run_dir,
        "--model",
        "openai/fake",
        "--api-base",
        api_base,
        "--limit",
        "6",
        "--concurrency",
        "1",
        *extra,
    ]


def test_no_secret_reaches_disk_stdout_or_stderr(tmp_path: Path) -> None:
    """GIVEN a server whose errors repeat the Authorization header and the URL it was sent,
    with the key on the command line, in the environment, as user-info of --api-base and
    as a ?token= query
    THEN no secret is in any file of the run directory (summary.json, failed.jsonl,
    rejected.jsonl, cache.sqlite...), on stdout or on stderr."""
    # 1. --api-key: the server echoes "Bearer KEY" in three failed calls
    with FakeServer(script=["ok", "echo_key", "echo_key", "echo_key"]) as srv:
        run_dir = tmp_path / "key"
        done = _run_iatc(*_augment_cmd(run_dir, srv.base_url, "--api-key", KEY))
        assert done.returncode == exitcodes.OK, done.stderr
        echoed = [e for e in srv.log if e["fault"] == "echo_key"]
        assert len(echoed) == 3 and KEY in echoed[0]["headers"]["authorization"]
    failed = rows(run_dir / "failed.jsonl")
    assert len(failed) == 3 and all(MASK in r["error"] for r in failed), failed
    assert _secrets_in(run_dir, done.stdout, done.stderr) == []

    # 2. user-info and the key from the environment: echoed (Basic credentials), and the
    # summary records the address without them
    with FakeServer(script=["ok", "echo_key", "echo_key"]) as srv:
        port = srv.base_url.split(":")[2].split("/")[0]
        run_dir = tmp_path / "userinfo"
        base = f"http://caller:{PASSWORD}@127.0.0.1:{port}/v1"
        done = _run_iatc(*_augment_cmd(run_dir, base), env={"OPENAI_API_KEY": ENV_KEY})
        assert done.returncode == exitcodes.OK, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["api_base"] == f"http://127.0.0.1:{port}/v1"
    assert len(rows(run_dir / "failed.jsonl")) == 2
    assert _secrets_in(run_dir, done.stdout, done.stderr) == []

    # 3. a ?token= query the server repeats in its 404: fatal on the first call, so the
    # message goes to stderr (exit 3)
    with FakeServer() as srv:
        run_dir = tmp_path / "token"
        done = _run_iatc(
            *_augment_cmd(run_dir, f"{srv.base_url}?token={TOKEN}", "--api-key", KEY),
            env={"OPENAI_API_KEY": ENV_KEY},
        )
    assert done.returncode == exitcodes.RUNTIME, done.stderr
    assert "not found" in done.stderr and f"token={MASK}" in done.stderr
    assert _secrets_in(run_dir, done.stdout, done.stderr) == []


def test_a_reply_repeating_the_key_is_masked_before_it_is_stored(tmp_path: Path) -> None:
    reply = json.dumps([f"Use the key {KEY} now"])
    run_dir = tmp_path / "run"
    with FakeServer(mode="fixed", content=reply) as srv:
        code, out = iatc(*_augment_args(run_dir, srv.base_url, "--api-key", KEY))
    assert code == exitcodes.OK, out
    assert _secrets_in(run_dir, out) == []
    with sqlite3.connect(run_dir / "cache.sqlite") as db:
        texts = [row[0] for row in db.execute("SELECT text FROM calls")]
    assert texts and all(MASK in t for t in texts)


def test_call_secrets_cover_key_url_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", ENV_KEY)
    found = call_secrets(KEY, f"https://u:{PASSWORD}@h.example/v1?token={TOKEN}&x=1")
    assert {KEY, PASSWORD, TOKEN, ENV_KEY} <= set(found)
    text = f"key {KEY} pw {PASSWORD} tok {TOKEN} env {ENV_KEY}"
    assert redact(text, found) == f"key {MASK} pw {MASK} tok {MASK} env {MASK}"


_SECRET = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-_.~", min_size=8, max_size=40)
_PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz :,;()[]\n", max_size=60)


@given(before=st.text(max_size=60), secret=st.text(min_size=4, max_size=40), after=st.text())
def test_property_redact_removes_a_given_secret(before: str, secret: str, after: str) -> None:
    """Whatever surrounds it, a given secret (of 4 characters or more, without the mask's
    ``*``) never survives ``redact``."""
    if "*" in secret:
        secret = secret.replace("*", "a")
    assert secret not in redact(before + secret + after, [secret])


@given(
    before=_PLAIN,
    after=_PLAIN,
    user=_SECRET,
    password=_SECRET,
    token=_SECRET,
    key=st.sampled_from(["token", "key", "api_key", "access_token", "sig"]),
)
def test_property_redact_strips_url_credentials(
    before: str, after: str, user: str, password: str, token: str, key: str
) -> None:
    """A URL in free text loses its user-info and every query value, with no hint given."""
    url = f"https://{user}:{password}@api.example.com/v1/chat?{key}={token}&mode=fast"
    out = redact(f"{before} {url} {after}")
    for secret in (user, password, token):
        assert secret not in out
    assert "api.example.com/v1/chat" in out
    assert redact_url(url) == f"https://api.example.com/v1/chat?{key}={MASK}&mode={MASK}"


# --------------------------------------------------------------------------------------
# 10. One writer per run directory


def _start_first(run_dir: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *IATC,
            "augment",
            str(QUICKSTART),
            "-o",
            str(run_dir),
            "--model",
            "openai/fake",
            "--api-base",
            url,
            "--limit",
            "3",
            "--concurrency",
            "1",
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(predicate: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("ending", ["finishes", "killed"])
def test_second_writer_is_refused_quickly_and_pays_nothing(tmp_path: Path, ending: str) -> None:
    """GIVEN an augment in progress against a slow server (a subprocess)
    WHEN a second augment starts on the same run directory
    THEN it exits 3 (RunLocked) naming the holder's pid, quickly, sending nothing;
    and after the first finishes (or is killed with SIGKILL) a new run proceeds."""
    run_dir = tmp_path / "run"
    with FakeServer(hold=True) as srv:  # the first run waits in its first call
        first = _start_first(run_dir, srv.base_url)
        try:
            _wait_for(lambda: srv.requests >= 1, "the first run's first call")
            in_flight = srv.requests
            started = time.monotonic()
            second = _run_iatc(*_augment_args(run_dir, srv.base_url, "--limit", "3"))
            elapsed = time.monotonic() - started
            assert second.returncode == exitcodes.RUNTIME, second.stderr
            assert f"pid {first.pid}" in second.stderr, second.stderr
            assert "being written" in second.stderr
            assert srv.requests == in_flight  # the second run sent nothing
            assert elapsed < 60
            if ending == "killed":
                os.kill(first.pid, signal.SIGKILL)
                first.wait(timeout=30)
                srv.hold = False
            else:
                srv.hold = False
                assert first.wait(timeout=120) == 0
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        paid = srv.requests
        code, out = iatc(*_augment_args(run_dir, srv.base_url, "--limit", "3"))
        assert code == exitcodes.OK, out  # no stale lock
        if ending == "finishes":
            assert srv.requests == paid  # everything the first run paid for is reused
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["totals"]["reconciled"]
