import random

from shared.domain.answers.spans import LOOSE_MATCH_CONFIDENCE, TextSpans, UtteranceSpans, locate
from tests.unit.steps import LINEAR_BOUND, growth

TEXT = "Anna met Bob in Paris. Later, Anna and Bob left Paris for Rome."


def offsets(spans):
    return [None if span is None else (span.start, span.end) for span in spans]


def test_each_quote_is_found_and_its_text_is_the_slice():
    spans = locate(TEXT, [("Anna", None), ("Rome", None), ("Bob in Paris", None)])
    assert offsets(spans) == [(0, 4), (58, 62), (9, 21)]
    assert all(TEXT[span.start : span.end] == span.text for span in spans)
    assert all(span.confidence == 1.0 for span in spans)


def test_repeated_quotes_take_successive_occurrences():
    spans = locate(TEXT, [("Paris", None), ("Anna", None), ("Paris", None), ("Anna", None)])
    assert offsets(spans) == [(16, 21), (0, 4), (48, 53), (30, 34)]


def test_more_listings_than_occurrences_leave_the_extra_unplaced():
    assert offsets(locate(TEXT, [("Rome", None), ("Rome", None)])) == [(58, 62), None]


def test_a_start_hint_picks_the_nearest_free_occurrence():
    assert offsets(locate(TEXT, [("Paris", 47)])) == [(48, 53)]
    assert offsets(locate(TEXT, [("Paris", 47), ("Paris", 47)])) == [(48, 53), (16, 21)]
    assert offsets(locate(TEXT, [("Anna", 1000)])) == [(30, 34)]


def test_a_quote_not_in_the_text_is_not_placed():
    assert offsets(locate(TEXT, [("Berlin", None), ("", None), ("   ", None), ("Bob", None)])) == [
        None,
        None,
        None,
        (9, 12),
    ]


def test_offsets_are_code_points_as_label_studio_text_stores_them():
    text = "I 😀 love Zürich, naïve café ☕ in Zürich"
    spans = locate(text, [("Zürich", None), ("café ☕", None), ("Zürich", None)])
    assert offsets(spans) == [(9, 15), (23, 29), (33, 39)]
    assert [text[s.start : s.end] for s in spans] == ["Zürich", "café ☕", "Zürich"]
    combining = "cafe\u0301 ok"  # "é" written as e + combining accent: two code points
    assert offsets(locate(combining, [("ok", None)])) == [(6, 8)]


def test_case_and_spacing_differences_match_loosely_and_keep_the_source_text():
    text = "Visit New   York\nCity today"
    [span] = locate(text, [("new york city", None)])
    assert (span.start, span.end, span.text) == (6, 21, "New   York\nCity")
    assert span.confidence == LOOSE_MATCH_CONFIDENCE


def test_an_exact_occurrence_wins_over_a_loose_one():
    [span] = locate("paris or Paris", [("Paris", None)])
    assert (span.start, span.confidence) == (9, 1.0)


def test_a_shared_taken_set_continues_across_calls():
    taken: set[tuple[int, int]] = set()
    assert offsets(locate(TEXT, [("Bob", None)], taken)) == [(9, 12)]
    assert offsets(locate(TEXT, [("Bob", None)], taken)) == [(39, 42)]
    assert taken == {(9, 12), (39, 42)}


# --- many quotes, long texts: the same placements as the definition, in linear work ---------------------------


def locate_by_definition(text, quotes, taken=None):
    """Every occurrence of each quote listed, then the first free one (or the free one nearest the hint)."""
    import re

    taken = set() if taken is None else taken
    placed = []
    for quote, hint in quotes:
        span = None
        words = quote.split()
        if words:
            exact = [(at, at + len(quote)) for at in range(len(text)) if text.startswith(quote, at)]
            pattern = re.compile(r"\s+".join(re.escape(word) for word in words), re.IGNORECASE)
            loose = [match.span() for at in range(len(text)) if (match := pattern.match(text, at))]
            for occurrences, confidence in ((exact, 1.0), (loose, LOOSE_MATCH_CONFIDENCE)):
                free = [occurrence for occurrence in occurrences if occurrence not in taken]
                if free:
                    start, end = free[0] if hint is None else min(free, key=lambda o: (abs(o[0] - hint), o[0]))
                    taken.add((start, end))
                    span = (start, end, text[start:end], confidence)
                    break
        placed.append(span)
    return placed


