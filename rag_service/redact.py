"""Keeping credentials out of what the service shows: URLs without their user info, and text
from elsewhere (an upstream's error body) scrubbed of anything that looks like a secret.

Upstream bodies are never relayed to callers at all (they get a digest); the scrubbed excerpt
is for the server's log, where an operator needs a hint of what came back. Scrubbing is a
second line, not a guarantee: it knows the shapes of common credentials and the literal
secrets it is given, so callers pass the ones they hold.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"

# user:password@ (or token@) right after a scheme, anywhere in a text.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]*@")
_PATTERNS = (
    # Authorization: Bearer x / Basic x / token x, and a bare "Bearer x".
    re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]+"),
    # OpenAI-style keys, and the like: sk-..., sk-proj-..., rk-...
    re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_-]{8,}"),
    # key = value / "key": "value" for names that hold secrets.
    re.compile(
        r"(?i)((?:api[_-]?key|x-api-key|token|secret|password|passwd|authorization|cookie)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\"'\s,;}&\\]+"
    ),
)


def redact_url(url: str) -> str:
    """``url`` without ``user:password@``, for display; unparseable input is scrubbed."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_USERINFO.sub(r"\1", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def scrub(text: str, secrets: Iterable[str] = (), limit: int = 200) -> str:
    """``text`` on one line, credentials replaced, cut to ``limit`` characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _URL_USERINFO.sub(r"\1", text)
    for pattern in _PATTERNS:
        text = pattern.sub(_keep_label, text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _keep_label(match: re.Match[str]) -> str:
    if match.re is _PATTERNS[1]:
        return f"{match.group(1)}-{REDACTED}"
    return f"{match.group(1)}{match.group(2) if match.re is _PATTERNS[0] else ''}{REDACTED}"


def digest(data: bytes) -> str:
    """A short fingerprint of a body: enough to match a caller's report with the log."""
    return hashlib.sha256(data).hexdigest()[:12]
