"""Keeping credentials out of what the service shows: URLs without their user info, every line
it logs free of the secrets it was configured with, and text from elsewhere (an upstream's error
body) scrubbed of anything that looks like a secret.

A secret comes back in more forms than it was given in: an endpoint or proxy that echoes a
request shows the Basic token an HTTP client made of ``user:password@`` (base64, which no
pattern can tell from any other word), the pair decoded, the password percent-encoded as in the
URL or decoded, inside a JSON string with its quotes escaped. ``Redactor`` knows each configured
secret in all of these forms and replaces exactly those strings, so it can run over every log
line (``logs.py``) without touching anything else.

Upstream bodies are never relayed to callers at all (they get a digest); ``Redactor.excerpt``
is for the server's log, where an operator needs a hint of what came back. Beyond the configured
secrets it knows the shapes of common credentials, a second line rather than a guarantee.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

if TYPE_CHECKING:
    from rag_service.settings import LLMSettings, Settings

REDACTED = "[redacted]"

# Shorter strings are not replaced on their own: a two-letter password would turn every line
# into confetti. Its pair with the user name and its Basic token are long enough and still go.
MIN_SECRET_CHARS = 3

# user:password@ (or token@) right after a scheme, anywhere in a text.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]*@")
_PATTERNS = (
    # Authorization: Bearer x / Basic x / token x, a bare "Bearer x", and the same URL- or
    # form-encoded (Basic%20x, Basic+x).
    re.compile(r"(?i)\b(bearer|basic|token)(\s+|%20|\+)[A-Za-z0-9._~+/=-]+"),
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


def url_secrets(url: str) -> tuple[str, ...]:
    """What the user info of ``url`` holds: the password and the whole ``user:password`` (or a
    lone token), as written (percent-encoded) and decoded, and the Basic token an HTTP client
    sends for them. Not the user name alone: a name, not a secret, and often a common word."""
    try:
        userinfo = urlsplit(url).netloc.rpartition("@")[0]
    except ValueError:
        userinfo = ""
    if not userinfo:
        return ()
    user, _, password = userinfo.partition(":")
    pair = f"{unquote(user)}:{unquote(password)}"
    token = base64.b64encode(pair.encode()).decode()
    # A proxy may re-encode the token URL-safe, or drop its padding.
    tokens = (token, token.rstrip("="), base64.urlsafe_b64encode(pair.encode()).decode())
    return (userinfo, password, pair, *tokens)


def _forms(secret: str) -> set[str]:
    """``secret`` as it may be echoed: decoded, percent- or form-encoded, inside JSON."""
    plain = {secret, unquote(secret), unquote_plus(secret)}
    encoded = {quote(s, safe="") for s in plain} | {quote_plus(s, safe="") for s in plain}
    in_json = {json.dumps(s, ensure_ascii=ascii)[1:-1] for s in plain for ascii in (True, False)}
    return plain | encoded | in_json


class Redactor:
    """Replaces the given secrets, in every form of them, with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = {form for s in secrets if s for form in _forms(s)}
        kept = sorted((f for f in forms if len(f) >= MIN_SECRET_CHARS), key=len, reverse=True)
        # Longest first, so a pair goes whole before its parts; case-blind, as percent-encoding
        # is (%3a is %3A), at the price of hiding a string that differs from a secret in case.
        self._pattern = re.compile("|".join(map(re.escape, kept)), re.IGNORECASE) if kept else None

    @classmethod
    def for_llm(cls, llm: LLMSettings) -> Redactor:
        """The OpenAI-compatible endpoint's key and the user info of its URL."""
        return cls((llm.api_key.get_secret_value(), *url_secrets(llm.base_url)))

    @classmethod
    def for_settings(cls, settings: Settings) -> Redactor:
        """Every credential the settings hold: the LLM endpoint's and the Chroma server's."""
        llm = settings.llm
        return cls(
            (
                llm.api_key.get_secret_value(),
                *url_secrets(llm.base_url),
                settings.store.chroma_auth_token.get_secret_value(),
            )
        )

    def hide(self, text: str) -> str:
        """``text`` with every form of the secrets replaced; nothing else changes."""
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text

    def excerpt(self, text: str, limit: int = 200) -> str:
        """Foreign ``text`` on one line, the secrets and anything shaped like a credential
        replaced, cut to ``limit`` characters."""
        text = _URL_USERINFO.sub(r"\1", self.hide(text))
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
