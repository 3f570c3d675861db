"""The staged public API: check -> compile -> augment -> materialize -> stats, and run.

Each stage is one function with keyword-only options and a typed result, and each reads
what the previous stage wrote (a run directory is self-contained).  ``augment`` and
``run`` drive a model; their ``*_async`` twins await inside a running event loop (a
Jupyter cell, an async service), and the plain versions work anywhere: inside a running
loop they run on a worker thread.  Every error a user can cause is an
:class:`~instraug_dsl.errors.IatError`.

>>> import instraug_dsl as iat
>>> result = iat.check_text('task t { slot q: text  instruction i0 = "Answer: {q}" }')
>>> result.ok, sorted(result.catalog.tasks)
(True, ['t'])

``iatc run`` is orchestrated here, above the runtime and the dataset stage: augment the
sampling block's plan into ``OUT/run``, then materialize its instances into ``OUT/data``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from .contract.dataset import MaterializeManifest, MaterializeOptions
from .errors import UsageError
from .lang.frontend import CheckResult, check, check_text, load_catalog
from .lang.lookup import choose_plan, choose_sampling
from .lang.model import Catalog

if TYPE_CHECKING:
    from .compile import Compiled
    from .contract.compiled import Request
    from .dataset.stats import RunStats
    from .runtime.augment import AugmentOptions, AugmentResult
    from .runtime.batch import BatchFile, BatchRound
    from .runtime.bootstrap import BootstrapResult
    from .runtime.engine import EngineConfig
    from .runtime.estimate import Estimate
    from .runtime.router import RouterSpec

__all__ = [
    "CheckResult",
    "CompileResult",
    "MaterializeResult",
    "Backend",
    "Preview",
    "RunResult",
    "augment",
    "augment_async",
    "bootstrap",
    "check",
    "check_text",
    "compile",
    "compile_batch",
    "ingest_batch",
    "ingest_batch_async",
    "load",
    "load_catalog",
    "materialize",
    "merge",
    "merge_async",
    "preview",
    "run",
    "run_async",
    "stats",
]

PathLike = str | os.PathLike[str]


#: ``.iat`` files or folders, or the result of :func:`check` (checked once, used again).
Sources = Sequence[PathLike] | PathLike | CheckResult


def load(
    sources: Sequence[PathLike] | PathLike, *, allow_imports: Sequence[PathLike] = ()
) -> CheckResult:
    """:func:`check` for a stage: ``@name`` names a library shipped with iatc, a missing
    path is a :class:`UsageError`, and ``allow_imports`` widens where imports may point.
    Callers that print warnings first pass the result to any stage as its ``sources``."""
    from .lang.loader import library_path

    given = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    paths = []
    for raw in given:
        text = os.fspath(raw)
        if text.startswith("@") and not Path(text).exists():
            found = library_path(text)
            if found is None:
                raise UsageError(f"no library {text} ships with iatc")
            paths.append(found)
        else:
            paths.append(Path(text))
    try:
        return check(paths, allow_imports=[Path(p) for p in allow_imports])
    except FileNotFoundError as exc:
        raise UsageError(f"no such file or directory: {exc.args[0]}") from None


def _checked(sources: Sources) -> tuple[Catalog, dict[str, str]]:
    """The checked catalog and the loaded files' texts (for their hashes)."""
    result = sources if isinstance(sources, CheckResult) else load(sources)
    catalog = result.raise_for_errors()
    return catalog, {p: src.text for p, src in result.sources.items()}


# ----------------------------------------------------------------- compile


@dataclass(frozen=True)
class CompileResult:
    """A compiled plan: requests, validators, manifest, catalog snapshot."""

    compiled: Compiled
    plan: str
    out: Path | None


def compile(
    sources: Sources, *, plan: str | None = None, out: PathLike | None = None
) -> CompileResult:
    """Compile ``plan`` (default: the sources' ``default plan``, else their only plan) and,
    with ``out``, write requests.jsonl, validators.json, manifest.json and catalog.json."""
    from .compile import compile_plan

    catalog, texts = _checked(sources)
    spec = choose_plan(catalog, plan)
    compiled = compile_plan(catalog, spec.name, sources=texts)
    if out is not None:
        compiled.write(Path(out))
    return CompileResult(compiled, spec.name, Path(out) if out is not None else None)


# ----------------------------------------------------------------- augment


