"""Which texts of a small corpus are nearest to a query: Okapi BM25, and TF-IDF cosine between documents.

Few-shot examples are chosen by this (``few_shot``): computed here, in a few dozen lines, rather than by an
embeddings model (a download, a network call per task) or a library (``rank-bm25`` has had no release since
2022 and does no stemming).  Words are folded to lower case and stemmed with the Snowball English stemmer that
the answer reader already uses (``answers.stem_word``, which stems one word at a time: a stemmer keeps state while
it works), so "footballer", "football" and "footballs" count as one term.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from shared.domain.answers import stem_word

K1 = 1.5  # BM25's term-frequency saturation, the usual value
B = 0.75  # BM25's length normalisation, the usual value

_WORD = re.compile(r"\w+", re.UNICODE)


def terms(text: str) -> list[str]:
    """The text's words, lower-cased and stemmed."""
    return [stem_word(word) for word in _WORD.findall(text.casefold())]


class Bm25Index:
    """BM25 scores of a query against every document, and the TF-IDF cosine between two documents."""

    def __init__(self, documents: Sequence[str]) -> None:
        self.counts = [Counter(terms(document)) for document in documents]
        self.lengths = [sum(count.values()) for count in self.counts]
        self.mean_length = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        frequency: Counter[str] = Counter(term for count in self.counts for term in count)
        size = len(self.counts)
        # BM25's idf, kept positive (the "+1" form) so a term in most documents still counts a little
        self.idf = {term: math.log(1 + (size - df + 0.5) / (df + 0.5)) for term, df in frequency.items()}
        self._vectors = [self._unit_tfidf(count) for count in self.counts]

    def __len__(self) -> int:
        return len(self.counts)

    def scores(self, query: str) -> list[float]:
        """BM25 of ``query`` against each document, in the documents' order."""
        wanted = sorted(set(terms(query)))  # summed in one order: equal scores stay equal in every process
        found = []
        for count, length in zip(self.counts, self.lengths, strict=True):
            norm = K1 * (1 - B + B * length / self.mean_length) if self.mean_length else K1
            found.append(
                sum(self.idf[term] * count[term] * (K1 + 1) / (count[term] + norm) for term in wanted if term in count)
            )
        return found

    def _unit_tfidf(self, count: Counter[str]) -> dict[str, float]:
        vector = {term: tf * self.idf[term] for term, tf in count.items()}
        norm = math.sqrt(sum(value * value for value in vector.values()))
        return {term: value / norm for term, value in vector.items()} if norm else {}

    def similarity(self, first: int, second: int) -> float:
        """The TF-IDF cosine of two documents, 0 (no term shared) to 1."""
        one, other = self._vectors[first], self._vectors[second]
        if len(one) > len(other):
            one, other = other, one
        return sum(value * other.get(term, 0.0) for term, value in one.items())
