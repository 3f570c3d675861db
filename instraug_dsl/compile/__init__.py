"""The compiler: placeholder-protected generation requests and their validators.

Staged API (load → check → compile → run/validate)::

    >>> from instraug_dsl.compile import compile_text_plan, evaluate_reply
    >>> src = '''
    ... task t { slot q: text  instruction i0 = "Answer the question {q} briefly." }
    ... metaprompt m { user "Rewrite: <instruction>{{ instruction }}</instruction>" }
    ... plan p { use m samples 2 }
    ... '''
    >>> compiled = compile_text_plan(src, "p")
    >>> [r.protected for r in compiled.requests]
    ['Answer the question {A} briefly.', 'Answer the question {A} briefly.']
    >>> req = compiled.requests[0]
    >>> verdict, = evaluate_reply(req, compiled.validator_for(req), '["Briefly answer {A}."]')
    >>> verdict.accepted, verdict.restored
    (True, 'Briefly answer {q}.')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..contract.compiled import Message, Request, TokenRule, ValidatorSpec
from ..errors import IatCompileError
from ..lang import ir
from .bootstrap import BootstrapRequest, bootstrap_request, strategies_from_reply, strategies_source
from .build import Compiled, compile_plan, derive_requests, plan_context, rewrite_id
from .context import PlanContext
from .reply import parse_reply
from .tokens import FAMILIES, PREFERENCE, Masked, TokenFamily, template_pieces
from .tokens import mask as _mask_pieces
from .tokens import unmask as _unmask
from .types import ParsedReply, Reason, Verdict
from .validate import (
    GENERIC_REASK,
    REASK_TEXT,
    REASONS,
    STRUCTURAL,
    reask_message,
    validate_text,
)

__all__ = [
    "FAMILIES",
    "GENERIC_REASK",
    "PREFERENCE",
    "REASK_TEXT",
    "REASONS",
    "STRUCTURAL",
    "BootstrapRequest",
    "Compiled",
    "Masked",
    "Message",
    "ParsedReply",
    "PlanContext",
    "Reason",
    "Request",
    "TokenFamily",
    "TokenRule",
    "ValidatorSpec",
    "Verdict",
    "bootstrap_request",
    "compile_paths",
    "compile_plan",
    "compile_text_plan",
    "derive_requests",
    "evaluate_reply",
    "mask",
    "parse_reply",
    "plan_context",
    "reask_message",
    "rewrite_id",
    "strategies_from_reply",
    "strategies_source",
    "unmask",
    "validate",
]


def compile_paths(
    paths: Sequence[str | Path], plan: str, *, preference: Sequence[str] = PREFERENCE
) -> Compiled:
    """Load, check and compile in one call; raises :class:`IatCheckError` on errors."""
    from ..lang.frontend import check

    result = check(paths)
    catalog = result.raise_for_errors()
    sources = {p: s.text for p, s in result.sources.items()}
    return compile_plan(catalog, plan, sources=sources, preference=preference)


def compile_text_plan(text: str, plan: str, *, preference: Sequence[str] = PREFERENCE) -> Compiled:
    """Compile one in-memory source (tests, notebooks)."""
    from ..lang.frontend import check_text

    catalog = check_text(text).raise_for_errors()
    return compile_plan(catalog, plan, sources={"<string>": text}, preference=preference)


def mask(template: str | Sequence[ir.Piece], family: str | TokenFamily | None = None) -> Masked:
    """Protect a ``{slot}`` template (or pieces): one token per distinct slot.

    >>> mask("Find {region}, then {region} and {question}").protected
    'Find {A}, then {A} and {B}'
    """
    pieces = template_pieces(template) if isinstance(template, str) else tuple(template)
    fam = FAMILIES[family] if isinstance(family, str) else family
    return _mask_pieces(pieces, fam)


def unmask(text: str, masked: Masked | Sequence[tuple[str, str]], family: str | None = None) -> str:
    """Map tokens back to ``{slot}`` (``masked`` or a token map plus its family)."""
    if isinstance(masked, Masked):
        return _unmask(text, masked.token_map, masked.family)
    if family is None:
        raise TypeError("unmask with a bare token map needs the family name")
    return _unmask(text, masked, family)


def _spec(
    target: ValidatorSpec | Request | str, validators: Mapping[str, ValidatorSpec] | Compiled | None
) -> ValidatorSpec:
    if isinstance(target, ValidatorSpec):
        return target
    table = validators.validators if isinstance(validators, Compiled) else validators
    if table is None:
        raise TypeError("validate(request or id, ...) needs validators= (a Compiled or a mapping)")
    if isinstance(target, Request):
        return table[target.validator]
    if isinstance(validators, Compiled):
        return validators.validator_for(validators.request(target))
    return table[target]


def validate(
    target: ValidatorSpec | Request | str,
    candidate: str,
    *,
    validators: Mapping[str, ValidatorSpec] | Compiled | None = None,
) -> Verdict:
    """Judge one rewrite (with tokens) against a validator, a request, or a request id.

    A request id is looked up in ``validators`` (a :class:`Compiled`); a
    validator id in a mapping.
    """
    return validate_text(_spec(target, validators), candidate)


def evaluate_reply(
    request: Request, validator: ValidatorSpec, reply_text: str
) -> tuple[Verdict, ...]:
    """Parse a raw model reply and validate every rewrite in it.

    An unparseable reply gives one rejected verdict with reason ``unparseable``.
    """
    if request.validator != validator.id:
        raise IatCompileError(
            f"request {request.id} uses validator {request.validator}, not {validator.id}"
        )
    parsed = parse_reply(reply_text)
    if parsed.problem is not None:
        reasons = [Reason("unparseable", parsed.problem)]
        return (Verdict(False, None, tuple(reasons), reask_message(validator, reasons)),)
    return tuple(validate_text(validator, text) for text in parsed.rewrites)
