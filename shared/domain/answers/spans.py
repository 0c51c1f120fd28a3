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

The answer may list thousands of quotes, many of them the same one-letter word, and the text may hold
it tens of thousands of times.  So occurrences are found lazily (``str.find`` and ``str.rfind`` from
where the last search stopped, the loose pattern from where its last match started) and remembered per
quote, and a run of taken occurrences is jumped over in one step (its first taken occurrence points past
it): placing a quote costs about the distance to its free occurrence, not the number of occurrences.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

LOOSE_MATCH_CONFIDENCE = 0.9

Occurrence = tuple[int, int]


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str
    confidence: float  # 1.0 for the exact quote, lower when found ignoring case or spacing


def _walk(
    first: int | None, step: Callable[[int], int | None], is_taken: Callable[[int], bool], jumps: dict[int, int | None]
) -> int | None:
    """The first key from ``first`` on (following ``step``) that ``is_taken`` refuses, None when there is
    none; the taken keys passed point at it afterwards, so the next walk crosses them in one step."""
    passed = []
    key = first
    while key is not None and is_taken(key):
        passed.append(key)
        key = jumps[key] if key in jumps else step(key)
    for taken in passed:
        jumps[taken] = key
    return key


def _nearest(left: int | None, right: int | None, hint: int) -> int | None:
    """Of the candidate starts on each side of the hint, the nearer; the earlier on ties."""
    candidates = [start for start in (left, right) if start is not None]
    return min(candidates, key=lambda start: (abs(start - hint), start), default=None)


class _Exact:
    """The occurrences of one quote as written, keyed by their start, found with ``str.find``/``rfind``."""

    def __init__(self, text: str, quote: str, taken: set[Occurrence]) -> None:
        self.text, self.quote, self.taken = text, quote, taken
        self.first = self._found(text.find(quote))
        self.forward: dict[int, int | None] = {}
        self.backward: dict[int, int | None] = {}

    def _found(self, start: int) -> int | None:
        return None if start == -1 else start

    def _is_taken(self, start: int) -> bool:
        return (start, start + len(self.quote)) in self.taken

    def _next(self, start: int) -> int | None:
        return self._found(self.text.find(self.quote, start + 1))

    def _previous(self, start: int) -> int | None:
        return self._last_from(start - 1) if start > 0 else None

    def _last_from(self, at: int) -> int | None:
        """The last occurrence starting at ``at`` or before."""
        return self._found(self.text.rfind(self.quote, 0, at + len(self.quote))) if at >= 0 else None

    def free(self, hint: int | None) -> Occurrence | None:
        if hint is None:
            start = _walk(self.first, self._next, self._is_taken, self.forward)
        else:
            left = _walk(self._last_from(hint), self._previous, self._is_taken, self.backward)
            after = self._found(self.text.find(self.quote, max(0, hint + 1)))
            start = _nearest(left, _walk(after, self._next, self._is_taken, self.forward), hint)
        return None if start is None else (start, start + len(self.quote))


class _Loose:
    """The occurrences of one quote ignoring case and runs of whitespace, found in text order as needed
    (a regular expression cannot search backwards) and kept in a list, keyed by their index in it."""

    def __init__(self, text: str, words: Sequence[str], taken: set[Occurrence]) -> None:
        self.text, self.taken = text, taken
        self.pattern = re.compile(r"\s+".join(re.escape(word) for word in words), re.IGNORECASE)
        self.found: list[Occurrence] = []
        self.starts: list[int] = []
        self.searched_from: int | None = 0  # None once the text holds no further match
        self.forward: dict[int, int | None] = {}
        self.backward: dict[int, int | None] = {}

    def _more(self) -> bool:
        if self.searched_from is None:
            return False
        match = self.pattern.search(self.text, self.searched_from)
        if match is None:
            self.searched_from = None
            return False
        self.found.append(match.span())
        self.starts.append(match.start())
        self.searched_from = match.start() + 1
        return True

    def _at(self, index: int) -> int | None:
        while index >= len(self.found):
            if not self._more():
                return None
        return index

    def _is_taken(self, index: int) -> bool:
        return self.found[index] in self.taken

    def _next(self, index: int) -> int | None:
        return self._at(index + 1)

    def _previous(self, index: int) -> int | None:
        return index - 1 if index > 0 else None

    def free(self, hint: int | None) -> Occurrence | None:
        if hint is None:
            index = _walk(self._at(0), self._next, self._is_taken, self.forward)
        else:
            while (not self.starts or self.starts[-1] <= hint) and self._more():
                pass
            after = bisect.bisect_right(self.starts, hint)  # the first occurrence starting after the hint
            left = _walk(after - 1 if after > 0 else None, self._previous, self._is_taken, self.backward)
            right = _walk(self._at(after), self._next, self._is_taken, self.forward)
            by_start = {self.starts[index]: index for index in (left, right) if index is not None}
            nearest = _nearest(min(by_start, default=None), max(by_start, default=None), hint)
            index = None if nearest is None else by_start[nearest]
        return None if index is None else self.found[index]


