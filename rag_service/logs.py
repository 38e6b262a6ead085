"""Logging for the CLI and the server: text for a person at a terminal, one JSON object per line
for a log collector. Every line logged while a request is handled carries its request id, and
no line carries a configured secret in any form (``redact.Redactor``): whatever logged it, an
upstream's echo, a library's message or a traceback."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from rag_service.redact import Redactor
from rag_service.settings import LogSettings, Settings

# Set by the API's middleware for the duration of a request.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field
# (except uvicorn's `color_message`, the message again with terminal colour codes).
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}

# Libraries that log every HTTP request they make at INFO (Chroma's client makes several per query).
_CHATTY = ("httpx", "httpcore", "chromadb", "sentence_transformers", "jieba")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (rid := request_id.get()) is not None:
            entry["request_id"] = rid
        entry.update((k, v) for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = request_id.get()
        return f"{line} [{rid}]" if rid is not None else line


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes, not what it was when logging
    was set up: a progress bar (rich's, in ``rag reindex``) swaps in a writer that prints above
    the bar, where a line written straight to the terminal would be torn by the next redraw."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always sys.stderr


class RedactingFormatter(logging.Formatter):
    """Another formatter's lines with the secrets hidden: the one place every line passes."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self._inner = inner
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.hide(self._inner.format(record))


def use_json(settings: LogSettings) -> bool:
    return settings.format == "json" or (settings.format == "auto" and not sys.stderr.isatty())


def configure_logging(settings: Settings, level: str | None = None) -> None:
    """Route every logger (uvicorn's included) through one handler on stderr, with the secrets
    ``settings`` hold hidden."""
    handler = _StderrHandler()
    formatter = JsonFormatter() if use_json(settings.log) else TextFormatter()
    handler.setFormatter(RedactingFormatter(formatter, Redactor.for_settings(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or settings.log.level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
