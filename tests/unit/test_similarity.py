"""BM25 over short documents: the ranking label selection (and any other local ranking) relies on."""

from shared.domain.similarity import BM25, words


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
