"""The pre-commit hooks of `.pre-commit-hooks.yaml`, run for real by pre-commit.

GIVEN a throwaway git repository holding a copy of this work tree (tracked and new files,
committed there: the checkout's own git is never touched) as the hook repository
WHEN pre-commit runs `iatc-check` or `iatc-fmt` on the `.iat` files staged in a second
throwaway repository
THEN a clean file passes, and an unformatted or broken one is blocked (non-zero).

pre-commit installs the package into a virtual environment of its own with pip (about a
minute and a half here; pip needs its package index for the dependencies, as on a
developer's machine).  `pre-commit try-repo` always builds that environment afresh in a
temporary store, so it runs once, on a mix of files; the other cases use a
`.pre-commit-config.yaml` naming the same repository and commit, as a user's project does,
with one store (PRE_COMMIT_HOME) for the whole module, so the environment is built once more.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLEAN = 'task t {\n  instruction i0 = "x"\n}\n'
MESSY = 'task t{instruction i0="x"}\n'
BROKEN = "task t { slot q }\n"

pytestmark = pytest.mark.slow

_GIT_IDENTITY = [
    "-c",
    "user.name=iatc tests",
    "-c",
    "user.email=tests@invalid",
    "-c",
    "commit.gpgsign=false",
]


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *_GIT_IDENTITY, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout


def _available() -> str | None:
    """Why the test cannot run here, or ``None``."""
    if shutil.which("git") is None:
        return "git is not installed"
    if importlib.util.find_spec("pre_commit") is None:
        return "pre-commit is not installed (it is in the `test` extra)"
    if not (ROOT / ".git").exists():
        return "not a git checkout (the hook repository is made from its files)"
    return None


@dataclass(frozen=True)
class HookRepo:
    """The throwaway hook repository, the commit to try, and pre-commit's cache folder."""

    path: Path
    ref: str
    home: Path


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookRepo]:
    reason = _available()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("precommit")
    repo = base / "hooks"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode("utf-8")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():  # a deleted tracked file is skipped
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    _git("init", "-q", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "snapshot of the work tree", cwd=repo)
    ref = _git("rev-parse", "HEAD", cwd=repo).strip()
    yield HookRepo(repo, ref, base / "pre-commit-home")


def _user_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    """A repository with ``files`` staged, as before `git commit`."""
    user = tmp_path / "user"
    user.mkdir()
    _git("init", "-q", cwd=user)
    for name, text in files.items():
        (user / name).write_text(text, encoding="utf-8")
    _git("add", "-A", cwd=user)
    return user


def _pre_commit(hooks: HookRepo, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(hooks.home), "NO_COLOR": "1"}
    env.pop("PRE_COMMIT_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args, "--color", "never"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,  # the first call builds pre-commit's environment (pip install)
        check=False,
    )


