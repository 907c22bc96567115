"""Structured logging: plain text for a terminal, one JSON object per line for collectors."""

from __future__ import annotations

import json
import logging
import sys
import time

from .wiretext import escape

__all__ = ["setup_logging"]


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": escape(record.getMessage()),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: message``; the message escaped so that a CR or an invalid byte
    from the wire (a Call-ID, a header) can neither forge a line nor break the write."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once, to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
