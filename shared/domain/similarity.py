"""Lexical similarity: rank short documents for a query with Okapi BM25, computed here (no model, no download).

General on purpose (documents and a query, nothing about labels): label selection ranks a control's labels
for a task's text with it, and other rankings (few-shot examples for a task) can use the same index.

Words are runs of letters and digits (``sci_tech`` is two), folded to lower case, with a plural's ending
dropped (``flights`` → ``flight``, ``categories`` → ``category``): labels are short, so one word in common
decides, and a singular label must meet its plural in the text.  A query word counts ``1 + log(times)``:
a text that says "flight" five times is about flights, but not five times more than one that says it once.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"[^\W_]+")


def _fold(word: str) -> str:
    word = word.casefold()
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """The words of ``text`` as the index compares them."""
    return [_fold(word) for word in _WORD.findall(text)]


class BM25:
    """An index of ``documents`` (texts) that scores them against a query: Okapi BM25 with the usual
    ``k1`` and ``b``, and the non-negative idf ``log(1 + (N - df + 0.5) / (df + 0.5))``."""

    def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.size = len(documents)
        counted = [Counter(words(document)) for document in documents]
        lengths = [sum(counts.values()) for counts in counted]
        average = (sum(lengths) / self.size) if self.size and sum(lengths) else 1.0
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for index, counts in enumerate(counted):
            norm = k1 * (1 - b + b * lengths[index] / average)
            for word, times in counts.items():
                self._postings.setdefault(word, []).append((index, times * (k1 + 1) / (times + norm)))
        self._idf = {
            word: math.log(1 + (self.size - len(hits) + 0.5) / (len(hits) + 0.5))
            for word, hits in self._postings.items()
        }

    def scores(self, query: str) -> list[float]:
        """Each document's score for ``query``, in document order (0 for a document sharing no word with it)."""
        totals = [0.0] * self.size
        for word, times in Counter(words(query)).items():
            weight = self._idf.get(word, 0.0) * (1 + math.log(times))
            for index, saturation in self._postings.get(word, ()):
                totals[index] += weight * saturation
        return totals

    def rank(self, query: str) -> list[int]:
        """The indexes of the documents that share a word with ``query``, best first; equal scores keep document
        order.  The others are left out: nothing says they are any closer than the rest."""
        totals = self.scores(query)
        return sorted(
            (index for index in range(self.size) if totals[index] > 0), key=lambda index: (-totals[index], index)
        )
