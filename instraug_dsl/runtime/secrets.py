"""Credentials never reach disk or the terminal: strip them from URLs and error texts.

Applied to everything the runtime writes or prints that could carry one: the
``--api-base`` recorded in ``summary.json``, and every backend error message (servers
sometimes echo the key they were sent, and URLs in messages may carry user-info or a
``?token=`` query).  Three layers, all in :func:`redact`:

* URLs lose their user-info and every query value (:func:`redact_url`);
* secret-looking shapes are masked (``Bearer ...``, ``Basic ...``, ``sk-...``,
  ``api_key=...``, ``token: ...``);
* the *known* secrets of a call are masked wherever they appear, whatever their shape
  (:func:`call_secrets`: the API key, the user name, password and query values of the
  server address, and the values of credential-like environment variables).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
# Common secret shapes in free text: bearer/basic credentials, sk-... keys, key=value pairs.
_SHAPES = (
    re.compile(r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
    re.compile(
        r"(?i)\b((?:api[_-]?key|access[_-]?token|token|secret|password|key)\s*[=:]\s*)"
        r"[^\s&'\",;]+"
    ),
)
# Environment variables whose values are credentials (OPENAI_API_KEY, HF_TOKEN, ...).
_CREDENTIAL_NAME = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)")
# Shorter values are too likely to be ordinary words to mask everywhere.
_MIN_KNOWN = 4
_MIN_ENV = 8
MASK = "***"


def redact_url(url: str) -> str:
    """``url`` without user-info and with every query value masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc.rsplit("@", 1)[-1] if "@" in parts.netloc else parts.netloc
    query = "&".join(
        f"{pair.split('=', 1)[0]}={MASK}" if "=" in pair else pair
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_secrets(url: str | None) -> list[str]:
    """The credentials inside a URL: user name, password and query values (raw and decoded)."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found += [userinfo, *userinfo.split(":", 1)]
    for pair in parts.query.split("&"):
        if "=" in pair:
            found.append(pair.split("=", 1)[1])
    return [s for text in found for s in {text, unquote(text)} if s]


def env_secrets() -> list[str]:
    """Values of credential-like environment variables (``*_API_KEY``, ``*_TOKEN``...)."""
    return [
        value
        for name, value in os.environ.items()
        if _CREDENTIAL_NAME.search(name) and len(value) >= _MIN_ENV
    ]


def call_secrets(api_key: str | None, api_base: str | None) -> list[str]:
    """Every credential a model call may carry: masked wherever they appear."""
    return [*([api_key] if api_key else []), *url_secrets(api_base), *env_secrets()]


def mask_known(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each given secret (of at least 4 characters) masked, longest first."""
    out = text
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_KNOWN}, key=len, reverse=True):
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with URLs' credentials, secret-looking tokens and the given secrets masked."""
    known = list(secrets)
    out = mask_known(text, known)  # first, before the shapes below cut a secret in two
    out = _URL.sub(lambda m: redact_url(m.group(0)), out)
    for pattern in _SHAPES:
        out = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + MASK, out)
    return mask_known(out, known)
