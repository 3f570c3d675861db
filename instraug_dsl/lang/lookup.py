"""Finding a declaration by name: one helper, one wording, one did-you-mean.

Every command that takes a name (``--plan``, ``--sampling``, ``--prompt``, ``--tasks``)
looks it up here, and :func:`choose_plan` is the one rule for the plan a command uses when
none is named: the program's ``default plan``, else its only plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from ..errors import UsageError
from .diagnostics import did_you_mean
from .model import Catalog, PlanSpec, SamplingSpec

T = TypeVar("T")


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UsageError:
    """The error for a name that is not declared: ``unknown plan `pap` (did you mean ...)``."""
    names = sorted(set(known))
    hint = did_you_mean(name, names)
    listed = ", ".join(f"`{n}`" for n in names) if names else "none"
    return UsageError(
        f"unknown {kind} `{name}`" + (f" ({hint})" if hint else "") + f"; declared: {listed}"
    )


def lookup(kind: str, name: str, table: Mapping[str, T]) -> T:
    """``table[name]``, or a :class:`UsageError` naming the kind, a close match and the rest."""
    found = table.get(name)
    if found is None:
        raise unknown_name(kind, name, table)
    return found


def choose_plan(catalog: Catalog, name: str | None = None) -> PlanSpec:
    """The plan to use: ``name``; else the ``default plan``; else the only plan."""
    if name is not None:
        return lookup("plan", name, catalog.plans)
    if catalog.default_plan is not None:
        return catalog.plans[catalog.default_plan]
    if len(catalog.plans) == 1:
        return next(iter(catalog.plans.values()))
    if not catalog.plans:
        raise UsageError("no plan is declared: add `plan NAME { use METAPROMPT }`")
    listed = ", ".join(f"`{n}`" for n in sorted(catalog.plans))
    raise UsageError(
        f"several plans are declared ({listed}) and none is marked `default`: "
        "name one with --plan, or declare one as `default plan NAME`"
    )


def choose_sampling(catalog: Catalog, name: str | None = None) -> SamplingSpec:
    """The sampling block to use: ``name``, else the only one."""
    if name is not None:
        return lookup("sampling block", name, catalog.samplings)
    if len(catalog.samplings) == 1:
        return next(iter(catalog.samplings.values()))
    if not catalog.samplings:
        raise UsageError(
            "no `sampling` block is declared: add one that names the plan and the instances"
        )
    listed = ", ".join(f"`{n}`" for n in sorted(catalog.samplings))
    raise UsageError(f"several sampling blocks are declared ({listed}): name one with --sampling")
