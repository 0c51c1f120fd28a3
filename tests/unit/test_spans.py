from shared.domain.spans import LOOSE_MATCH_CONFIDENCE, locate

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