def as_tuples(spans):
    return [None if span is None else (span.start, span.end, span.text, span.confidence) for span in spans]


def test_placements_match_the_definition_on_random_texts_quotes_and_hints():
    rng = random.Random(11)
    alphabet = "aAb \n"
    placed = 0
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        quotes = [
            ("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))), rng.choice([None, rng.randint(-3, 35)]))
            for _ in range(rng.randint(1, 12))
        ]
        taken = {(at, at + rng.randint(1, 3)) for at in range(rng.randint(0, 3))}
        expected_taken = set(taken)
        expected = locate_by_definition(text, quotes, expected_taken)
        assert as_tuples(locate(text, quotes, taken)) == expected, (text, quotes)
        assert taken == expected_taken
        placed += sum(span is not None for span in expected)
    assert placed > 5000


def test_a_thousand_one_letter_quotes_in_a_long_text_are_placed_as_defined():
    text = "ab " * 2_000
    quotes = [("a", None)] * 500 + [("A", None)] * 300 + [("b", 3_000)] * 300 + [("B  ", 10)] * 300
    assert as_tuples(locate(text, quotes)) == locate_by_definition(text, quotes)


def test_placing_quotes_grows_linearly_with_the_text_and_the_quotes():
    def placing(n):
        text = "ab " * n
        quotes = [("a", None)] * (n // 4) + [("A", None)] * (n // 4) + [("b", 3 * n // 2)] * (n // 4)
        return lambda: locate(text, quotes)

    assert growth(placing, 400) <= LINEAR_BOUND  # as defined, each quote looks at every occurrence: 16 times


def test_paragraph_quotes_repeated_across_utterances_take_successive_occurrences():
    spans = TextSpans("a a a")
    assert [(span.start, span.end) for span in (spans.place("a"), spans.place("a"), spans.place("a"))] == [
        (0, 1),
        (2, 3),
        (4, 5),
    ]
    assert spans.place("a") is None and spans.taken == {(0, 1), (2, 3), (4, 5)}


def place_in_dialogue_by_definition(texts, items):
    """The named utterance first, then every other in order; the first that places the quote takes it."""
    taken = [set() for _ in texts]
    placed = []
    for quote, said in items:
        order = list(range(len(texts)))
        if said is not None and 0 <= said < len(texts):
            order.remove(said)
            order.insert(0, said)
        placed.append(
            next(
                (
                    (index, span)
                    for index in order
                    if (span := locate_by_definition(texts[index], [(quote, None)], taken[index])[0])
                ),
                None,
            )
        )
    return placed


def test_quotes_in_a_dialogue_go_where_the_definition_puts_them():
    rng = random.Random(17)
    placed = 0
    for _ in range(1500):
        texts = ["".join(rng.choice("aAb ") for _ in range(rng.randint(0, 8))) for _ in range(rng.randint(1, 5))]
        items = [
            (rng.choice(["a", "A", "b", "a b", "ab", "x"]), rng.choice([None, rng.randint(-1, 5)])) for _ in range(8)
        ]
        dialogue = UtteranceSpans(texts)
        found = [dialogue.place(quote, said) for quote, said in items]
        expected = place_in_dialogue_by_definition(texts, items)
        assert [None if f is None else (f[0], *as_tuples([f[1]])[0]) for f in found] == [
            None if e is None else (e[0], *e[1]) for e in expected
        ], (texts, items)
        placed += sum(e is not None for e in expected)
    assert placed > 4000


def test_many_quotes_in_many_utterances_grow_linearly():
    def placing(n):
        texts = ["b a"] * n  # one "a" per utterance: the k-th quote of "a" goes to the k-th utterance
        quotes = ["a"] * n + ["z"] * n  # "z" is in none

        def place_all():
            dialogue = UtteranceSpans(texts)
            return [dialogue.place(quote) for quote in quotes]

        return place_all

    assert growth(placing, 200) <= LINEAR_BOUND  # each quote tried in every utterance before it: 16 times
