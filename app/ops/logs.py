"""Structured logs: one JSON object per line on stderr, tokens never written.

Everything the server wants an operator to see goes through `log_event(event, **fields)` on the
`nn_playground` logger: worker deaths, 429s (rate limit and quotas), slow-client closes and
websocket disconnects. A line looks like

    {"ts": "2026-12-02T11:30:00.123Z", "level": "warning", "logger": "nn_playground.ops",
     "event": "worker_lost", "worker": 0, "pid": 4242, "exitcode": -9, "sessions": 3}

`Redact` (on the logger and on the handler) rewrites `Authorization` values, `Bearer ...`,
fields named like a token and anything token-shaped (32+ URL-safe characters, e.g. the 43 of
an owner token) to "[redacted]", so no code path can log a usable token by mistake.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

LOGGER_NAME = "nn_playground"
logger = logging.getLogger(f"{LOGGER_NAME}.ops")

REDACTED = "[redacted]"
# An owner token is token_urlsafe(32): 43 characters of [A-Za-z0-9_-]; session ids are 12.
# Anything that long and that shape (hex hashes included) is not worth the risk of logging.
TOKEN_SHAPED = re.compile(r"[A-Za-z0-9_\-]{32,}")
BEARER = re.compile(r"(?i)\b(bearer|basic)\s+\S+")
SECRET_KEYS = re.compile(r"(?i)authorization|token|secret|password|cookie")
# Standard LogRecord attributes: everything else in record.__dict__ came from `extra`.
RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def redact(value: Any) -> Any:
    """The value with every token-like part replaced (strings, and inside dicts and lists)."""
    if isinstance(value, str):
        return TOKEN_SHAPED.sub(REDACTED, BEARER.sub(rf"\1 {REDACTED}", value))
    if isinstance(value, dict):
        return {
            key: REDACTED if SECRET_KEYS.search(str(key)) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


class Redact(logging.Filter):
    """Rewrites a record's message and extra fields so no token reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "_redacted", False):
            record.msg = redact(record.getMessage())
            record.args = None
            for key in set(record.__dict__) - RECORD_KEYS:
                record.__dict__[key] = (
                    REDACTED if SECRET_KEYS.search(key) else redact(record.__dict__[key])
                )
            record._redacted = True
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC), level, logger, event or message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        message = record.getMessage()
        line["event" if getattr(record, "event", None) == message else "message"] = message
        for key in sorted(set(record.__dict__) - RECORD_KEYS):
            if key not in ("event", "_redacted", "color_message"):  # uvicorn's ANSI twin
                line[key] = record.__dict__[key]
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str, ensure_ascii=False)


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time (so pytest's capture sees the lines)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass  # StreamHandler.__init__ assigns one; the property always answers sys.stderr


def configure_logging(level: str = "INFO") -> None:
    """Send the nn_playground loggers to stderr as JSON lines (idempotent: create_app is called
    once per test). Records still propagate, so pytest's caplog sees them too."""
    root = logging.getLogger(LOGGER_NAME)
    root.setLevel(level.upper())
    if not any(isinstance(handler, StderrHandler) for handler in root.handlers):
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(Redact())
        root.addHandler(handler)
    if not any(isinstance(f, Redact) for f in logger.filters):
        logger.addFilter(Redact())


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's own loggers (startup, errors, access lines) as the same redacted JSON lines:
    pass as `uvicorn.run(..., log_config=...)`, so everything on stderr parses one way."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": Redact}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": f"{__name__}.StderrHandler", "formatter": "json",
                       "filters": ["redact"]},
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["stderr"], "level": level.upper(),
                               "propagate": False},
        },
    }


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one operational event as a JSON line: `event` names it, fields are its facts."""
    try:
        logger.log(level, event, extra={"event": event, **fields})
    except Exception:  # a log line must never break the request or the handler that logs it
        logger.exception("could not log %s", event)
