"""Parsing model replies into rewrites, tolerating the usual deviations only.

Accepted: one JSON array of strings (alone, inside a code fence, or with a
preamble or closing line around it), a whole-reply JSON string, a JSON
object with a single key holding such an array, and a numbered list
(``1. ...``) optionally after one preamble line.  Anything else, including a
reply with two candidate arrays, is reported as unparseable instead of
guessed at.  Nothing in a reply is ever evaluated.
"""

from __future__ import annotations

import json
import re

from .types import ParsedReply

#: Replies longer than this are rejected before any parsing (a runaway model).
MAX_REPLY_CHARS = 100_000
#: At most this many ``[``/``{`` positions are tried as JSON starts.
_MAX_STARTS = 500
_DECODER = json.JSONDecoder()
_NUMBERED = re.compile(r"\s*(\d{1,3})[.)]\s+(.*\S)\s*\Z")
_FENCE = re.compile(r"\s*```[A-Za-z0-9_-]*\s*\Z")
_QUOTES = (('"', '"'), ("“", "”"), ("'", "'"))


def _strings(value: object) -> tuple[str, ...] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _json_candidates(text: str) -> list[tuple[tuple[str, ...], str]]:
    """Every top-level JSON array of strings (or single-key object holding one)."""
    found: list[tuple[tuple[str, ...], str]] = []
    pos, tries = 0, 0
    while tries < _MAX_STARTS:
        starts = [i for i in (text.find("[", pos), text.find("{", pos)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        tries += 1
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        items = _strings(value)
        form = "json"
        if items is None and isinstance(value, dict) and len(value) == 1:
            items, form = _strings(next(iter(value.values()))), "json_object"
        if items is not None:
            found.append((items, form))
        pos = end if items is not None else start + 1
    return found


def _unquote(item: str) -> str:
    for left, right in _QUOTES:
        if len(item) >= 2 and item.startswith(left) and item.endswith(right):
            return item[len(left) : -len(right)]
    return item


def _numbered(text: str) -> tuple[str, ...] | None:
    lines = [ln for ln in text.splitlines() if ln.strip() and not _FENCE.match(ln)]
    if lines and not _NUMBERED.match(lines[0]) and lines[0].rstrip().endswith(":"):
        lines = lines[1:]  # one preamble line ("Here are the rewrites:")
    matches = [_NUMBERED.match(ln) for ln in lines]
    if not lines or not all(matches):
        return None
    numbers = [int(m.group(1)) for m in matches if m]
    if numbers != list(range(1, len(numbers) + 1)):
        return None
    return tuple(_unquote(m.group(2)) for m in matches if m)


def parse_reply(text: str) -> ParsedReply:
    """Split a reply into rewrites, or say why it cannot be parsed.

    >>> parse_reply('Sure! Here it is:\\n```json\\n["Describe ⟦1⟧."]\\n```').rewrites
    ('Describe ⟦1⟧.',)
    >>> parse_reply("I cannot help with that.").problem
    'no JSON array of strings or numbered list found'
    """
    if len(text) > MAX_REPLY_CHARS:
        return ParsedReply((), f"reply is {len(text)} characters long (limit {MAX_REPLY_CHARS})")
    body = text.strip()
    if not body:
        return ParsedReply((), "empty reply")
    if body.startswith('"'):
        try:
            value, end = _DECODER.raw_decode(body)
        except ValueError:
            value, end = None, 0
        if isinstance(value, str) and end == len(body):
            return ParsedReply((value,), None, "json_string")
    found = _json_candidates(body)
    if len(found) == 1:
        return ParsedReply(found[0][0], None, found[0][1])
    if len(found) > 1:
        return ParsedReply((), f"ambiguous reply: {len(found)} separate JSON arrays")
    numbered = _numbered(body)
    if numbered is not None:
        return ParsedReply(numbered, None, "numbered")
    return ParsedReply((), "no JSON array of strings or numbered list found")
