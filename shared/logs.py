"""Logging set-up shared by every entry point: text, or one JSON object a line (LOG_FORMAT=json).

Records carry the job and task being worked on (``job_id``, ``task_id``) when there is one: set with
``log_context`` around the work, so every line logged inside it, by any module, says which job.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator

from shared.redaction import RedactingFilter

_context: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar("log_context", default=None)


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    token = _context.set(
        {**(_context.get() or {}), **{key: value for key, value in fields.items() if value is not None}}
    )
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    FIELDS = ("job_id", "task_id", "chunk")

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        line.update({key: getattr(record, key) for key in self.FIELDS if hasattr(record, key)})
        if record.exc_info:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter())
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # The HTTP clients log request lines (with URLs, never bodies) at DEBUG/INFO; keep them quiet.
    for noisy in ("httpx", "httpx2", "httpcore", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