@dataclass(frozen=True)
class Preview:
    """What ``augment`` would send (``iatc augment --dry-run``): nothing is sent."""

    requests: tuple[Request, ...]
    model: str
    estimate: Estimate
    compiled: int


@dataclass(frozen=True, slots=True)
class Backend:
    """Which model to call and how (the ``--model``/``--api-base``/... flags).

    ``model`` overrides the plan's model; ``concurrency`` defaults to 1 for embedded
    models (llama.cpp generates one sequence at a time) and 16 otherwise; ``budget`` is
    in USD: a run whose estimate is above it does not start, and a run that reaches it
    stops cleanly.  ``constrain`` is ``"auto"`` (constrained decoding with the validators'
    grammar or regex wherever the provider supports it: the embedded models, vLLM and
    llama.cpp servers) or ``"off"``.  ``router`` is a router file (``--router``: litellm's
    ``model_list``, JSON or YAML): ``model`` (or the plan's) then names one of its groups,
    and the calls are spread over that group's deployments (docs: "Endpoint pools").
    """

    model: str | None = None
    api_base: str | None = None
    api_key: str | None = None
    concurrency: int | None = None
    timeout: float = 120.0
    budget: float | None = None
    constrain: str = "auto"
    router: PathLike | None = None

    def engine(self, plan_model: str) -> EngineConfig:
        """The runtime's engine settings for a plan whose model is ``plan_model``."""
        from .runtime.engine import EngineConfig, default_concurrency

        if self.concurrency is not None and self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if self.timeout <= 0:
            raise UsageError("--timeout must be positive")
        if self.constrain not in ("auto", "off"):
            raise UsageError(f"--constrain must be auto or off, not {self.constrain!r}")
        pool = self._pool(self.model or plan_model)
        return EngineConfig(
            model=self.model,
            api_base=self.api_base,
            api_key=self.api_key,
            concurrency=self.concurrency or default_concurrency(self.model or plan_model),
            timeout=self.timeout,
            budget_usd=self.budget,
            constrain="off" if self.constrain == "off" else "auto",
            router=pool,
        )

    def _pool(self, model: str) -> RouterSpec | None:
        """The checked router file, whose groups must include `model`."""
        if self.router is None:
            return None
        from .runtime.router import load_router

        for flag, value in (("--api-base", self.api_base), ("--api-key", self.api_key)):
            if value is not None:
                raise UsageError(
                    f"--router and {flag} do not go together: the router file gives each "
                    "deployment its address and key"
                )
        pool = load_router(Path(os.fspath(self.router)))
        if not pool.serves(model):
            given = "--model" if self.model else "the plan's model"
            raise UsageError(
                f"{pool.source}: no deployment has model_name `{model}` ({given}); "
                f"pass --model with one of: {', '.join(pool.groups)}"
            )
        return pool


def preview(
    sources: Sources,
    *,
    plan: str | None = None,
    model: str | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
) -> Preview:
    """The requests ``augment`` would send and their estimated cost; nothing is sent."""
    from .runtime.augment import AugmentOptions, prepare
    from .runtime.engine import EngineConfig
    from .runtime.estimate import estimate_requests

    catalog, texts = _checked(sources)
    options = AugmentOptions(
        plan=plan,
        engine=EngineConfig(model=model),
        tasks=tuple(tasks) if tasks else None,
        limit=limit,
    )
    prepared = prepare(catalog, options, texts)
    estimate = estimate_requests(prepared.requests, prepared.model)
    return Preview(tuple(prepared.requests), prepared.model, estimate, prepared.compiled_count)


