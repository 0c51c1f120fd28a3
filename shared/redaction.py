"""Every secret this process holds, and one function that removes them from any text.

Keys and tokens reach the process from the environment (``OPENAI_API_KEY``, ``LABEL_STUDIO_API_KEY``, …) and
from requests (a project's ``api_key`` in its extra params, the ``access_token`` that ``/setup`` received).
Providers and Label Studio sometimes echo them in error bodies, so every text that leaves through an error
message, a job's ``errors``, the log or Redis passes through ``redact`` first: the secrets are remembered
where they are read, and removed wherever text leaves, rather than trusting each call site to know them.

An echo is not always the key as written: a provider may show it base64-encoded (an ``Authorization: Basic``
header), URL-encoded (a query string), or cut short (``sk-proj-abcdefgh…``).  So each secret is masked in
these forms too (``encoded_forms``: base64 and base64url with and without padding, also where it was encoded
inside a longer value, and percent-encoding), and of every form of ``MIN_FRAGMENT_SECRET`` characters or more,
any ``MIN_FRAGMENT`` characters or more are masked wherever they stand.  Such runs are found by looking up, at
every ``FRAGMENT_STRIDE``-th character of the text, the ``_SEED`` characters there in an index of every piece
of that length of those forms, and extending a hit both ways: a run of ``MIN_FRAGMENT`` characters always
holds a looked-up piece, so a text costs one dictionary look-up per ``FRAGMENT_STRIDE`` characters whatever the
number of secrets.  Shorter forms are masked whole, by one regular expression.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from pydantic import SecretStr

MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values (a test password "pw") would mask ordinary words
MIN_FRAGMENT_SECRET = 16  # secrets this long are also masked when cut short …
MIN_FRAGMENT = 12  # … down to this many characters: no ordinary word shares 12 characters with a random key
_SEED = 6
FRAGMENT_STRIDE = MIN_FRAGMENT - _SEED + 1  # every run of MIN_FRAGMENT characters holds a piece starting here
_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _base64_forms(secret: bytes) -> set[str]:
    """The secret in base64 and base64url, with and without padding, and the part of its encoding that does not
    depend on what surrounds it when it was encoded inside a longer value ("user:KEY" in a Basic header): its
    encoding at each of the three byte offsets, less the characters that also hold bits of the neighbours."""
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(secret).decode()
        forms |= {whole, whole.rstrip("=")}
        for offset in range(3):
            encoded = encode(bytes(offset) + secret).decode()
            first, end = -(-8 * offset // 6), 8 * (offset + len(secret)) // 6  # characters holding only its bits
            forms.add(encoded[first:end])
    return forms


def encoded_forms(secret: str) -> set[str]:
    """The ways a provider or a proxy may write ``secret`` in what it sends back, the secret itself included."""
    percent = {quote(secret, safe=""), quote_plus(secret, safe="")}
    lower_escapes = {_PERCENT_ESCAPE.sub(lambda escape: escape.group().lower(), form) for form in percent}
    forms = {secret} | percent | lower_escapes | _base64_forms(secret.encode())
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class SecretRegistry:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._short_forms: set[str] = set()  # the forms shorter than MIN_FRAGMENT_SECRET, masked whole …
        self._short: re.Pattern[str] | None = None  # … by this pattern
        self._pieces: dict[
            str, list[tuple[str, int]]
        ] = {}  # each _SEED-character piece of a longer form → (form, where)
        self._lock = threading.Lock()

    def remember(self, *values: str | SecretStr | None) -> None:
        fresh = set()
        for value in values:
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if isinstance(text, str) and len(text) >= MIN_SECRET_LENGTH and text not in self._values:
                fresh.add(text)
        if not fresh:
            return
        forms = {form for value in fresh for form in encoded_forms(value)}
        with self._lock:
            self._values |= fresh
            short = {form for form in forms if len(form) < MIN_FRAGMENT_SECRET}
            if not short <= self._short_forms:
                self._short_forms |= short
                # Longest first, so a secret that contains another is masked whole.
                alternatives = sorted(self._short_forms, key=len, reverse=True)
                self._short = re.compile("|".join(re.escape(form) for form in alternatives))
            for form in forms - short:  # added in place: a reader sees a piece's forms before or after, both masked
                for at in range(len(form) - _SEED + 1):
                    self._pieces.setdefault(form[at : at + _SEED], []).append((form, at))

    def _fragments(self, text: str) -> list[tuple[int, int]]:
        """Where runs of MIN_FRAGMENT or more characters of a long form stand in ``text``, as (start, end)."""
        pieces = self._pieces
        found: list[tuple[int, int]] = []
        for at in range(0, len(text) - _SEED + 1, FRAGMENT_STRIDE):
            for form, where in pieces.get(text[at : at + _SEED], ()):
                back = 0
                while back < min(at, where) and text[at - back - 1] == form[where - back - 1]:
                    back += 1
                ahead = _SEED
                while at + ahead < len(text) and where + ahead < len(form) and text[at + ahead] == form[where + ahead]:
                    ahead += 1
                if back + ahead >= MIN_FRAGMENT:
                    found.append((at - back, at + ahead))
        return found

    def redact(self, text: str) -> str:
        if not text:
            return text
        runs = self._fragments(text) if self._pieces else []
        if runs:
            kept, done = [], 0
            for start, end in sorted(runs):  # overlapping runs are masked as one
                if start >= done:
                    kept += [text[done:start], MASK]
                done = max(done, end)
            text = "".join(kept) + text[done:]
        short = self._short
        return short.sub(MASK, text) if short is not None else text


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
