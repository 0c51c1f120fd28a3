"""Every secret this process holds, and one function that removes them from any text.

Keys and tokens reach the process from the environment (``OPENAI_API_KEY``, ``LABEL_STUDIO_API_KEY``, …) and
from requests (a project's ``api_key`` in its extra params, the ``access_token`` that ``/setup`` received).
Providers and Label Studio sometimes echo them in error bodies, so every text that leaves through an error
message, a job's ``errors``, the log or Redis passes through ``redact`` first: the secrets are remembered
where they are read, and removed wherever text leaves, rather than trusting each call site to know them.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values (a test password "pw") would mask ordinary words


class SecretRegistry:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def remember(self, *values: str | SecretStr | None) -> None:
        fresh = set()
        for value in values:
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if isinstance(text, str) and len(text) >= MIN_SECRET_LENGTH and text not in self._values:
                fresh.add(text)
        if fresh:
            with self._lock:
                self._values |= fresh
                # Longest first, so a secret that contains another is masked whole.
                alternatives = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(value) for value in alternatives))

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None and text else text


_registry = SecretRegistry()
remember = _registry.remember
redact = _registry.redact


def remember_settings(settings: Any) -> None:
    """The secrets of the environment: keys, passwords, and the password inside ``REDIS_URL``."""
    flower = settings.flower_basic_auth.get_secret_value() if settings.flower_basic_auth else None
    remember(
        settings.openai_api_key,
        settings.label_studio_api_key,
        settings.basic_auth_pass,
        flower,
        flower.partition(":")[2] if flower else None,
        urlsplit(settings.redis_url).password,
    )


def remember_extra_params(extra_params: dict[str, Any] | None) -> None:
    """A project's own ``api_key`` (under any of the names extra params accept)."""
    for key, value in (extra_params or {}).items():
        if str(key).lower() in ("api_key", "openai_api_key") and isinstance(value, str):
            remember(value)


class RedactingFilter(logging.Filter):
    """Masks secrets in every record a handler writes, whoever logged it (our code, Celery, gunicorn)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
