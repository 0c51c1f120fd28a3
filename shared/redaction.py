"""Every secret this process holds, and one function that removes them from any text.

Keys and tokens reach the process from the environment (``OPENAI_API_KEY``, ``LABEL_STUDIO_API_KEY``, …) and
from requests (a project's ``api_key`` in its extra params, the ``access_token`` that ``/setup`` received).
Providers and Label Studio sometimes echo them in error bodies, so every text that leaves through an error
message, a job's ``errors``, the log or Redis passes through ``redact`` first: the secrets are remembered
where they are read, and removed wherever text leaves, rather than trusting each call site to know them.

An echo is not always the key as written: a provider may show it base64-encoded (an ``Authorization: Basic``
header), URL-encoded (a query string), or cut short (``sk-proj-abcdefgh…``).  So each secret is masked in
these forms too (``encoded_forms``: base64 and base64url with and without padding, also where it was encoded
inside a longer value, and percent-encoding), and any ``MIN_FRAGMENT`` characters or more of a secret of
``MIN_FRAGMENT_SECRET`` or more are masked wherever they stand.

Hundreds of projects' keys are remembered, so the text is not matched against each of them (one regular
expression of every form slows down with each key remembered).  Instead the ``_SEED`` characters at every
``STRIDE``-th position of the text are looked up in indexes: a form of ``MIN_FRAGMENT`` characters or more is
indexed by the pieces at the ``STRIDE`` positions that end its last ``MIN_FRAGMENT`` characters (one of them
falls on a looked-up position wherever the form stands), and a piece of a secret leads to the
``MIN_FRAGMENT``-character slices around it, indexed too.  A text costs about one look-up per ``STRIDE``
characters whatever the number of secrets; shorter forms are masked whole, by one regular expression.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from pydantic import SecretStr

from shared.domain.config import Settings

MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values (a test password "pw") would mask ordinary words
MIN_FRAGMENT_SECRET = 16  # secrets this long are also masked when cut short …
MIN_FRAGMENT = 12  # … down to this many characters: no ordinary word shares 12 characters with a random key
_SEED = 6
STRIDE = MIN_FRAGMENT - _SEED + 1  # every run of MIN_FRAGMENT characters holds a piece starting at a multiple
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
        self._short_forms: set[str] = set()  # forms shorter than MIN_FRAGMENT, masked whole …
        self._short: re.Pattern[str] | None = None  # … by this pattern
        self._forms: dict[str, list[tuple[str, int]]] = {}  # piece → (longer form, where the piece is in it)
        self._pieces: set[str] = set()  # every piece of the secrets masked when cut short …
        self._slices: dict[str, list[tuple[str, int]]] = {}  # … and their MIN_FRAGMENT slices → (secret, where)
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
        short = {form for form in forms if len(form) < MIN_FRAGMENT}
        with self._lock:  # the indexes grow in place: a reader sees a secret either not yet or wholly masked
            self._values |= fresh
            if not short <= self._short_forms:
                self._short_forms |= short
                # Longest first, so a secret that contains another is masked whole.
                alternatives = sorted(self._short_forms, key=len, reverse=True)
                self._short = re.compile("|".join(re.escape(form) for form in alternatives))
            for form in forms - short:
                for where in range(len(form) - MIN_FRAGMENT, len(form) - _SEED + 1):
                    self._forms.setdefault(form[where : where + _SEED], []).append((form, where))
            for secret in (value for value in fresh if len(value) >= MIN_FRAGMENT_SECRET):
                self._pieces.update(secret[where : where + _SEED] for where in range(len(secret) - _SEED + 1))
                for where in range(len(secret) - MIN_FRAGMENT + 1):
                    self._slices.setdefault(secret[where : where + MIN_FRAGMENT], []).append((secret, where))

    def _found(self, text: str) -> list[tuple[int, int]]:
        """Where forms and runs of MIN_FRAGMENT or more characters of a secret stand in ``text``: (start, end)."""
        found: list[tuple[int, int]] = []
        fragments_until = 0  # a fragment found reaches here: the pieces before it need no second look
        for at in range(0, len(text) - _SEED + 1, STRIDE):
            piece = text[at : at + _SEED]
            for form, where in self._forms.get(piece, ()):
                if at >= where and text.startswith(form, at - where):
                    found.append((at - where, at - where + len(form)))
            if at < fragments_until or piece not in self._pieces:
                continue
            for start in range(max(0, at + _SEED - MIN_FRAGMENT), at + 1):  # the slices holding the piece
                slices = self._slices.get(text[start : start + MIN_FRAGMENT], ())
                if slices:
                    fragments_until = max(_run_end(text, start, secret, where) for secret, where in slices)
                    found.append((start, fragments_until))
                    break
        return found

    def redact(self, text: str) -> str:
        if not text:
            return text
        runs = self._found(text) if self._forms else []
        if runs:
            kept, done = [], 0
            for start, end in sorted(runs):  # overlapping runs are masked as one
                if start >= done:
                    kept += [text[done:start], MASK]
                done = max(done, end)
            text = "".join(kept) + text[done:]
        short = self._short
        return short.sub(MASK, text) if short is not None else text


def _run_end(text: str, start: int, secret: str, where: int) -> int:
    """Where the run of ``secret[where:]`` that starts at ``text[start]`` (MIN_FRAGMENT characters at least) ends."""
    length = MIN_FRAGMENT
    while (
        start + length < len(text) and where + length < len(secret) and text[start + length] == secret[where + length]
    ):
        length += 1
    return start + length


_registry = SecretRegistry()
remember = _registry.remember
redact = _registry.redact


def remember_settings(settings: Settings) -> None:
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
