"""Logging set-up: readable lines in development, one JSON object per line in production."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from zapflow.config import Settings

# uvicorn adds `color_message`, a duplicate of the message with terminal colours
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {
    "message", "asctime", "taskName", "color_message",
}  # fmt: skip


# One id follows a delivery from the webhook through the relay and the workflow's activities to
# the send; every log line written while handling it carries the id.
CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)


# A webhook URL's last segments are its bearer token (and, on the Cloud API handshake, the verify
# token in the query): whatever logs a URL (uvicorn's access log, an error naming a request, an
# HTTP client's error) writes them, so every line is cleaned when it is formatted.
_WEBHOOK_URL = re.compile(r"(/webhooks/(?:cloud|evolution))/[^\s\"'\\]+")


def redact(line: str) -> str:
    return _WEBHOOK_URL.sub(r"\1/<redacted>", line) if "/webhooks/" in line else line


class CorrelationFilter(logging.Filter):
    """Adds the correlation id; also renames uvicorn's server logger, which is called
    "uvicorn.error" although it logs everything, so its lines do not read as errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.error":
            record.name = "uvicorn"
        correlation_id = CORRELATION_ID.get()
        if correlation_id and not hasattr(record, "correlation_id"):
            record.correlation_id = correlation_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return redact(line)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else ConsoleFormatter())
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
