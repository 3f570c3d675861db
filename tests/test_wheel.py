"""The built wheel carries the grammar: an installed iatc works without the checkout.

GIVEN a wheel built from this checkout
WHEN it is installed into a fresh virtual environment (not editable)
THEN `iatc check templates/` runs from there, from a directory that is not
the checkout, and reports the library clean.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_grammar_and_checks_library(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "instraug_dsl/grammar/iat.lark" in names
        assert "instraug_dsl/templates/common/metaprompts.iat" in names
        assert "instraug_dsl/templates/multiinstruct/plans.iat" in names
        # Typed (PEP 561), licensed, and versioned from the one version source.
        assert "instraug_dsl/py.typed" in names
        from instraug_dsl import __version__

        dist_info = f"instraug_dsl-{__version__}.dist-info"
        assert wheel.name.startswith(f"instraug_dsl-{__version__}-")
        assert f"{dist_info}/licenses/LICENSE" in names
        metadata = zf.read(f"{dist_info}/METADATA").decode("utf-8")
        assert f"\nVersion: {__version__}\n" in metadata
        assert "\nLicense: Apache-2.0\n" in metadata
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = subprocess.run(
        [str(env_dir / "bin" / "iatc"), "check", str(ROOT / "templates")],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    # the shipped library by its name, with nothing but the wheel
    compiled = subprocess.run(
        [str(env_dir / "bin" / "iatc"), "compile", "@multiinstruct", "-o", "out"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert "compiled plan `paper`: 2970 requests" in compiled.stdout
