import pytest

from shared.domain.answers.prose import read_labels as match_labels
from shared.domain.answers.reading import read_prediction
from shared.domain.labeling.spec import parse_labeling_config
from tests.conftest import labeling_config

LABELS = ["Sarcastic", "Not Sarcastic"]


def labels_of(matches):
    return [match.label for match in matches]


def build_regions(spec, prompt, answers, threshold):
    """Text mode, as the reference read its answers: the regions and the score without logprobs."""
    reading = read_prediction(spec, {}, prompt, [{"content": answer} for answer in answers], "text", threshold)
    return reading.filled.regions, reading.filled.score()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Sarcastic", ["Sarcastic"]),
        ("not sarcastic.", ["Not Sarcastic"]),
        ("- Sarcasticc", ["Sarcastic"]),
        ("1. Not Sarcastic\n2. Sarcastic", ["Not Sarcastic", "Sarcastic"]),
        ("Sarcastic, Not Sarcastic", ["Sarcastic", "Not Sarcastic"]),
        ("Labels: Sarcastic", ["Sarcastic"]),
        ("I am not sure at all\nSarcastic", ["Sarcastic"]),
        ("Something else entirely", []),
        ("", []),
    ],
)
def test_multiple_choice_matching(answer, expected):
    assert labels_of(match_labels(answer, LABELS, multiple=True, threshold=0.8)) == expected


def test_single_choice_gets_at_most_one_label():
    assert labels_of(match_labels("Not Sarcastic\nSarcastic", LABELS, multiple=False, threshold=0.8)) == [
        "Not Sarcastic"
    ]


def test_exact_match_beats_fuzzy_and_confidence_reflects_it():
    exact = match_labels("Sarcastic", LABELS, multiple=False, threshold=0.8)[0]
    fuzzy = match_labels("Sarcastik", LABELS, multiple=False, threshold=0.8)[0]
    assert (exact.label, exact.confidence) == ("Sarcastic", 1.0)
    assert fuzzy.label == "Sarcastic" and 0.8 <= fuzzy.confidence < 1.0
    assert match_labels("Sarcastik", LABELS, multiple=False, threshold=0.95) == []


def test_regions_hold_all_answers_labels_and_the_prompt():
    spec = parse_labeling_config(labeling_config("sarcasm"), "prompt")
    regions, score = build_regions(spec, "Is it sarcastic?", ["Sarcastic", "second answer"], 0.8)
    by_name = {region["from_name"]: region for region in regions}
    assert by_name["response"]["value"] == {"text": ["Sarcastic", "second answer"]}
    assert by_name["sentiment"]["value"] == {"choices": ["Sarcastic"]}
    assert by_name["prompt"]["value"] == {"text": ["Is it sarcastic?"]}
    assert all(region["to_name"] == "text" for region in regions)
    assert score == 1.0


def test_unmatched_answer_keeps_text_and_scores_zero():
    spec = parse_labeling_config(labeling_config("sarcasm"), "prompt")
    regions, score = build_regions(spec, "p", ["no idea"], 0.8)
    assert [region["from_name"] for region in regions] == ["response", "prompt"]
    assert score == 0.0


def test_text_only_config_scores_one():
    spec = parse_labeling_config(labeling_config("chat"), "prompt")
    regions, score = build_regions(spec, "p", ["hello"], 0.8)
    assert [region["type"] for region in regions] == ["textarea", "textarea"]
    assert score == 1.0
