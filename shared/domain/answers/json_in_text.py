"""The first JSON value written in a model's prose, found at a cost bounded by a few passes over the answer.

The one reader of JSON in prose, for the answer object of every output mode (``json_object_in``) and for the
labels of a free-text answer (``first_json``).  A Markdown fence's content is tried first; then the answer is
tried from each ``{`` (or ``[``) in turn until one starts a JSON value, which is what reads
``Here is the answer: {"label": …}``.  A hostile answer can make that slow in
three ways, each bounded here:

- each attempt long: ``[`` five hundred times and then a long unterminated list is read five hundred times over.
  Failed attempts are charged the characters they read, and the search stops (the answer is then read as
  prose, or kept as text) once they have read ``JSON_SCAN_PASSES`` times the answer (and at least
  ``JSON_SCAN_FLOOR`` characters);
- each failure dear: ``json`` counts the lines before the error's position to report it, which on the whole
  answer costs its length per failure.  An attempt decodes a window of the answer that starts where it starts
  (``FIRST_WINDOW`` characters, doubled while the error may be the window's cut), so a failure costs its own
  length;
- deep nesting: ``[`` a hundred thousand times makes the parser raise RecursionError, which ends the search; a
  value nested more than ``MAX_JSON_DEPTH`` levels is no answer either, as the readers walk it recursively.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from shared.domain.untrusted import MAX_JSON_DEPTH

JSON_SCAN_PASSES = 8  # answers with a few stray braces read well under one pass; pathological ones stop here
JSON_SCAN_FLOOR = 1_000_000  # characters any answer may have read (a few milliseconds): short answers never stop
FIRST_WINDOW = 256
# How near a window's end an error may be caused by the cut: inside "-Infinity", an escape or a number.
_CUT_MARGIN = 16
_UNTERMINATED = "Unterminated string"  # json reports where the string starts; it read to the window's end
_FENCE = re.compile(r"```(?:json|JSON)?\s*+(.*?)```", re.DOTALL)  # `\s*+`: spaces read once, not once per retry


def nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects in a parsed JSON value nest more than ``limit`` levels (walked level by
    level, without recursion)."""
    level: list[Any] = [value]
    for _ in range(limit + 1):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


def _decode_at(decoder: json.JSONDecoder, text: str, start: int) -> tuple[Any, int]:
    """The JSON value starting at ``start`` and the characters read; the value is None when there is none there.

    Raises RecursionError when the value nests deeper than the parser can recurse."""
    size = FIRST_WINDOW
    while True:
        window = text[start : start + size]
        try:
            value, end = decoder.raw_decode(window)
        except json.JSONDecodeError as exc:
            unterminated = exc.msg.startswith(_UNTERMINATED)
            if start + size < len(text) and (unterminated or exc.pos >= len(window) - _CUT_MARGIN):
                size = min(2 * size, len(text) - start)
                continue
            return None, len(window) if unterminated else exc.pos + 1
        return value, end


def json_values(text: str, openers: str) -> Iterator[dict[str, Any] | list[Any]]:
    """The JSON objects and arrays that start at one of the characters ``openers`` (``"{"``, ``"[{"``) of
    ``text``, in text order, within the bounds of the module's docstring."""
    decoder = json.JSONDecoder()
    allowance = max(JSON_SCAN_PASSES * len(text), JSON_SCAN_FLOOR)
    for opener in re.finditer(f"[{re.escape(openers)}]", text):
        try:
            value, read = _decode_at(decoder, text, opener.start())
        except RecursionError:
            return
        if value is not None and not nests_deeper_than(value, MAX_JSON_DEPTH):
            yield value
        allowance -= read
        if allowance < 0:
            return


def first_json(text: str | None, openers: str) -> dict[str, Any] | list[Any] | None:
    """The first JSON value starting at one of ``openers`` in a model's answer: inside a ``` fence first (where a
    model that writes prose puts its answer), else anywhere (bare, or after some words)."""
    if not text:
        return None
    candidates = [match.group(1) for match in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        found = next(json_values(candidate, openers), None)
        if found is not None:
            return found
    return None


def json_object_in(text: str | None) -> dict[str, Any] | None:
    """The first JSON object in ``text``: inside a ``` fence, bare, or after some words."""
    found = first_json(text, "{")
    return found if isinstance(found, dict) else None