async def augment_async(
    sources: Sources,
    out: PathLike,
    *,
    plan: str | None = None,
    backend: Backend | None = None,
    fresh: bool = False,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
    force: bool = False,
    progress: bool | TextIO = False,
    judge: str | None = None,
    shard: str | None = None,
    workers: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
) -> AugmentResult:
    """Augment a plan's instructions with a model into the run directory ``out``.

    Resumable: completed calls are cached in ``out/cache.sqlite`` and a second call
    repeats none of them (``fresh=True`` ignores the cache).  ``tasks``/``limit`` narrow
    the run; ``force`` allows a non-empty folder that is not a run directory;
    ``progress=True`` shows progress on stderr (or pass a stream); ``judge`` names a declared
    judge to use instead of the plan's (``"none"``: no judge).  ``shard="I/N"`` runs only
    shard I of N (put the shards together with :func:`merge`); ``workers=N`` runs N engine
    processes that share the run's cache (the files written are the same as with one).
    ``executor="ray"`` runs the parts as Ray tasks (the ``[ray]`` extra) on the cluster at
    ``ray_address`` or on a local Ray instance; ``workers`` is then the number of parts
    (default: one per CPU of the cluster).  The files written are the same again.
    """
    from .runtime.augment import AugmentOptions
    from .runtime.augment import augment_async as _augment
    from .runtime.progress import make_progress
    from .runtime.shards import Shard

    catalog, texts = _checked(sources)
    spec = choose_plan(catalog, plan)
    chosen = backend or Backend()
    options = AugmentOptions(
        plan=spec.name,
        engine=chosen.engine(spec.model),
        fresh=fresh,
        tasks=tuple(tasks) if tasks else None,
        limit=limit,
        force=force,
        judge=judge,
        shard=Shard.parse(shard) if shard is not None else None,
        workers=workers if workers is not None else (0 if executor == "ray" else 1),
        executor=_executor(executor, ray_address),
        ray_address=ray_address,
    )
    shown = make_progress(
        chosen.model or spec.model,
        quiet=progress is False,
        stream=None if isinstance(progress, bool) else progress,
    )
    return await _augment(catalog, Path(out), options, shown, texts)


def augment(
    sources: Sources,
    out: PathLike,
    *,
    plan: str | None = None,
    backend: Backend | None = None,
    fresh: bool = False,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
    force: bool = False,
    progress: bool | TextIO = False,
    judge: str | None = None,
    shard: str | None = None,
    workers: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
) -> AugmentResult:
    """:func:`augment_async` from synchronous code (works inside a running event loop too)."""
    from .runtime.llm import run_async

    return run_async(
        augment_async(
            sources,
            out,
            plan=plan,
            backend=backend,
            fresh=fresh,
            tasks=tasks,
            limit=limit,
            force=force,
            progress=progress,
            judge=judge,
            shard=shard,
            workers=workers,
            executor=executor,
            ray_address=ray_address,
        )
    )


def _executor(executor: str, ray_address: str | None) -> Literal["local", "ray"]:
    """``--executor``, checked: ``local`` or ``ray`` (``--ray-address`` only with ``ray``)."""
    if executor == "ray":
        return "ray"
    if executor != "local":
        raise UsageError(f"--executor must be `local` or `ray`, not {executor!r}")
    if ray_address is not None:
        raise UsageError("--ray-address goes with --executor ray")
    return "local"


async def merge_async(
    shards: Sequence[PathLike], out: PathLike, *, progress: bool | TextIO = False
) -> AugmentResult:
    """Put the run directories of ``augment(..., shard="I/N")`` for I = 1..N back together
    into the new run directory ``out``: the same files one unsharded run writes.  Nothing
    is sent to any model; a shard that stopped early is an error naming it."""
    from .runtime.merge import merge_async as _merge
    from .runtime.progress import make_progress

    shown = make_progress(
        "cache", quiet=progress is False, stream=None if isinstance(progress, bool) else progress
    )
    return await _merge([Path(p) for p in shards], Path(out), shown)


def merge(
    shards: Sequence[PathLike], out: PathLike, *, progress: bool | TextIO = False
) -> AugmentResult:
    """:func:`merge_async` from synchronous code (works inside a running event loop too)."""
    from .runtime.llm import run_async

    return run_async(merge_async(shards, out, progress=progress))


# ------------------------------------------------------------- batch files


def compile_batch(
    sources: Sources,
    out: PathLike,
    *,
    plan: str | None = None,
    model: str | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
) -> BatchFile:
    """Write the first batch file of a run (``iatc compile --format openai-batch``): one
    OpenAI Batch input line per request's first attempt, its ``custom_id`` the call's cache
    key.  Submit it to a batch API (or ``vllm run-batch``), then pass the results to
    :func:`ingest_batch` with the same ``plan``, ``model``, ``tasks`` and ``limit``."""
    from .runtime.batch import first_batch_async
    from .runtime.llm import run_async

    catalog, texts = _checked(sources)
    options = _batch_options(catalog, plan, model, tasks, limit, None)
    return run_async(first_batch_async(catalog, Path(out), options, texts))