class TextSpans:
    """Quotes placed one after another in one text, each on an occurrence no earlier quote took."""

    def __init__(self, text: str, taken: set[Occurrence] | None = None) -> None:
        self.text = text
        self.taken = set() if taken is None else taken
        self._exact: dict[str, _Exact] = {}
        self._loose: dict[tuple[str, ...], _Loose] = {}
        self._absent: set[str] = set()  # quotes the text holds nowhere, even loosely: no finder kept for them

    def place(self, quote: str, hint: int | None = None) -> Span | None:
        """The quote's free occurrence (the first, or the nearest to ``hint``), now taken; None if none is free."""
        if not quote or not quote.strip() or quote in self._absent:
            return None
        exact = self._exact.get(quote) or _Exact(self.text, quote, self.taken)
        occurrence, confidence = exact.free(hint), 1.0
        if occurrence is None:
            words = tuple(quote.split())
            loose = self._loose.get(words) or _Loose(self.text, words, self.taken)
            occurrence, confidence = loose.free(hint), LOOSE_MATCH_CONFIDENCE
            if exact.first is None and not loose.found:
                self._absent.add(quote)
                return None
            self._loose[words] = loose
        self._exact[quote] = exact
        if occurrence is None:
            return None
        self.taken.add(occurrence)
        start, end = occurrence
        return Span(start, end, self.text[start:end], confidence)


class UtteranceSpans:
    """Quotes placed in a dialogue (ParagraphLabels): in the utterance the model named, else in the first
    utterance that still has a free occurrence of the quote.

    Utterances found to hold no free occurrence of a quote never hold one again (taken occurrences stay
    taken), so each quote keeps where its search goes on: a thousand quotes in a thousand utterances cost a
    thousand searches, not a million."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts
        self.utterances: dict[int, TextSpans] = {}  # made when a quote is first looked for there
        self._first_holder: dict[str, int] = {}  # quote → the first utterance that may still hold it free

    def _in(self, index: int) -> TextSpans:
        if index not in self.utterances:
            self.utterances[index] = TextSpans(self.texts[index])
        return self.utterances[index]

    def place(self, quote: str, said: int | None = None) -> tuple[int, Span] | None:
        """``(utterance index, span)`` for the quote, now taken; None when no utterance holds it free."""
        named = said if said is not None and 0 <= said < len(self.texts) else None
        if named is not None and (span := self._in(named).place(quote)) is not None:
            return named, span
        index = self._first_holder.get(quote, 0)
        while index < len(self.texts):
            span = None if index == named else self._in(index).place(quote)
            if span is not None:
                self._first_holder[quote] = index
                return index, span
            index += 1
        self._first_holder[quote] = index
        return None


def locate(
    text: str, quotes: Sequence[tuple[str, int | None]], taken: set[Occurrence] | None = None
) -> list[Span | None]:
    """Place each ``(quote, start hint)`` in ``text``, in order; None where it cannot be placed.

    ``taken`` holds the ``(start, end)`` occurrences already used, and is updated: pass the same set to
    place further quotes in the same text.
    """
    spans = TextSpans(text, taken)
    return [spans.place(quote, hint) for quote, hint in quotes]
