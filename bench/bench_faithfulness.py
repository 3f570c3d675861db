"""How well do the validators tell faithful rewrites from unfaithful ones?  (Rule quality.)

Runs the compiled validators of the MultiInstruct ``paper`` plan over the labelled set
tests/data/faithfulness/labelled.jsonl (real rewrites from the embedded models plus
hand-written hard negatives, each labelled faithful or unfaithful with its kind) and, in
the same run, the paper's filters alone (length ratio in (0, 2.0) and the placeholder
multiset) as the baseline.  Prints, per kind, how many items each judge accepts, then
precision and recall of acceptance (faithful = positive class).

    python bench/bench_faithfulness.py            # the table
    python bench/bench_faithfulness.py -v         # plus every faithful item rejected, and why

Nothing is timed; tests/test_faithfulness.py asserts the goal on the same set.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from faithfulness_support import HARD_KINDS, evaluate, load  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="list rejected faithful items")
    args = ap.parse_args(argv)
    items = load()
    result = evaluate(items)
    origins = Counter(it.origin for it in items)
    print(f"{len(items)} labelled rewrites: " + ", ".join(f"{n} {o}" for o, n in origins.items()))
    print()
    print("| kind | items | accepted: validators | accepted: paper filters |")
    print("|---|---:|---:|---:|")
    for kind, n, ours, paper in result.table():
        mark = " (must be 0)" if kind in HARD_KINDS else ""
        print(f"| {kind}{mark} | {n} | {ours} | {paper} |")
    print()
    print("| judge | precision | recall of faithful | unfaithful accepted |")
    print("|---|---:|---:|---:|")
    for judge, name in (("ours", "validators"), ("paper", "paper filters (baseline)")):
        s = result.scores(judge)
        print(
            f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | "
            f"{int(s['unfaithful_accepted'])} |"
        )
    codes = Counter(code for _, found in result.rejected_faithful() for code in set(found))
    if codes:
        print()
        print(
            "faithful rewrites rejected, by reason: "
            + ", ".join(f"{c} {n}" for c, n in codes.most_common())
        )
    if args.verbose:
        for it, c in result.rejected_faithful():
            print(f"  {it.instruction}: {it.candidate!r} -> {', '.join(c)}")
        for it in result.hard_accepted():
            print(f"  ACCEPTED {it.kind}: {it.instruction}: {it.candidate!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