async def ingest_batch_async(
    sources: Sources,
    out: PathLike,
    results: Sequence[PathLike],
    *,
    plan: str | None = None,
    model: str | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
    judge: str | None = None,
    force: bool = False,
    progress: bool | TextIO = False,
) -> BatchRound:
    """Ingest batch results into the run directory ``out`` (``iatc augment --from-batch``):
    the run is replayed from its cache and the ``results`` (nothing is sent), its files are
    written, and the calls still missing (re-asks, later rounds, the judge) go to the next
    batch file, ``out/batch/round-K.jsonl`` (`BatchRound.next_batch`).  Ingesting again
    continues; when nothing is missing (`BatchRound.complete`) the run's files are those of
    a direct run whose model answered the same."""
    from .runtime.batch import ingest_async
    from .runtime.progress import make_progress

    catalog, texts = _checked(sources)
    options = _batch_options(catalog, plan, model, tasks, limit, judge)
    options = replace(options, force=force)
    shown = make_progress(
        "batch", quiet=progress is False, stream=None if isinstance(progress, bool) else progress
    )
    files = [Path(p) for p in results]
    return await ingest_async(catalog, Path(out), options, files, shown, texts)


def ingest_batch(
    sources: Sources,
    out: PathLike,
    results: Sequence[PathLike],
    *,
    plan: str | None = None,
    model: str | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
    judge: str | None = None,
    force: bool = False,
    progress: bool | TextIO = False,
) -> BatchRound:
    """:func:`ingest_batch_async` from synchronous code (works inside a running event loop)."""
    from .runtime.llm import run_async

    return run_async(
        ingest_batch_async(
            sources,
            out,
            results,
            plan=plan,
            model=model,
            tasks=tasks,
            limit=limit,
            judge=judge,
            force=force,
            progress=progress,
        )
    )


def _batch_options(
    catalog: Catalog,
    plan: str | None,
    model: str | None,
    tasks: Sequence[str] | None,
    limit: int | None,
    judge: str | None,
) -> AugmentOptions:
    """The options of a batch round (the runtime makes them cache-only and unconstrained)."""
    from .runtime.augment import AugmentOptions

    spec = choose_plan(catalog, plan)
    return AugmentOptions(
        plan=spec.name,
        engine=Backend(model, constrain="off").engine(spec.model),
        tasks=tuple(tasks) if tasks else None,
        limit=limit,
        judge=judge,
    )


def bootstrap(
    sources: Sources,
    prompt: str,
    out: PathLike,
    *,
    backend: Backend | None = None,
    n: int | None = None,
    name: str = "bootstrapped",
    seed: int = 1,
    temperature: float = 0.7,
    fresh: bool = False,
    force: bool = False,
) -> BootstrapResult:
    """Ask a model for rewriting strategies with bootstrap prompt ``prompt``; write them as a
    checked ``strategies`` block to ``out``.  The model defaults to the default plan's."""
    from .runtime.bootstrap import bootstrap as _bootstrap

    catalog, _ = _checked(sources)
    chosen = backend or Backend(timeout=300.0)
    plan_model = _default_model()
    if catalog.default_plan is not None or len(catalog.plans) == 1:
        plan_model = choose_plan(catalog).model
    return _bootstrap(
        catalog,
        prompt,
        Path(out),
        model=chosen.model or plan_model,
        n=n,
        name=name,
        config=chosen.engine(plan_model),
        temperature=temperature,
        seed=seed,
        fresh=fresh,
        force=force,
    )


def _default_model() -> str:
    from .lang.model import DEFAULT_MODEL

    return DEFAULT_MODEL


# ------------------------------------------------------------- materialize


@dataclass(frozen=True)
class MaterializeResult:
    """A written dataset: its folder and its manifest (counts, inputs, warnings)."""

    out: Path
    manifest: MaterializeManifest


def materialize(
    run_dir: PathLike,
    instances: PathLike,
    out: PathLike,
    *,
    options: MaterializeOptions | None = None,
    iat: Sequence[PathLike] | PathLike | None = None,
    force: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
) -> MaterializeResult:
    """Filter a run's rewrites, sample one instruction per instance and render MIns+ rows.

    Works from the run directory alone (``iat`` overrides its recorded declarations).
    ``instances`` is JSON Lines (plain, ``.gz``, ``.zst``), Parquet or Arrow (a file or a
    folder of shards) or a ``Dataset.save_to_disk`` folder; ``options`` chooses the
    output format (``jsonl``, ``parquet``, ``messages``, ``llava``, ``ofa-tsv``) and the
    carried columns (docs/dataset.md).  ``executor="ray"`` makes the same rows with Ray
    Data (the ``[ray]`` extra) on the cluster at ``ray_address`` or on a local Ray
    instance, written as Parquet shards in ``out/train/`` and ``out/test/``.
    """
    from .dataset.run import load_run

    chosen = _executor(executor, ray_address)
    run = load_run(Path(run_dir), _iat_paths(iat))
    given = options or MaterializeOptions()
    if chosen == "ray":
        from .dataset.ray_executor import materialize_on_ray

        manifest = materialize_on_ray(
            run, Path(instances), Path(out), given, force=force, address=ray_address
        )
    else:
        from .dataset.materialize import materialize as _materialize

        manifest = _materialize(run, Path(instances), Path(out), given, force=force)
    return MaterializeResult(Path(out), manifest)


