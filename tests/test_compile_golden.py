"""Golden tests of `iatc compile`: small `.iat` cases compile to byte-identical artifacts.

Each case is a folder ``tests/golden/compile/<case>/`` whose ``input.iat``
starts with ``# plan: NAME``; ``expected/`` holds requests.jsonl,
validators.json and manifest.json.  A case without ``expected/`` is only
compiled (``basic_reordered`` is compared with ``basic`` by request id).
Run ``pytest tests/test_compile_golden.py --update-golden`` after a
deliberate change and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from instraug_dsl.compile import Compiled, compile_paths

GOLDEN = Path(__file__).parent / "golden" / "compile"
CASES = sorted(p for p in GOLDEN.iterdir() if (p / "input.iat").is_file())
ARTIFACTS = ("requests.jsonl", "validators.json", "manifest.json")


def _plan(case: Path) -> str:
    first = (case / "input.iat").read_text(encoding="utf-8").split("\n", 1)[0]
    match = re.fullmatch(r"# plan: (\S+)", first)
    assert match, f"{case.name}/input.iat must start with `# plan: NAME`"
    return match[1]


def _compile(case: Path, out: Path) -> Compiled:
    compiled = compile_paths([case / "input.iat"], _plan(case))
    compiled.write(out)
    return compiled


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name != "basic_reordered"], ids=lambda c: c.name
)
def test_golden_artifacts(case: Path, tmp_path: Path, update_golden: bool) -> None:
    """GIVEN a case WHEN compiled THEN every artifact equals the expected bytes."""
    _compile(case, tmp_path)
    expected = case / "expected"
    if update_golden:
        expected.mkdir(exist_ok=True)
        for name in ARTIFACTS:
            (expected / name).write_bytes((tmp_path / name).read_bytes())
    for name in ARTIFACTS:
        assert (tmp_path / name).read_bytes() == (expected / name).read_bytes(), (
            f"{case.name}/{name} differs"
        )


def test_reordering_declarations_keeps_request_ids(tmp_path: Path) -> None:
    """Moving declarations around (and into another file) changes no request or validator id."""
    basic = _compile(GOLDEN / "basic", tmp_path / "a")
    reordered = _compile(GOLDEN / "basic_reordered", tmp_path / "b")
    assert sorted(r.id for r in basic.requests) == sorted(r.id for r in reordered.requests)
    assert sorted(basic.validators) == sorted(reordered.validators)
    assert (tmp_path / "a" / "validators.json").read_bytes() == (
        tmp_path / "b" / "validators.json"
    ).read_bytes()


def test_artifacts_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same sources compiled from another cwd give the same bytes (no absolute paths)."""
    case = GOLDEN / "basic"
    _compile(case, tmp_path / "here")
    monkeypatch.chdir(tmp_path)
    _compile(Path(os.path.relpath(case, tmp_path)), tmp_path / "there")
    for name in ARTIFACTS:
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "there" / name).read_bytes()


def test_read_round_trip(tmp_path: Path) -> None:
    """Compiled.read gives back the same requests, validators and manifest."""
    compiled = _compile(GOLDEN / "basic", tmp_path)
    again = Compiled.read(tmp_path)
    assert again.requests == compiled.requests
    assert again.validators == compiled.validators
    assert again.manifest == compiled.manifest


def test_artifacts_do_not_depend_on_hash_seeds(tmp_path: Path) -> None:
    """Two processes with different PYTHONHASHSEED write the same bytes."""
    import subprocess
    import sys

    case = GOLDEN / "basic"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        code = (
            "import sys; from instraug_dsl.compile import compile_paths; "
            "compile_paths([sys.argv[1]], 'small').write(sys.argv[2])"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(case / "input.iat"), str(tmp_path / seed)],
            check=True,
            env=env,
        )
    for name in ARTIFACTS:
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()
