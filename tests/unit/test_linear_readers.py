"""Readers of model output on hostile answers: the same readings as before, at a cost linear in the answer.

Each pathological answer is checked for what it reads (against a small reference where the reading is not
obvious) and, where the work is Python's, for how the work grows, counted (``tests/unit/steps.py``); the
regular expressions are checked to start no attempt where one could only repeat another, and their time is
in ``bench/readers.py``.
"""

from __future__ import annotations

import json
import random

import pytest

from shared.domain.answers import json_in_text, prose
from shared.domain.answers.json_in_text import (
    JSON_SCAN_FLOOR,
    JSON_SCAN_PASSES,
    json_object_in,
    json_values,
    nests_deeper_than,
)
from shared.domain.answers.output_modes import AnswerFormatError
from shared.domain.answers.prose import LabelMatch, read_labels, read_number, read_rating
from shared.domain.answers.reading import read_prediction
from shared.domain.evaluation.scorers import ScoredSpan, _overlap_matches
from shared.domain.labeling.spec import parse_labeling_config
from shared.domain.untrusted import MAX_JSON_DEPTH
from tests.unit.steps import LINEAR_BOUND, growth

LABELS = ["Positive", "Negative", "Neutral"]


def labels_read(answer: str, multiple: bool = True) -> list[LabelMatch]:
    return read_labels(answer, LABELS, multiple=multiple, threshold=0.8)


# --- runs of spaces and digits -------------------------------------------------------------------------------


def test_a_long_run_of_spaces_reads_what_stands_around_it():
    spaces = " " * 20_000
    assert labels_read("a" + spaces + "b") == []
    assert labels_read("Positive" + spaces + "," + spaces + "Negative") == [
        LabelMatch("Positive", 1.0),
        LabelMatch("Negative", 1.0),
    ]
    assert labels_read("Negative" + spaces + "- the customer is angry", multiple=False) == [LabelMatch("Negative", 1.0)]
    assert labels_read(spaces + "Neutral" + spaces, multiple=False) == [LabelMatch("Neutral", 1.0)]


@pytest.mark.parametrize(
    ("pattern", "text"),
    [(prose._ITEMS, "Sports" + " " * 8 + ", News"), (prose._ITEMS, "Sports" + " " * 8 + "and News"),
     (prose._REASONS, "Sports" + " " * 8 + "(mostly)"), (prose._REASONS, "Sports" + " " * 8 + "-- mostly")],
 ids=["comma", "and", "bracket", "dashes"],
)  # fmt: skip
def test_separators_start_only_where_a_run_of_spaces_starts(pattern, text):
    """From inside a run a separator would read the rest of the run again: 20 KB of spaces cost 7 s that way."""
    assert pattern.search(text).start() == len("Sports")
    assert [pattern.match(text, position) for position in range(len("Sports") + 1, len("Sports") + 8)] == [None] * 7


def test_a_run_of_digits_is_read_once_and_numbers_beyond_a_float_are_not_read():
    assert prose._FRACTION.search("I give it 12345/5").group() == "12345/5"
    assert [prose._FRACTION.match("12345/5", position) for position in range(1, 5)] == [None] * 4
    assert read_rating("9" * 20_000) is None  # was OverflowError: the digits read as infinity
    assert read_rating("9" * 400 + " out of 5") is None
    assert read_rating("888/1000") == 4
    assert read_number("9" * 400 + " or rather 7") == 7.0  # infinity is no number a tag can store
    assert read_number("-" + "9" * 400) is None


# --- labels named many times ---------------------------------------------------------------------------------


def test_a_label_named_ten_thousand_times_is_read_in_linear_work():
    assert labels_read("positive " * 10_000, multiple=False) == [LabelMatch("Positive", 0.9)]
    assert growth(lambda n: lambda: labels_read("positive " * n, multiple=False), 200) <= LINEAR_BOUND
    assert growth(lambda n: lambda: labels_read("positive or negative, " * n, multiple=False), 200) <= LINEAR_BOUND


COMPOUNDS = ["World", "Sci/Tech", "Research and Development", "Arts & Entertainment"]


