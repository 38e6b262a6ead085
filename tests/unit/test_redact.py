from __future__ import annotations

import pytest

from rag_service.redact import redact_url, scrub

pytestmark = pytest.mark.unit


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


def test_scrub_removes_credentials_and_truncates() -> None:
    text = (
        '{"headers": "Authorization: Bearer abc.def-123\\nX-Api-Key: k1", '
        '"api_key": "sk-proj-AbCdEf0123456789", "url": "http://u:p@h/v1", '
        "'password': 'hunter2', token=tok123}"
    )
    out = scrub(text, secrets=("k1",))
    for secret in ("abc.def-123", "AbCdEf0123456789", "u:p@", "hunter2", "tok123", "k1"):
        assert secret not in out
    assert "http://h/v1" in out
    assert len(scrub("x" * 1000, limit=50)) <= 51
    assert scrub("Bearer\tsk-abcdefghijklmnop") == "Bearer [redacted]"