def stats(run_dir: PathLike, *, iat: Sequence[PathLike] | PathLike | None = None) -> RunStats:
    """Per-task statistics of a run after the corpus filters."""
    from .dataset.run import load_run
    from .dataset.stats import run_stats

    return run_stats(load_run(Path(run_dir), _iat_paths(iat)))


def _iat_paths(iat: Sequence[PathLike] | PathLike | None) -> list[Path] | None:
    """``iat=`` as paths: one path or folder, or several (``None`` or empty: the run's own)."""
    if iat is None:
        return None
    paths = [iat] if isinstance(iat, str | os.PathLike) else list(iat)
    return [Path(p) for p in paths] or None


# --------------------------------------------------------------------- run


@dataclass(frozen=True)
class RunResult:
    """``iatc run``: the augmentation run (``OUT/run``) and the dataset (``OUT/data``)."""

    augment: AugmentResult
    dataset: MaterializeResult


async def run_async(
    source: PathLike | CheckResult,
    out: PathLike,
    *,
    sampling: str | None = None,
    backend: Backend | None = None,
    fresh: bool = False,
    force: bool = False,
    progress: bool | TextIO = False,
) -> RunResult:
    """Augment with the sampling block's plan into ``out/run``, then materialize its
    instances into ``out/data``.

    The instance file a ``sampling`` block names is resolved relative to the ``.iat``
    file that declares it.
    """
    from .errors import BudgetExceeded

    result = source if isinstance(source, CheckResult) else load(source)
    catalog = result.raise_for_errors()
    spec = choose_sampling(catalog, sampling)
    if spec.instances is None:
        raise UsageError(f"sampling block `{spec.name}` names no `instances` file")
    declared_in = Path(result.context.samplings[spec.name].span.path)
    instances = (declared_in.parent / spec.instances).resolve()
    if not instances.exists():  # a file, or a folder of Parquet/Arrow shards
        raise UsageError(
            f"{declared_in}: sampling `{spec.name}`: the instances file {instances} does not exist"
        )
    plan = choose_plan(catalog, spec.plan)
    out_dir = Path(out)
    augmented = await augment_async(
        result,
        out_dir / "run",
        plan=plan.name,
        backend=backend,
        fresh=fresh,
        force=force,
        progress=progress,
    )
    if augmented.summary.run.stopped == "budget":
        raise BudgetExceeded(
            f"stopped at the budget of ${augmented.summary.run.budget_usd:g} before "
            "augmentation finished; the dataset was not built. Run again with a higher "
            f"--budget (completed calls in {out_dir / 'run'} are kept)."
        )
    options = MaterializeOptions(
        raw_share=spec.raw_share,
        mode="uniform" if spec.mode == "uniform" else "mixed",
        seed=spec.seed,
        per_task=spec.per_task,
    )
    if spec.carry is not None:  # `carry a, b.c` in the sampling block
        from .dataset.records import dotted

        options = replace(options, carry=tuple(dotted(path) for path in spec.carry))
    dataset = materialize(
        out_dir / "run", instances, out_dir / "data", options=options, force=force
    )
    return RunResult(augmented, dataset)


def run(
    source: PathLike | CheckResult,
    out: PathLike,
    *,
    sampling: str | None = None,
    backend: Backend | None = None,
    fresh: bool = False,
    force: bool = False,
    progress: bool | TextIO = False,
) -> RunResult:
    """:func:`run_async` from synchronous code (works inside a running event loop too)."""
    from .runtime.llm import run_async as _run

    return _run(
        run_async(
            source,
            out,
            sampling=sampling,
            backend=backend,
            fresh=fresh,
            force=force,
            progress=progress,
        )
    )
