"""``iatc run``: augment with the sampling block's plan, then materialize MIns+.

``OUT/run`` is the augmentation run directory (resumable, see `augment`); ``OUT/data`` is the
dataset (``train.jsonl`` and its manifest). The instance file named by the sampling block is
resolved relative to the ``.iat`` file that declares the block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from ..errors import IatRuntimeError
from ..lang.model import SamplingSpec


def _sampling(result: Any, name: str | None) -> tuple[SamplingSpec, Path]:
    """The sampling block to use and the file that declares it."""
    catalog = result.catalog
    if name is None:
        if len(catalog.samplings) != 1:
            known = ", ".join(catalog.samplings) or "none declared"
            raise IatRuntimeError(
                f"`iatc run` needs exactly one `sampling` block or --sampling NAME (found: {known})"
            )
        name = next(iter(catalog.samplings))
    if name not in catalog.samplings:
        known = ", ".join(catalog.samplings) or "none declared"
        raise IatRuntimeError(f"no sampling block named {name!r} (known: {known})")
    declared = Path(result.context.samplings[name].span.path)
    return catalog.samplings[name], declared


def run_pipeline(
    path: Path,
    out: Path,
    *,
    sampling: str | None = None,
    model: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    concurrency: int | None = None,
    timeout: float = 120.0,
    fresh: bool = False,
    budget: float | None = None,
    quiet: bool = False,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Augment then materialize; returns ``{"augment": summary, "dataset": manifest}``."""
    from ..dataset.materialize import MaterializeOptions, materialize
    from ..dataset.run import load_run
    from ..lang.frontend import check
    from .augment import AugmentOptions, choose_plan, run_augment
    from .engine import EngineConfig, default_concurrency
    from .progress import make_progress
    from .report import summary_table

    result = check([path])
    catalog = result.raise_for_errors()
    spec, declared_in = _sampling(result, sampling)
    if spec.instances is None:
        raise IatRuntimeError(f"sampling block {spec.name!r} names no `instances` file")
    instances = (declared_in.parent / spec.instances).resolve()
    if not instances.is_file():
        raise IatRuntimeError(
            f"{declared_in}: sampling {spec.name!r}: instances file {instances} does not exist"
        )
    plan = choose_plan(catalog, spec.plan)
    effective = model or plan.model
    config = EngineConfig(
        model=model,
        api_base=api_base,
        api_key=api_key,
        concurrency=concurrency or default_concurrency(effective),
        timeout=timeout,
        budget_usd=budget,
    )
    run_dir, data_dir = out / "run", out / "data"
    progress = make_progress(effective, quiet=quiet)
    sources = {p: src.text for p, src in result.sources.items()}
    options = AugmentOptions(plan=plan.name, engine=config, fresh=fresh)
    augmented = run_augment(catalog, run_dir, options, progress, sources)
    if stream is not None and not quiet:
        summary_table(augmented.summary, stream)
    if augmented.summary["run"]["stopped"] == "budget":
        raise IatRuntimeError(
            f"stopped at the budget of ${budget:g} before augmentation finished; the dataset was "
            f"not built. Re-run with a higher --budget (completed calls in {run_dir} are kept)."
        )
    dataset_options = MaterializeOptions(
        raw_share=spec.raw_share, mode=spec.mode, seed=spec.seed, per_task=spec.per_task
    )
    # The task declarations are the files just loaded: no need to find them again.
    run = load_run(run_dir, iat=[Path(p) for p in result.sources])
    manifest = materialize(run, instances, data_dir, dataset_options)
    if stream is not None:
        _dataset_lines(manifest, data_dir, stream)
    return {"augment": augmented.summary, "dataset": manifest}


def _dataset_lines(manifest: dict[str, Any], data_dir: Path, stream: TextIO) -> None:
    counts = manifest.get("counts")
    counts = counts if isinstance(counts, dict) else {}
    line = f"MIns+ written to {data_dir}"
    if "written" in counts:
        line += (
            f": {counts['written']} rows ({counts.get('original', 0)} with an original "
            f"instruction, {counts.get('generated', 0)} with a generated one)"
        )
    dropped = counts.get("dropped_instructions")
    if isinstance(dropped, dict) and dropped:
        line += "; rewrites dropped: " + ", ".join(f"{n} {k}" for k, n in sorted(dropped.items()))
    stream.write(line + "\n")
    for warning in manifest.get("warnings") or []:
        stream.write(f"warning: {warning}\n")
