"""BM25 over short documents: the ranking label selection (and any other local ranking) relies on."""

import math

import pytest

from shared.domain.prompts.similarity import BM25, VectorRanker, words


def test_words_are_folded_letters_and_digits_with_plurals_dropped():
    assert words("Sci_Tech: Flights, CATEGORIES & R2D2's glass bus") == [
        "sci",
        "tech",
        "flight",
        "category",
        "r2d2",
        "s",
        "glass",
        "bus",
    ]


def test_the_document_sharing_a_word_with_the_query_ranks_first():
    index = BM25(["Travel / Hotels", "Travel / Flights", "Food / Pizza"])
    assert index.rank("We took two flights to Rome, travel is fun") == [1, 0]


def test_a_rare_word_outweighs_a_common_one():
    index = BM25(["sport tennis", "sport golf", "sport cricket", "art painting"])
    # "sport" is in three documents, "painting" in one: the painting document wins though both words match once
    assert index.rank("sport painting")[0] == 3
    assert index.scores("sport painting")[3] > index.scores("sport painting")[0] > 0


def test_a_word_said_more_often_weighs_more_but_not_in_proportion():
    index = BM25(["golf", "tennis"])
    once, thrice = index.scores("golf tennis"), index.scores("golf golf golf tennis")
    assert once[0] == once[1]
    assert thrice[0] > thrice[1] and thrice[0] < 3 * thrice[1]


def test_shorter_documents_win_on_the_same_match():
    index = BM25(["golf", "golf course maintenance equipment and supplies"])
    assert index.rank("golf") == [0, 1]


def test_only_documents_sharing_a_word_are_ranked_and_ties_keep_document_order():
    index = BM25(["b x", "a", "c x"])
    assert index.rank("x") == [0, 2]
    assert index.rank("nothing in common") == []
    assert index.scores("") == [0.0, 0.0, 0.0]
    assert BM25([]).rank("anything") == []


class GivenVectors:
    """An ``Embed`` that looks vectors up in a table (the domain is handed vectors, never fetches them), and
    records what it was asked, to show what is embedded once and what per query."""

    scope = "given"

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.asked: list[list[str]] = []

    def __call__(self, texts):
        self.asked.append(list(texts))
        return [self.table[text] for text in texts]


MEANINGS = GivenVectors(
    {
        "Sailing": [1.0, 0.0, 0.0],
        "Cycling": [0.0, 1.0, 0.0],
        "Golf": [0.0, 0.0, 1.0],
        "Cooking": [-1.0, 0.0, 0.0],
        "a ship crossed the bay": [0.9, 0.1, 0.0],  # no word in common with any label: BM25 finds nothing
        "bikes and boats": [0.5, 0.5, 0.0],
    }
)


def test_vectors_rank_by_cosine_where_words_have_nothing_in_common():
    documents = ["Sailing", "Cycling", "Golf", "Cooking"]
    assert BM25(documents).rank("a ship crossed the bay") == []
    ranker = VectorRanker(documents, MEANINGS)
    scores = ranker.scores("a ship crossed the bay")
    assert scores[0] == pytest.approx(0.9 / math.hypot(0.9, 0.1))
    assert scores[2] == 0.0 and scores[3] < 0
    # cosine above 0 only (Golf is orthogonal, Cooking opposite); ties keep document order
    assert ranker.rank("a ship crossed the bay") == [0, 1]
    assert ranker.rank("bikes and boats") == [0, 1]


def test_the_documents_are_embedded_once_and_each_query_on_its_own():
    table = GivenVectors(MEANINGS.table)
    ranker = VectorRanker(["Sailing", "Cycling", "Golf"], table)
    ranker.rank("bikes and boats")
    ranker.scores("a ship crossed the bay")
    assert table.asked == [["Sailing", "Cycling", "Golf"], ["bikes and boats"], ["a ship crossed the bay"]]


def test_an_empty_query_or_a_zero_vector_is_similar_to_nothing():
    table = GivenVectors({"Sailing": [1.0, 0.0], "Nothing": [0.0, 0.0], "boat": [1.0, 0.0]})
    ranker = VectorRanker(["Sailing", "Nothing"], table)
    assert ranker.scores("  ") == [0.0, 0.0]  # not embedded: providers refuse an empty input
    assert table.asked == [["Sailing", "Nothing"]]
    assert ranker.scores("boat") == [pytest.approx(1.0), 0.0]
    assert VectorRanker([], table).rank("boat") == []
