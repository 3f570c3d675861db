"""Start-up cost of ``iatc check`` on the MultiInstruct templates.

Measures, in fresh subprocesses (median of N runs):

* baseline: ``python -c "import lark, jinja2, typer"`` (the libraries
  ``iatc`` cannot avoid importing);
* ``iatc check templates/multiinstruct`` with a warm parser cache (the
  normal case: the first run on a machine builds the cache);
* the same with the cache disabled (``IATC_CACHE_DIR=""``), for reference.

and prints each as a ratio of the baseline.  Target: warm ratio <= 3.

If ``templates/multiinstruct`` holds fewer than 75 `.iat` files, a similar
75-task directory is generated from ``examples/multiinstruct/instructions.jsonl``
into a temporary directory (pass ``--data`` to use another instructions file).

    python bench/bench_check.py [--runs 11] [--dir templates/multiinstruct]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "examples" / "multiinstruct" / "instructions.jsonl"
IATC = "from instraug_dsl.commands.main import main; main()"


def _quote(text: str) -> str:
    from instraug_dsl.lang.strings import quote

    return quote(text)


def generate_corpus(data: Path, dest: Path) -> Path:
    """Write one `.iat` file per task of the JSONL (plus a plan) under ``dest``."""
    tasks: dict[str, list[dict[str, object]]] = {}
    for line in data.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        tasks.setdefault(str(row["task"]), []).append(row)
    common = ROOT / "templates" / "common"
    if common.is_dir():
        shutil.copytree(common, dest / "common")
    out = dest / "multiinstruct"
    out.mkdir(parents=True)
    for name, rows in tasks.items():
        slots = sorted({str(p) for r in rows for p in r["placeholders"]})  # type: ignore[attr-defined]
        lines = [f"task {name} {{", f"  split {rows[0]['split']}"]
        lines += [f"  slot {s}: {'choices' if s == 'options' else 'text'}" for s in slots]
        lines += [f"  instruction i{r['index']} = {_quote(str(r['template']))}" for r in rows]
        (out / f"{name}.iat").write_text("\n".join([*lines, "}", ""]), encoding="utf-8")
    if common.is_dir():
        (out / "plan.iat").write_text(
            'import "../common/metaprompts.iat"\n\nplan bench {\n  use direct samples 5\n}\n',
            encoding="utf-8",
        )
    return out


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    cpu_start, start = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return wall, _cpu() - cpu_start


def _medians(
    commands: list[tuple[list[str], dict[str, str]]], runs: int
) -> list[tuple[float, float]]:
    """Median wall and CPU (user + sys) time of each command over ``runs`` rounds.

    The commands run interleaved, one of each per round, so a busy machine
    slows all of them alike; CPU time is reported too because it is steadier.
    """
    samples: list[list[tuple[float, float]]] = [[] for _ in commands]
    for _ in range(runs):
        for i, (cmd, env) in enumerate(commands):
            samples[i].append(_once(cmd, env))
    return [
        (statistics.median(w for w, _ in s), statistics.median(c for _, c in s)) for s in samples
    ]


def main() -> None:
    """Run the benchmark and print medians and ratios."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--dir", type=Path, default=ROOT / "templates" / "multiinstruct")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        target: Path = args.dir
        if len(list(target.rglob("*.iat"))) < 75:
            target = generate_corpus(args.data, Path(tmp))
            print(f"{args.dir} has fewer than 75 files; generated {target}")
        files = len(list(target.rglob("*.iat")))
        env = dict(os.environ, IATC_CACHE_DIR=str(Path(tmp) / "cache"))
        check = [sys.executable, "-c", IATC, "check", str(target)]
        first = subprocess.run(check, env=env, capture_output=True, text=True, check=False)
        print(f"iatc check {target} ({files} files): exit {first.returncode}")
        print("   " + ((first.stdout + first.stderr).strip().splitlines() or ["(no output)"])[-1])

        base, warm, cold = _medians(
            [
                ([sys.executable, "-c", "import lark, jinja2, typer"], dict(os.environ)),
                (check, env),
                (check, dict(env, IATC_CACHE_DIR="")),
            ],
            args.runs,
        )

    print(f"median of {args.runs} runs          wall               cpu (user+sys)")
    for label, (w, c) in (
        ("import lark, jinja2, typer", base),
        ("iatc check (parser cached)", warm),
        ("iatc check (no cache)     ", cold),
    ):
        wall = f"{w * 1000:6.0f} ms {w / base[0]:5.2f}x"
        print(f"  {label}  {wall}   {c * 1000:6.0f} ms {c / base[1]:5.2f}x")
    print(f"ratio {warm[0] / base[0]:.2f} wall, {warm[1] / base[1]:.2f} cpu (target <= 3)")


if __name__ == "__main__":
    main()
