"""Enumerations (splits, policies, modes...) and numbers with their ranges (E040-E042)."""

from __future__ import annotations

from .. import ir
from ..diagnostics import did_you_mean
from .context import (
    LANGUAGES,
    MAX_RANGE_VALUES,
    PLACEHOLDER_POLICIES,
    REJECTABLE,
    SAMPLING_MODES,
    SPLITS,
    THRESHOLD_BOUNDS,
    Context,
    _items,
    task_props,
)


def check_enums(program: ir.Program, ctx: Context) -> None:
    """Values of enumerated properties (E042)."""

    def check(name: ir.Name, allowed: tuple[str, ...], what: str) -> None:
        if name.value not in allowed:
            ctx.diagnostics.add(
                "E042",
                f"{what} must be {' or '.join(f'`{a}`' for a in allowed)}, not `{name.value}`",
                name.span,
                hint=did_you_mean(name.value, allowed),
            )

    for item in _items(program):
        if isinstance(item, ir.Task):
            for p in task_props(item):
                if isinstance(p, ir.Split):
                    check(p.value, SPLITS, "split")
        elif isinstance(item, ir.Plan):
            for m in item.members:
                if isinstance(m, ir.Filter):
                    for f in m.members:
                        if isinstance(f, ir.PlaceholderPolicy):
                            check(f.value, PLACEHOLDER_POLICIES, "placeholders")
                        elif isinstance(f, ir.Language):
                            check(f.value, LANGUAGES, "language")
                        elif isinstance(f, ir.Reject):
                            _check_reject(f, ctx)
        elif isinstance(item, ir.Sampling):
            for s in item.members:
                if isinstance(s, ir.Mode):
                    check(s.value, SAMPLING_MODES, "mode")


def _check_reject(f: ir.Reject, ctx: Context) -> None:
    """``reject`` names: known (E042), each once (E014), ``none`` only alone (E042)."""
    seen: set[str] = set()
    for n in f.names:
        if n.value == "none" and len(f.names) > 1:
            ctx.diagnostics.add(
                "E042",
                "`none` turns every check off and cannot be listed with others",
                n.span,
                hint="write `reject none` alone, or list only the checks to keep",
            )
        elif n.value != "none" and n.value not in REJECTABLE:
            ctx.diagnostics.add(
                "E042",
                f"reject takes {', '.join(f'`{a}`' for a in REJECTABLE)} or `none`,"
                f" not `{n.value}`",
                n.span,
                hint=did_you_mean(n.value, (*REJECTABLE, "none")),
            )
        elif n.value in seen:
            ctx.diagnostics.add("E014", f"`{n.value}` is listed twice", n.span)
        seen.add(n.value)


def _bound(
    ctx: Context,
    lit: ir.NumberLit | ir.IntLit,
    what: str,
    lo: float,
    hi: float,
    lo_open: bool = False,
) -> None:
    v = lit.value
    if v < lo or v > hi or (lo_open and v == lo):
        lo_txt = f"greater than {lo:g}" if lo_open else f"at least {lo:g}"
        hi_txt = f"at most {hi:g}" if hi != float("inf") else ""
        # str() for integers: `:g` converts to float, which overflows on huge literals.
        shown = str(v) if isinstance(lit, ir.IntLit) else f"{v:g}"
        bounds = lo_txt + (" and " + hi_txt if hi_txt else "")
        ctx.diagnostics.add("E040", f"{what} must be {bounds}, not {shown}", lit.span)


def range_values(rng: ir.NumberRange) -> list[float]:
    """Expand ``lo..hi step s`` inclusively, rounding away float drift."""
    lo, hi, step = rng.low.value, rng.high.value, rng.step.value
    if step <= 0 or hi < lo:
        return []
    count = int(round((hi - lo) / step + 1e-9)) + 1
    decimals = max(
        len(x.text.split(".")[1]) if "." in x.text else 0 for x in (rng.low, rng.high, rng.step)
    )
    return [round(lo + i * step, decimals + 2) for i in range(count) if lo + i * step <= hi + 1e-9]


def check_numbers(program: ir.Program, ctx: Context) -> None:
    """Numeric bounds (E040) and ranges (E041)."""
    inf = float("inf")
    for item in _items(program):
        if isinstance(item, ir.Plan):
            for m in item.members:
                if isinstance(m, ir.Use) and m.samples is not None:
                    _bound(ctx, m.samples, "samples", 1, 1000)
                elif isinstance(m, ir.Temperature):
                    if isinstance(m.values, ir.NumberRange):
                        r = m.values
                        if r.step.value <= 0:
                            ctx.diagnostics.add(
                                "E041", "the step of a range must be positive", r.step.span
                            )
                        elif r.high.value < r.low.value:
                            ctx.diagnostics.add(
                                "E041",
                                f"range {r.low.text}..{r.high.text} is empty:"
                                " the low end is above the high end",
                                r.span,
                            )
                        elif (r.high.value - r.low.value) / r.step.value > MAX_RANGE_VALUES:
                            ctx.diagnostics.add(
                                "E041", f"range has more than {MAX_RANGE_VALUES} values", r.span
                            )
                        for lit in (r.low, r.high):
                            _bound(ctx, lit, "temperature", 0, 2)
                    else:
                        for lit in m.values.values:
                            _bound(ctx, lit, "temperature", 0, 2)
                elif isinstance(m, ir.TopP):
                    _bound(ctx, m.value, "top_p", 0, 1, lo_open=True)
                elif isinstance(m, ir.MaxTokens):
                    _bound(ctx, m.value, "max_tokens", 1, 1_000_000)
                elif isinstance(m, ir.Iterations):
                    _bound(ctx, m.value, "iterations", 0, 10)
                elif isinstance(m, ir.Attempts):
                    _bound(ctx, m.value, "attempts", 1, 20)
                elif isinstance(m, ir.Seed):
                    _bound(ctx, m.value, "seed", 0, 2**63 - 1)
                elif isinstance(m, ir.Filter):
                    for f in m.members:
                        if isinstance(f, ir.LengthRatio):
                            _bound(ctx, f.low, "the low length ratio", 0, inf)
                            if f.high.value <= f.low.value:
                                ctx.diagnostics.add(
                                    "E041",
                                    f"length ratio {f.low.text}..{f.high.text} is empty",
                                    f.span,
                                )
                        elif isinstance(f, ir.Dedup):
                            _bound(ctx, f.value, "the dedup threshold", 0, 1)
        elif isinstance(item, ir.Sampling):
            for s in item.members:
                if isinstance(s, ir.RawShare):
                    _bound(ctx, s.value, "raw_share", 0, 1)
                elif isinstance(s, ir.PerTask):
                    _bound(ctx, s.value, "per_task", 1, inf)
                elif isinstance(s, ir.Seed):
                    _bound(ctx, s.value, "seed", 0, 2**63 - 1)
        elif isinstance(item, ir.Judge):
            for jm in item.members:
                if isinstance(jm, ir.JudgeThreshold):
                    _bound(ctx, jm.value, "a judge's threshold", *THRESHOLD_BOUNDS)
        elif isinstance(item, ir.MetaPrompt | ir.Bootstrap):
            for pm in item.members:
                if isinstance(pm, ir.PromptCount | ir.PromptTake):
                    _bound(
                        ctx, pm.value, "count" if isinstance(pm, ir.PromptCount) else "take", 1, 100
                    )