@pytest.mark.parametrize(
    "repeated",
    ["science and technology ", "science science science and ", "research & development, ", "R&D or arts "],
)
def test_compound_names_read_piece_by_piece_in_linear_work(repeated):
    """Every word that could start a compound is followed up: a compound named thousands of times, or almost
    named, costs work in proportion to the answer."""
    assert growth(lambda n: lambda: read_labels(repeated * n, COMPOUNDS, multiple=True, threshold=0.8), 200) <= (
        LINEAR_BOUND
    )


def test_an_answer_that_declines_is_recognised_in_linear_work():
    labels = ["Positive", "Negative", "Other"]
    assert read_labels("none of the " * 10_000, labels, multiple=False, threshold=0.8)[0].declined
    for repeated in ("none of the ", "I cannot ", "not sure "):
        assert growth(lambda n, r=repeated: lambda: read_labels(r * n, labels, multiple=False, threshold=0.8), 200) <= (
            LINEAR_BOUND
        )


def offered_by_definition(mentions, tokens) -> set[int]:
    """The rule as it reads: another label in the same clause, with an 'or' between the two (every pair)."""
    return {
        index
        for index, mention in enumerate(mentions)
        if any(
            other.label.name != mention.label.name
            and tokens[other.start].clause == tokens[mention.start].clause
            and any(
                token.word == "or" for token in tokens[min(mention.end, other.end) : max(mention.start, other.start)]
            )
            for other in mentions
        )
    }


def test_alternatives_are_found_as_the_pairwise_rule_says():
    words = ["positive", "negative", "neutral", "or", "or", "and", "it", "not", ",", ".", "so", "but"]
    labels = prose._labels_of(LABELS + ["Not Negative"])
    rng = random.Random(23)
    offered_somewhere = 0
    for _ in range(2000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 16)))
        tokens = prose._tokens(text)
        mentions = prose._mentions(tokens, labels)
        expected = offered_by_definition(mentions, tokens)
        assert prose._offered_as_alternatives(mentions, tokens) == expected, text
        offered_somewhere += bool(expected)
    assert offered_somewhere > 100  # the texts exercise the rule, not only its empty case


# --- JSON in prose -------------------------------------------------------------------------------------------


def first_json_by_definition(text: str, openers: str):
    """json.JSONDecoder from every opener in turn, as the readers did before a budget bounded them."""
    decoder = json.JSONDecoder()
    for start, char in enumerate(text):
        if char in openers:
            try:
                return decoder.raw_decode(text, start)[0]
            except ValueError:
                continue
    return None


def test_json_in_prose_is_found_as_by_decoding_from_every_brace():
    long_value = {"label": "Positive", "why": "x" * 700, "items": list(range(300))}  # longer than a first window
    pieces = ["{", "[", "}", "]", '"', ":", ",", " ", "x", "1", "-Infinity", "NaN", "\\", '"\\u00e9"', '{"a": 1}',
              '["Positive"]', json.dumps(long_value), json.dumps(long_value)[:-1], '{"a": "', "```json\n"]  # fmt: skip
    rng = random.Random(5)
    found = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        for openers in ("{", "[{"):
            expected = first_json_by_definition(text, openers)
            assert next(json_values(text, openers), None) == expected, text
            found += expected is not None
    assert found > 1000


def test_a_deeply_nested_answer_is_prose_not_a_recursion_error():
    assert next(json_values("[" * 100_000, "[{"), None) is None
    assert json_object_in('{"a":' * 100_000) is None
    assert labels_read("[" * 100_000) == []
    assert labels_read("[" * 100_000 + " Negative") == [LabelMatch("Negative", 1.0)]


def test_a_value_nested_deeper_than_the_readers_walk_is_skipped():
    deep = "[" * (MAX_JSON_DEPTH + 50) + '"Positive"' + "]" * (MAX_JSON_DEPTH + 50)
    first = next(json_values(deep, "[{"))
    assert not nests_deeper_than(first, MAX_JSON_DEPTH) and nests_deeper_than([first], MAX_JSON_DEPTH)
    assert labels_read(deep) == [LabelMatch("Positive", 1.0)]


class CountingDecoder(json.JSONDecoder):
    """Counts the characters handed to the decoder: the most it can read."""

    handed = 0

    def raw_decode(self, s, idx=0):
        CountingDecoder.handed += len(s) - idx
        return super().raw_decode(s, idx)


