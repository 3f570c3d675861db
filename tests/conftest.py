"""Shared pytest configuration: the ``--update-golden`` switch, hypothesis profiles, and the
small run directory the dataset-stage tests read (made by the real runtime)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# `dev` keeps a local run quick; `ci` (CI=true) digs deeper.  Properties that
# need more examples scale from `settings.default.max_examples`.
settings.register_profile(
    "dev", max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=1000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--update-golden``: rewrite expected files instead of comparing."""
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden .expected files from the current output",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was started with ``--update-golden``."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def run_small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The small run directory, written by the real runtime (``api.augment`` against the
    scripted loopback server, see tests/run_small_support.py) once per session.

    Shared: never change it; a test that edits the run uses ``run_small_copy``.
    """
    from run_small_support import make_run

    base = tmp_path_factory.mktemp("run_small")
    run = make_run(base / "run", base / "sources")
    before = _digest(run)
    yield run
    assert _digest(run) == before, f"a test changed the shared run {run}: use run_small_copy"


def _digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def run_small_copy(run_small: Path, tmp_path: Path) -> Path:
    """A private copy of ``run_small`` (in this test's ``tmp_path``) that the test may change."""
    return Path(shutil.copytree(run_small, tmp_path / "run"))
