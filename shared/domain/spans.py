"""From quoted entities to character offsets in the task's text.

The model quotes each entity as written (models quote well and count characters badly); here each
quote is found in the text.  Offsets are Python ``str`` indices, i.e. Unicode code points, which is
what Label Studio's ``Text`` stores (its editor converts the browser's UTF-16 positions to code
points), and ``text[start:end]`` is always the region's text.

- The same quote listed again means the next occurrence: the n-th listing of "Paris" is the n-th
  "Paris" of the text that no earlier listing took.  A start hint instead picks the free occurrence
  nearest to it.
- An exact match is preferred; failing that, a match ignoring case and runs of whitespace (the
  region then holds the text as written in the source, not the quote).
- A quote found nowhere, or listed more often than it occurs, is not placed; the caller reports it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

LOOSE_MATCH_CONFIDENCE = 0.9


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str
    confidence: float  # 1.0 for the exact quote, lower when found ignoring case or spacing


def _exact_occurrences(text: str, quote: str) -> list[tuple[int, int]]:
    found, at = [], text.find(quote)
    while at != -1:
        found.append((at, at + len(quote)))
        at = text.find(quote, at + 1)
    return found


def _loose_occurrences(text: str, quote: str) -> list[tuple[int, int]]:
    words = quote.split()
    if not words:
        return []
    pattern = re.compile(r"\s+".join(re.escape(word) for word in words), re.IGNORECASE)
    found, at = [], 0
    while (match := pattern.search(text, at)) is not None:
        found.append(match.span())
        at = match.start() + 1
    return found


def locate(
    text: str, quotes: Sequence[tuple[str, int | None]], taken: set[tuple[int, int]] | None = None
) -> list[Span | None]:
    """Place each ``(quote, start hint)`` in ``text``, in order; None where it cannot be placed.

    ``taken`` holds the ``(start, end)`` occurrences already used, and is updated: pass the same set to
    place further quotes in the same text.
    """
    taken = set() if taken is None else taken
    placed: list[Span | None] = []
    for quote, hint in quotes:
        span = None
        if quote and quote.strip():
            for occurrences, confidence in (
                (_exact_occurrences(text, quote), 1.0),
                (_loose_occurrences(text, quote), LOOSE_MATCH_CONFIDENCE),
            ):
                free = [occurrence for occurrence in occurrences if occurrence not in taken]
                if free:
                    start, end = free[0] if hint is None else min(free, key=lambda o: (abs(o[0] - hint), o[0]))
                    taken.add((start, end))
                    span = Span(start, end, text[start:end], confidence)
                    break
        placed.append(span)
    return placed
