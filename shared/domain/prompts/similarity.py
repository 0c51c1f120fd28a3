"""Lexical similarity: rank short documents for a query with Okapi BM25, computed here (no model, no download).

General on purpose (documents and a query, nothing about labels): label selection ranks a control's labels
for a task's text with it, few-shot examples are chosen with it (``few_shot``, stemming its words: ``stems``).

Words are runs of letters and digits (``sci_tech`` is two), folded to lower case, with a plural's ending
dropped (``flights`` → ``flight``, ``categories`` → ``category``): labels are short, so one word in common
decides, and a singular label must meet its plural in the text.  A query word counts ``1 + log(times)``:
a text that says "flight" five times is about flights, but not five times more than one that says it once.

``VectorRanker`` ranks the same way by meaning instead of words: cosine similarity of the vectors an embedding
model gives the texts (SIMILARITY_EMBEDDINGS_MODEL).  The model is asked elsewhere (``shared.adapters.embeddings``):
this module is handed an ``Embed`` and only compares what it returns.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from shared.domain.answers.prose import stem_word

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


def stems(text: str) -> list[str]:
    """The words of ``text`` lower-cased and stemmed (Snowball English, ``answers.prose.stem_word``): for longer texts
    than labels, where "footballing" should meet "football" too."""
    return [stem_word(word.casefold()) for word in _WORD.findall(text)]


class BM25:
    """An index of ``documents`` (texts) that scores them against a query: Okapi BM25 with the usual
    ``k1`` and ``b``, and the non-negative idf ``log(1 + (N - df + 0.5) / (df + 0.5))``; ``analyzer`` cuts a
    text into the terms compared (``words`` by default)."""

    def __init__(
        self,
        documents: Sequence[str],
        k1: float = 1.5,
        b: float = 0.75,
        analyzer: Callable[[str], list[str]] = words,
    ) -> None:
        self.size = len(documents)
        self.analyzer = analyzer
        counted = [Counter(analyzer(document)) for document in documents]
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
        for word, times in Counter(self.analyzer(query)).items():
            weight = self._idf.get(word, 0.0) * (1 + math.log(times))
            for index, saturation in self._postings.get(word, ()):
                totals[index] += weight * saturation
        return totals

    def rank(self, query: str) -> list[int]:
        """The indexes of the documents that share a word with ``query``, best first; equal scores keep document
        order.  The others are left out: nothing says they are any closer than the rest."""
        return _ranked(self.scores(query))


class Embed(Protocol):
    """Texts to their vectors, one per text in order; ``scope`` names the model and endpoint that made them, so
    rankers kept for reuse are kept apart by who embedded them (one project's endpoint never ranks another's)."""

    @property
    def scope(self) -> str: ...

    def __call__(self, texts: Sequence[str]) -> list[list[float]]: ...


class Ranker(Protocol):
    """What label selection and few-shot rank with: ``BM25`` or ``VectorRanker``."""

    def scores(self, query: str) -> list[float]: ...

    def rank(self, query: str) -> list[int]: ...


class VectorRanker:
    """An index of ``documents`` that scores them against a query by the cosine similarity of their embeddings
    (``embed`` gives the vectors: the documents' once, here, and the query's on each call), with BM25's API."""

    def __init__(self, documents: Sequence[str], embed: Embed) -> None:
        self.size = len(documents)
        self._embed = embed
        self._vectors = _unit_rows(embed(list(documents))) if documents else np.zeros((0, 0))

    def scores(self, query: str) -> list[float]:
        """Each document's cosine similarity to ``query``, in document order (0 for an empty query: nothing to
        embed, and providers refuse an empty input)."""
        if not self.size or not query.strip():
            return [0.0] * self.size
        return [float(score) for score in self._vectors @ _unit_rows(self._embed([query]))[0]]

    def rank(self, query: str) -> list[int]:
        """The indexes of the documents more similar than unrelated (a cosine above 0), best first; equal scores
        keep document order.  As with BM25, the others are left out."""
        return _ranked(self.scores(query))


def _ranked(totals: list[float]) -> list[int]:
    """The indexes of the positive scores, best first, equal scores in document order."""
    return sorted((index for index, total in enumerate(totals) if total > 0), key=lambda index: (-totals[index], index))


def _unit_rows(vectors: Sequence[Sequence[float]]) -> npt.NDArray[np.float32]:
    """The vectors as rows of unit length (a zero vector stays zero: similar to nothing)."""
    rows = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    units: npt.NDArray[np.float32] = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    return units
