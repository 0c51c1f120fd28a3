import math

import pytest
from openai.types.chat.chat_completion_token_logprob import ChatCompletionTokenLogprob

from shared.domain.answers.score import label_probability, prediction_score


def tokens(*pairs):
    return [{"token": token, "logprob": math.log(probability)} for token, probability in pairs]


# '{"sentiment": "Not Sarcastic", "note": "Sarcastic tone"}' as a model might tokenize it
JSON_ANSWER = tokens(
    ('{"', 0.99),
    ("sent", 0.99),
    ('iment": "', 0.99),
    ("Not", 0.6),
    (" Sarc", 0.9),
    ("astic", 1.0),
    ('", "note": "', 0.99),
    ("Sarc", 0.3),
    ("astic tone", 0.3),
    ('"}', 0.99),
)


def test_the_tokens_of_a_json_label_value_are_averaged():
    assert label_probability(JSON_ANSWER, ["Not Sarcastic"]) == pytest.approx((0.6 + 0.9 + 1.0) / 3)


def test_a_json_value_beats_the_same_words_in_other_text():
    # "Sarcastic" is never a value of its own here, so it is measured where it is written, as in prose
    assert label_probability(JSON_ANSWER, ["Sarcastic"]) == pytest.approx((0.9 + 1.0 + 0.3 + 0.3) / 4)
    only_values = tokens(('{"a": "', 1.0), ("Sarcastic", 0.8), ('", "b": "Sarcastic tone"}', 0.1))
    assert label_probability(only_values, ["Sarcastic"]) == pytest.approx(0.8)


def test_prose_answers_measure_the_plain_label():
    prose = tokens(("The", 0.9), (" answer", 0.9), (" is", 0.9), (" Sarcastic", 0.7), (".", 0.9))
    assert label_probability(prose, ["Sarcastic"]) == pytest.approx(0.7)


def test_several_labels_pool_their_tokens_once():
    answer = tokens(('["', 1.0), ("A", 0.5), ('", "', 1.0), ("B", 0.25), ('"]', 1.0))
    assert label_probability(answer, ["A", "B", "A"]) == pytest.approx(0.375)


def test_openai_logprob_objects_are_read_too():
    objects = [ChatCompletionTokenLogprob(token="Yes", logprob=math.log(0.5), top_logprobs=[])]
    assert label_probability(objects, ["Yes"]) == pytest.approx(0.5)


def test_nothing_to_measure_is_none():
    assert label_probability(None, ["A"]) is None
    assert label_probability(JSON_ANSWER, []) is None
    assert label_probability(JSON_ANSWER, ["Absent"]) is None


def test_score_prefers_logprobs_then_match_quality_then_what_was_asked():
    assert prediction_score([0.5], True, JSON_ANSWER, ["Not Sarcastic"]) == round((0.6 + 0.9 + 1.0) / 3, 4)
    assert prediction_score([1.0, 0.9], True, None, ["Not Sarcastic"]) == 0.95
    assert prediction_score([1.0, 0.9], True, JSON_ANSWER, ["Absent"]) == 0.95
    assert prediction_score([], True) == 0.0
    assert prediction_score([], False) == 1.0
