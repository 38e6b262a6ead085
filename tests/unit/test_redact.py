from __future__ import annotations

import base64
import json
import logging
import sys

import pytest
from pydantic import SecretStr

from rag_service.logs import JsonFormatter, RedactingFormatter, TextFormatter
from rag_service.redact import REDACTED, Redactor, redact_url, url_secrets
from rag_service.settings import LLMSettings, Settings, StoreSettings

pytestmark = pytest.mark.unit

# RAG_LLM__BASE_URL's user info as written; the password is "p@ss wörd".
URL = "http://user:p%40ss%20w%C3%B6rd@llm.internal:8080/v1"
PAIR = "user:p@ss wörd"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@host:8080/v1", "http://host:8080/v1"),
        ("https://token@api.example.com/v1?x=1", "https://api.example.com/v1?x=1"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("http://[::1]:8080/v1", "http://[::1]:8080/v1"),
        ("http://a%40b:p%3Aw@[::1]:9/v1", "http://[::1]:9/v1"),
    ],
)
def test_urls_lose_their_user_info(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def echoes() -> list[str]:
    """The forms in which an endpoint or a proxy hands back the credential made from URL."""
    token = base64.b64encode(PAIR.encode()).decode()
    return [
        f"Authorization: Basic {token}",
        f"credential {token}",  # the bare token, no scheme to recognise it by
        f"credential {token.rstrip('=')}",
        base64.urlsafe_b64encode(PAIR.encode()).decode(),
        f"Authorization=Basic%20{token}",
        json.dumps({"authorization": ["Basic", token]}),
        PAIR,  # decoded
        json.dumps({"user": PAIR}),  # JSON-escaped: p@ss w\u00f6rd
        json.dumps({"user": PAIR}, ensure_ascii=False),
        "user:p%40ss%20w%C3%B6rd",  # as written in the URL
        "user:p%40ss%20w%c3%b6rd",  # percent-encoded in lower case
        "user%3Ap%40ss+w%C3%B6rd",  # form-encoded
        "http://user:p%40ss%20w%C3%B6rd@10.0.0.1/v1",
        "password was p@ss wörd",
    ]


@pytest.mark.parametrize("echo", echoes())
def test_every_form_of_a_url_credential_is_hidden(echo: str) -> None:
    redactor = Redactor(url_secrets(URL))
    assert REDACTED in redactor.hide(echo)
    for text in (redactor.hide(echo), redactor.excerpt(echo)):
        for secret in (
            "p@ss",
            "p%40ss",
            "ss w",
            "ss%20w",
            "ss+w",
            "dXNlcjpwQHNz",
            "dXNlcjpwQHNzIHfDtnJk",
        ):
            assert secret.lower() not in text.lower(), f"{secret!r} in {text!r}"


def test_hiding_touches_nothing_but_the_secrets() -> None:
    redactor = Redactor(url_secrets("http://rag:pw@h/v1"))
    # Not the user name alone (a name, often a common word), not a two-letter password alone...
    line = "rag_service.api: 2 passwords (pw) checked for user rag"
    assert redactor.hide(line) == line
    # ...but the pair and the Basic token, whatever their length.
    assert redactor.hide("rag:pw cmFnOnB3") == f"{REDACTED} {REDACTED}"
    assert Redactor().hide(line) == line


def test_the_settings_name_every_credential() -> None:
    settings = Settings(
        llm=LLMSettings(base_url=URL, api_key=SecretStr("sk-live-abcdef0123456789")),
        store=StoreSettings(chroma_auth_token=SecretStr("chroma-tok-42")),
    )
    redactor = Redactor.for_settings(settings)
    text = f"sk-live-abcdef0123456789 chroma-tok-42 {PAIR}"
    assert redactor.hide(text) == " ".join([REDACTED] * 3)
    assert Redactor.for_llm(settings.llm).hide(PAIR) == REDACTED


@pytest.mark.parametrize("inner", [JsonFormatter(), TextFormatter()])
def test_every_log_line_is_hidden_tracebacks_included(inner: logging.Formatter) -> None:
    formatter = RedactingFormatter(inner, Redactor(url_secrets(URL)))
    token = base64.b64encode(PAIR.encode()).decode()
    try:
        raise RuntimeError(f"upstream said {PAIR!r}")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.makeLogRecord(
        {"msg": "echoed %s", "args": (f"Basic {token}",), "exc_info": exc_info, "levelno": 40}
    )
    line = formatter.format(record)
    assert "echoed [redacted]" in line.replace("Basic ", "") and "RuntimeError" in line
    for secret in ("p@ss", "w\\u00f6rd", "wörd", token.rstrip("=")):
        assert secret not in line


def test_excerpts_remove_credential_shapes_and_truncate() -> None:
    text = (
        '{"headers": "Authorization: Bearer abc.def-123\\nX-Api-Key: k12", '
        '"api_key": "sk-proj-AbCdEf0123456789", "url": "http://u:p@h/v1", '
        "'password': 'hunter2', token=tok123}"
    )
    out = Redactor(("k12",)).excerpt(text)
    for secret in ("abc.def-123", "AbCdEf0123456789", "u:p@", "hunter2", "tok123", "k12"):
        assert secret not in out
    assert "http://h/v1" in out
    assert len(Redactor().excerpt("x" * 1000, limit=50)) <= 51
    assert Redactor().excerpt("Bearer\tsk-abcdefghijklmnop") == "Bearer [redacted]"
