"""Presenting ``iatc stats``: a text table and a self-contained HTML report.

The HTML has no dependency and no script: tables plus two inline SVG charts drawn here
(expansion factor per task; rejections and filter drops per task by reason).  Every
string from the run is escaped, so a task name or reason code cannot inject markup.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any, Final

from ..contract.codec import encode
from .stats import RunStats

_PALETTE: Final = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
_ROW: Final = 18
_LABEL: Final = 260
_WIDTH: Final = 520


def _num(value: object, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def text_table(run_stats: RunStats) -> str:
    """A fixed-width table of the main per-task numbers plus totals."""
    stats = encode(run_stats)
    head = (
        "task",
        "split",
        "orig",
        "gen",
        "acc",
        "rej",
        "dedup",
        "kept",
        "exp",
        "dist-2",
        "rougeL",
    )
    rows = [head]
    for name, t in stats["tasks"].items():
        rows.append(
            (
                name,
                t["split"],
                str(t["originals"]),
                str(t["generated"]),
                str(t["accepted"]),
                str(t["rejected"]),
                str(sum(t["deduplicated"].values())),
                str(t["kept"]),
                _num(t["expansion_factor"]),
                _num(t["distinct_2"]),
                _num(t["mean_pairwise_rouge_l"]),
            )
        )
    tot = stats["totals"]
    rows.append(
        (
            "TOTAL",
            "",
            str(tot["originals"]),
            str(tot["generated"]),
            str(tot["accepted"]),
            str(tot["rejected"]),
            str(sum(tot["deduplicated"].values())),
            str(tot["kept"]),
            _num(tot["expansion_factor"]),
            "",
            "",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    extra = []
    if tot["rejected_by_reason"]:
        extra.append(
            "rejected by reason: "
            + ", ".join(f"{k} {v}" for k, v in tot["rejected_by_reason"].items())
        )
    if tot["deduplicated"]:
        extra.append(
            "filtered by reason: " + ", ".join(f"{k} {v}" for k, v in tot["deduplicated"].items())
        )
    return "\n".join(lines + extra)


def _svg_bars(title: str, values: Mapping[str, float]) -> str:
    top = max(values.values(), default=0.0) or 1.0
    height = 30 + _ROW * len(values)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_LABEL + _WIDTH + 60}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="0" y="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (name, value) in enumerate(values.items()):
        y = 24 + i * _ROW
        width = _WIDTH * value / top
        out.append(
            f'<text x="{_LABEL - 6}" y="{y + 12}" text-anchor="end">{html.escape(name)}</text>'
        )
        out.append(
            f'<rect x="{_LABEL}" y="{y + 2}" width="{width:.1f}" height="{_ROW - 4}" '
            f'fill="{_PALETTE[0]}"/>'
        )
        out.append(f'<text x="{_LABEL + width + 4:.1f}" y="{y + 12}">{value:.2f}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _svg_stacked(title: str, series: Mapping[str, Mapping[str, int]]) -> str:
    keys = sorted({k for counts in series.values() for k in counts})
    colors = {k: _PALETTE[i % len(_PALETTE)] for i, k in enumerate(keys)}
    top = max((sum(c.values()) for c in series.values()), default=0) or 1
    legend_rows = (len(keys) + 3) // 4
    height = 30 + _ROW * (len(series) + legend_rows + 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_LABEL + _WIDTH + 60}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="0" y="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, key in enumerate(keys):
        lx, ly = (i % 4) * 190, 24 + (i // 4) * _ROW
        out.append(f'<rect x="{lx}" y="{ly + 3}" width="12" height="12" fill="{colors[key]}"/>')
        out.append(f'<text x="{lx + 16}" y="{ly + 13}">{html.escape(key)}</text>')
    base = 24 + legend_rows * _ROW + 6
    for i, (name, counts) in enumerate(series.items()):
        y = base + i * _ROW
        out.append(
            f'<text x="{_LABEL - 6}" y="{y + 12}" text-anchor="end">{html.escape(name)}</text>'
        )
        x = float(_LABEL)
        for key in keys:
            n = counts.get(key, 0)
            if n:
                width = _WIDTH * n / top
                tip = f"{name}: {key} {n}"
                out.append(
                    f'<rect x="{x:.1f}" y="{y + 2}" width="{width:.1f}" height="{_ROW - 4}" '
                    f'fill="{colors[key]}"><title>{html.escape(tip)}</title></rect>'
                )
                x += width
        total = sum(counts.values())
        if total:
            out.append(f'<text x="{x + 4:.1f}" y="{y + 12}">{total}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _table(stats: Mapping[str, Any]) -> str:
    cols = (
        "split",
        "originals",
        "generated",
        "accepted",
        "rejected",
        "failed",
        "kept",
        "expansion_factor",
        "distinct_1",
        "distinct_2",
        "mean_pairwise_rouge_l",
    )
    head = "".join(
        f"<th>{html.escape(c)}</th>" for c in ("task", *cols, "rejected by reason", "filtered")
    )
    body = []
    for name, t in stats["tasks"].items():
        cells = [f"<td>{html.escape(name)}</td>"]
        cells += [f"<td>{html.escape(_num(t[c], 3))}</td>" for c in cols]
        for key in ("rejected_by_reason", "deduplicated"):
            text = ", ".join(f"{k}: {v}" for k, v in t[key].items())
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_report(run_stats: RunStats) -> str:
    """A standalone HTML page: totals, two SVG charts, the per-task table."""
    stats = encode(run_stats)
    tasks = {n: t for n, t in stats["tasks"].items() if t["split"] != "test"}
    expansion = {n: float(t["expansion_factor"] or 0.0) for n, t in tasks.items()}
    reasons = {
        n: {
            **{f"rejected: {k}": v for k, v in t["rejected_by_reason"].items()},
            **{f"filtered: {k}": v for k, v in t["deduplicated"].items()},
        }
        for n, t in tasks.items()
    }
    tot = stats["totals"]
    summary = ", ".join(
        f"{k}: {html.escape(_num(v))}" for k, v in tot.items() if not isinstance(v, dict)
    )
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in stats.get("warnings", []))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>iatc stats: {html.escape(str(stats["run_dir"]))}</title>
<style>body{{font-family:sans-serif;font-size:13px;margin:20px}} svg text{{font-size:12px}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}
td:first-child{{text-align:left}}</style></head><body>
<h1>Augmentation run {html.escape(str(stats["run_dir"]))}</h1>
<p>plan: {html.escape(str(stats["plan"]))}; ROUGE-L dedup threshold {stats["dedup_threshold"]}</p>
<p>{summary}</p>
{f"<ul>{warnings}</ul>" if warnings else ""}
<h2>Expansion factor (kept rewrites / originals), training tasks</h2>
{_svg_bars("expansion factor per task", expansion)}
<h2>Rejections and filter drops by reason, training tasks</h2>
{_svg_stacked("rejected and filtered rewrites per task", reasons)}
<h2>All tasks</h2>
{_table(stats)}
</body></html>
"""
