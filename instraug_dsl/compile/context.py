"""What compiling and deriving requests need: the catalog, the plan, the token preference."""

from __future__ import annotations

from dataclasses import dataclass

from ..lang.model import Catalog, MetaPromptSpec, PlanSpec
from .tokens import PREFERENCE


@dataclass(frozen=True)
class PlanContext:
    """What deriving requests needs: the catalog, the plan and the token preference."""

    catalog: Catalog
    plan: PlanSpec
    preference: tuple[str, ...] = PREFERENCE

    def expansions(self) -> list[tuple[MetaPromptSpec, int]]:
        """(meta-prompt expansion, samples) in plan order."""
        return [(mp, n) for name, n in self.plan.uses for mp in self.catalog.metaprompts[name]]