@pytest.mark.parametrize("depth", [20, 500])
def test_failed_attempts_read_a_few_times_the_answer_at_most(monkeypatch, depth):
    monkeypatch.setattr(json_in_text.json, "JSONDecoder", CountingDecoder)
    CountingDecoder.handed = 0
    text = "[" * depth + "1," * 400_000 + ' {"label": "Positive"}'  # no attempt ends before the text does
    next(json_values(text, "[{"), None)
    bound = max(JSON_SCAN_PASSES * len(text), JSON_SCAN_FLOOR)
    # Windows double until the error is clearly not the cut: each attempt is handed at most 4 times what it read.
    assert CountingDecoder.handed <= 4 * (bound + len(text))
    short = "[" * 5 + "1," * 10 + ' {"label": "Positive"}'  # within the floor, the object after them is found
    assert next(json_values(short, "[{")) == {"label": "Positive"}


def test_a_fence_followed_by_many_spaces_is_read_once():
    assert json_object_in("```" + " " * 50_000) is None
    assert json_object_in("```json" + " " * 50_000 + '{"c": "A"}```') == {"c": "A"}


# --- the prediction ------------------------------------------------------------------------------------------

CONFIG = """<View><Text name="t" value="$t"/><TextArea name="prompt" toName="t"/>
  <Choices name="c" toName="t"><Choice value="Yes"/><Choice value="No"/></Choices>{extra}</View>"""


def test_a_deeply_nested_answer_is_held_by_a_text_area_or_fails_the_task_plainly():
    answer = "[" * 100_000
    with_text_area = parse_labeling_config(CONFIG.format(extra='<TextArea name="notes" toName="t"/>'), "prompt")
    reading = read_prediction(with_text_area, {"t": "x"}, None, [{"content": answer}], "text", 0.8)
    assert [region["value"] for region in reading.filled.regions] == [{"text": [answer]}]
    without = parse_labeling_config(CONFIG.format(extra=""), "prompt")
    with pytest.raises(AnswerFormatError, match=r"nothing in the model's answer fits this labeling config: '\[\[\["):
        read_prediction(without, {"t": "x"}, None, [{"content": answer}], "text", 0.8)


# --- scoring predicted spans -----------------------------------------------------------------------------------


def overlap_matches_by_augmenting_paths(truth, predicted) -> int:
    """Maximum bipartite matching the textbook way (Kuhn's augmenting paths), for small inputs."""
    owner: dict[int, int] = {}

    def claim(candidate: int, visited: set[int]) -> bool:
        for index, span in enumerate(truth):
            if index in visited or not (
                span.begin < predicted[candidate].end and predicted[candidate].begin < span.end
            ):
                continue
            visited.add(index)
            if index not in owner or claim(owner[index], visited):
                owner[index] = candidate
                return True
        return False

    return sum(claim(candidate, set()) for candidate in range(len(predicted)))


def random_spans(rng: random.Random, count: int, paragraphs: bool) -> list[ScoredSpan]:
    spans = []
    for _ in range(count):
        begin, length = rng.randint(0, 30), rng.randint(0, 8)
        if paragraphs:
            where = rng.randint(0, 2)
            spans.append(ScoredSpan((where, begin), (where + rng.randint(0, 1), begin + length), "X"))
        else:
            spans.append(ScoredSpan((float(begin),), (float(begin + length),), "X"))
    return spans


def test_overlap_matching_is_maximum_as_augmenting_paths_find_it():
    rng = random.Random(29)
    for _ in range(3000):
        paragraphs = rng.random() < 0.3
        truth, predicted = (random_spans(rng, rng.randint(0, 9), paragraphs) for _ in range(2))
        assert _overlap_matches(truth, predicted) == overlap_matches_by_augmenting_paths(truth, predicted), (
            truth,
            predicted,
        )


def test_thousands_of_nested_spans_are_matched_in_n_log_n_without_recursion():
    def nested(n):
        truth = [ScoredSpan((float(i),), (float(2 * n - i),), "X") for i in range(n)]  # each inside the last
        predicted = [ScoredSpan((float(n - 1),), (float(n + 1),), "X")] * n  # all inside every true span
        return lambda: _overlap_matches(truth, predicted)

    assert nested(5_000)() == 5_000  # augmenting paths: RecursionError, and 800 spans took 20 s
    assert growth(nested, 500) <= LINEAR_BOUND