def _run_hook(
    hooks: HookRepo, user: Path, hook: str, args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """`pre-commit run` with a config naming the hook repository, as a project would."""
    config = user.parent / f"config-{hook}.yaml"
    extra = f"        args: [{', '.join(args)}]\n" if args else ""
    config.write_text(
        f"repos:\n  - repo: {hooks.path}\n    rev: {hooks.ref}\n    hooks:\n"
        f"      - id: {hook}\n{extra}",
        encoding="utf-8",
    )
    return _pre_commit(hooks, "run", "--config", str(config), cwd=user)


def test_hooks_file_declares_both_hooks() -> None:
    """The hook definitions: python hooks on `.iat` files, running `iatc`."""
    text = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    for hook, entry in (("iatc-check", "iatc check"), ("iatc-fmt", "iatc fmt")):
        block = text.split(f"- id: {hook}\n", 1)[1].split("\n- id:", 1)[0] + "\n"
        assert f"entry: {entry}\n" in block
        assert "language: python\n" in block
        assert "files: \\.iat$\n" in block


def test_try_repo_blocks_unformatted_and_broken_files(hook_repo: HookRepo, tmp_path: Path) -> None:
    """`pre-commit try-repo` with both hooks: the broken file fails `iatc-check`, the
    unformatted one is rewritten by `iatc-fmt` (which fails), the clean one is untouched."""
    user = _user_repo(tmp_path, {"clean.iat": CLEAN, "messy.iat": MESSY, "broken.iat": BROKEN})
    proc = _pre_commit(hook_repo, "try-repo", str(hook_repo.path), "--ref", hook_repo.ref, cwd=user)
    assert proc.returncode != 0
    out = proc.stdout
    check_part = out[out.index("iatc check...") : out.index("iatc fmt...")]
    fmt_part = out[out.index("iatc fmt...") :]
    assert "Failed" in check_part and "broken.iat:1:17: error[E001]" in check_part
    assert "messy.iat" not in check_part and "clean.iat" not in check_part
    assert "Failed" in fmt_part and "files were modified by this hook" in fmt_part
    assert "reformatted 1 of 3 files; 1 with errors left unchanged" in fmt_part
    assert (user / "messy.iat").read_text(encoding="utf-8") == CLEAN
    assert (user / "broken.iat").read_text(encoding="utf-8") == BROKEN
    assert (user / "clean.iat").read_text(encoding="utf-8") == CLEAN


def test_clean_file_passes_both_hooks(hook_repo: HookRepo, tmp_path: Path) -> None:
    user = _user_repo(tmp_path, {"clean.iat": CLEAN, "notes.txt": "not .iat {"})
    for hook in ("iatc-check", "iatc-fmt"):
        proc = _run_hook(hook_repo, user, hook)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Passed" in proc.stdout
    assert (user / "clean.iat").read_text(encoding="utf-8") == CLEAN


def test_unformatted_file_is_blocked_and_formatted(hook_repo: HookRepo, tmp_path: Path) -> None:
    """iatc-fmt rewrites the file in place, so pre-commit fails the commit; the file is
    valid, so iatc-check passes."""
    user = _user_repo(tmp_path, {"messy.iat": MESSY})
    proc = _run_hook(hook_repo, user, "iatc-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run_hook(hook_repo, user, "iatc-fmt")
    assert proc.returncode != 0
    assert "files were modified by this hook" in proc.stdout
    assert (user / "messy.iat").read_text(encoding="utf-8") == CLEAN


def test_fmt_hook_with_check_changes_nothing(hook_repo: HookRepo, tmp_path: Path) -> None:
    """`args: [--check]`: the hook only lists the file and fails."""
    user = _user_repo(tmp_path, {"messy.iat": MESSY})
    proc = _run_hook(hook_repo, user, "iatc-fmt", ("--check",))
    assert proc.returncode != 0
    assert "messy.iat" in proc.stdout and "would reformat 1 of 1 file" in proc.stdout
    assert "files were modified" not in proc.stdout
    assert (user / "messy.iat").read_text(encoding="utf-8") == MESSY


def test_broken_file_is_blocked_by_both_hooks(hook_repo: HookRepo, tmp_path: Path) -> None:
    user = _user_repo(tmp_path, {"broken.iat": BROKEN, "clean.iat": CLEAN})
    proc = _run_hook(hook_repo, user, "iatc-check")
    assert proc.returncode != 0
    assert "broken.iat:1:17: error[E001]" in proc.stdout
    proc = _run_hook(hook_repo, user, "iatc-fmt")
    assert proc.returncode != 0
    assert "broken.iat:1:17: error[E001]" in proc.stdout
    assert (user / "broken.iat").read_text(encoding="utf-8") == BROKEN


def test_check_hook_checks_each_file_as_a_program(hook_repo: HookRepo, tmp_path: Path) -> None:
    """Each staged file is a program of its own: the same task in two files is fine, a task
    declared twice in one file is E010."""
    user = _user_repo(tmp_path, {"a.iat": CLEAN, "b.iat": CLEAN})
    proc = _run_hook(hook_repo, user, "iatc-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (user / "c.iat").write_text(CLEAN + "\n" + CLEAN, encoding="utf-8")
    _git("add", "c.iat", cwd=user)
    proc = _run_hook(hook_repo, user, "iatc-check")
    assert proc.returncode != 0
    assert "c.iat:5:6: error[E010]: task `t` is declared twice" in proc.stdout
