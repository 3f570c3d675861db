"""The runtime's one view of the compiler (``instraug_dsl.compile``).

Everything the engine needs from a compiled plan goes through this module, so the runtime
depends on the compiler's API in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..compile import Compiled, compile_plan, derive_requests, evaluate_reply
from ..compile import rewrite_id as _rewrite_id
from ..compile.types import Verdict
from ..contract.compiled import Request, ValidatorSpec
from ..contract.run import Skipped
from ..lang.model import Catalog
from .constrain import Constraint, max_words, reply_token_bound
from .engine import ConstraintOf, Evaluator
from .outcome import Outcome


def compile_for_run(catalog: Catalog, plan: str, sources: Mapping[str, str] | None) -> Compiled:
    """Compile ``plan``; ``sources`` ({path: text}) lets the manifest record source hashes."""
    return compile_plan(catalog, plan, sources=sources)


class Validators:
    """The validators of a run by id: the compiled ones plus those of derived rounds."""

    def __init__(self, compiled: Compiled) -> None:
        self.table: dict[str, ValidatorSpec] = dict(compiled.validators)

    def add(self, more: Mapping[str, ValidatorSpec]) -> None:
        """Register the validators of a derived round."""
        self.table.update(more)

    def evaluator(self) -> Evaluator:
        """Validate a reply with the validator its request names."""
        table = self.table

        def evaluate(request: Request, text: str) -> tuple[Verdict, ...]:
            return tuple(evaluate_reply(request, table[request.validator], text))

        return evaluate

    def constraint_of(self) -> ConstraintOf:
        """The decoding constraint of a request: its validator's exported grammar and regex
        (whole-reply forms), which accept exactly the replies of valid token structure, and
        the reply length past which its length rule cannot pass."""
        table = self.table
        made: dict[str, Constraint] = {}

        def constraint(request: Request) -> Constraint | None:
            found = made.get(request.validator)
            if found is None:
                spec = table.get(request.validator)
                if spec is None or not spec.gbnf or not spec.reply_regex:
                    return None
                words = max_words(spec.source_words, spec.length_ratio[1])
                bound = reply_token_bound(words, sum(rule.count for rule in spec.tokens))
                found = Constraint(spec.gbnf, spec.reply_regex, bound, words)
                made[request.validator] = found
            return found

        return constraint


def accepted_bodies(outcomes: Sequence[Outcome]) -> list[tuple[Request, str]]:
    """(request, restored body) for every accepted rewrite, in request order."""
    return [
        (o.request, v.restored)
        for o in outcomes
        if o.status == "accepted"
        for v in o.attempts[-1].accepted
        if v.restored is not None
    ]


def rewrite_id(request: Request, body: str) -> str:
    """The compiler's id of an accepted rewrite (what derived requests name as parent)."""
    return _rewrite_id(request.task, request.root, body)


def derive(
    compiled: Compiled, validators: Validators, previous: Sequence[Outcome], iteration: int
) -> list[Request]:
    """MIns+_Iter: requests rephrasing the previous round's accepted rewrites."""
    requests, more = derive_requests(compiled, accepted_bodies(previous), iteration)
    validators.add(more)
    return list(requests)


def skipped(compiled: Compiled) -> Skipped:
    """What the compiler left out on purpose, with reasons (from its manifest)."""
    return Skipped(compiled.manifest.skipped_tasks, compiled.manifest.skipped_instructions)
