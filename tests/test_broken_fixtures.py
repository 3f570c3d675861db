"""`iatc check` on a directory of broken files: every error shown, never a traceback.

Each file of ``tests/fixtures/broken`` starts with ``# codes: E001, ...``,
the diagnostic codes it must produce.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from instraug_dsl.commands import exitcodes

ROOT = Path(__file__).resolve().parent.parent
BROKEN = Path("tests") / "fixtures" / "broken"
_HEADER = re.compile(
    r"^(?P<path>\S+\.iat):(?P<line>\d+):(?P<col>\d+): (error|warning)\[(?P<code>\w+)\]"
)


def _iatc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from instraug_dsl.commands.main import main; main()", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _declared_codes(path: Path) -> set[str]:
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    assert first.startswith("# codes: "), f"{path.name}: first line must list its codes"
    return {c.strip() for c in first[len("# codes: ") :].split(",")}


def test_check_broken_directory() -> None:
    """GIVEN several broken files WHEN `iatc check` runs on their directory
    THEN it exits 1 and prints each file's diagnostics with a caret excerpt."""
    proc = _iatc("check", str(BROKEN))
    assert proc.returncode == exitcodes.DIAGNOSTICS, proc.stderr
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "internal error" not in out
    lines = proc.stderr.splitlines()
    found: dict[str, set[str]] = {}
    for i, line in enumerate(lines):
        match = _HEADER.match(line)
        if not match:
            continue
        found.setdefault(Path(match["path"]).name, set()).add(match["code"])
        excerpt = lines[i + 1 : i + 4]
        assert excerpt[1].startswith(f"{match['line']} | "), excerpt
        caret = excerpt[2]
        col = int(match["col"])
        assert caret.index("|") + 2 + col - 1 == caret.index("^"), f"caret misplaced: {excerpt}"
    files = sorted((ROOT / BROKEN).glob("*.iat"))
    assert len(files) >= 5
    for path in files:
        assert found.get(path.name) == _declared_codes(path), path.name
    assert re.search(r"checked \d+ files: \d+ errors", proc.stderr)


def test_check_json_on_broken_directory() -> None:
    """The JSON form lists the same diagnostics on stdout and nothing else."""
    import json

    proc = _iatc("check", "--format", "json", str(BROKEN))
    assert proc.returncode == exitcodes.DIAGNOSTICS
    data = json.loads(proc.stdout)
    codes = {d["code"] for d in data}
    expected = set().union(*(_declared_codes(p) for p in (ROOT / BROKEN).glob("*.iat")))
    assert codes == expected
    assert all({"code", "severity", "message", "hint", "span"} <= set(d) for d in data)


def test_check_missing_path_is_a_usage_error() -> None:
    """A path that does not exist is a usage error (exit 2), not a crash."""
    proc = _iatc("check", "tests/fixtures/no-such-dir")
    assert proc.returncode == exitcodes.USAGE
    assert "no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr
