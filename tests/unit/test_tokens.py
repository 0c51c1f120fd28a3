"""Token counts offline: text against tiktoken's figures, whole requests against the OpenAI API's own."""

from __future__ import annotations

import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.domain.estimation.tokens import (
    DEFAULT_OUTPUT_TOKENS,
    FREE_TEXT_TOKENS,
    calibrated,
    calibration_factor,
    count_request_tokens,
    count_texts,
    encoding_for_model,
    expected_output_tokens,
)

# Counts from tiktoken 0.14.0 loaded with OpenAI's cl100k_base and o200k_base files (their sha256 checked
# against tiktoken's pinned hashes), written down here as the reference.
TIKTOKEN_COUNTS = [
    ("hello world", 2, 2),
    ("Привет, мир! Как дела?", 12, 8),
    ("日本語のテキストをトークン化する", 15, 12),
    ('def f(x):\n    return {"a": [1, 2, 3]}\n', 18, 18),
    ("Label Studio pre-annotation: 100,000 tasks @ $0.15/1M tokens 🚀", 23, 22),
]


@pytest.mark.parametrize(("text", "cl100k", "o200k"), TIKTOKEN_COUNTS, ids=range(len(TIKTOKEN_COUNTS)))
def test_text_counts_equal_tiktoken(text: str, cl100k: int, o200k: int) -> None:
    assert count_texts([text], "cl100k_base") == [cl100k]
    assert count_texts([text], "o200k_base") == [o200k]


def test_special_token_text_is_counted_as_plain_text() -> None:
    # User data that happens to spell a special token must not become one (nor raise, as tiktoken would).
    assert count_texts(["<|endoftext|>"], "o200k_base")[0] > 1
    assert count_texts([], "o200k_base") == []


# The cookbook "How to count tokens with tiktoken" sent these messages to the API and printed
# usage.prompt_tokens: 129 for gpt-3.5-turbo and gpt-4, 124 for gpt-4o and gpt-4o-mini.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


@pytest.mark.parametrize(
    ("model", "reported"), [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)]
)
def test_a_request_counts_what_the_api_reported(model: str, reported: int) -> None:
    count = count_request_tokens(COOKBOOK_MESSAGES, model)
    assert count.tokens == reported
    assert count.exact


HELLO = [{"role": "user", "content": "hello world"}]


def test_message_overheads_images_and_schema_by_hand() -> None:
    # 3 priming the reply + 3 for the message + "user" (1) + "hello world" (2)
    assert count_request_tokens(HELLO, "gpt-4o").tokens == 9

    def with_image(detail: str | None) -> list[dict]:
        image = {"url": "data:image/png;base64,iVBORw0KGgo="} | ({"detail": detail} if detail else {})
        parts = [{"type": "text", "text": "hello world"}, {"type": "image_url", "image_url": image}]
        return [{"role": "user", "content": parts}]

    assert count_request_tokens(with_image(None), "gpt-4o").tokens == 9 + 765  # high detail, 1024×1024
    assert count_request_tokens(with_image("low"), "gpt-4o").tokens == 9 + 85
    # '{"type":"json_object"}' is 6 tokens
    assert count_request_tokens(HELLO, "gpt-4o", response_format={"type": "json_object"}).tokens == 9 + 6


@pytest.mark.parametrize(
    ("model", "encoding", "exact"),
    [
        ("gpt-4o-mini", "o200k_base", True),
        ("gpt-4.1-nano", "o200k_base", True),
        ("openai/gpt-4o", "o200k_base", True),
        ("o3-mini", "o200k_base", True),
        ("gpt-4-turbo", "cl100k_base", True),
        ("gpt-35-turbo", "cl100k_base", True),
        ("llama3.1:8b", "o200k_base", False),
        ("my-azure-deployment", "o200k_base", False),
    ],
)
def test_encoding_for_model(model: str, encoding: str, exact: bool) -> None:
    assert encoding_for_model(model) == (encoding, exact)
    assert count_request_tokens(HELLO, model).exact is exact


def test_calibration_scales_by_what_the_provider_reported() -> None:
    assert calibration_factor(reported_prompt_tokens=1_100, estimated_prompt_tokens=1_000) == pytest.approx(1.1)
    assert calibration_factor(reported_prompt_tokens=0, estimated_prompt_tokens=0) == 1.0  # no history yet
    assert calibrated(1_000, 1.1) == 1_100  # not 1,101 from 1100.0000000000002
    assert calibrated(999, 1.1) == 1_099  # 1098.9 rounds up
    with pytest.raises(ValueError, match="negative"):
        calibration_factor(-1, 10)


def test_expected_output_tokens_prefers_the_projects_history() -> None:
    assert expected_output_tokens(41.2, {"type": "string"}) == 42
    assert expected_output_tokens(None, None) == DEFAULT_OUTPUT_TOKENS


def test_expected_output_tokens_from_a_labeling_configs_schema() -> None:
    interface = LabelInterface(
        '<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
        '<Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/></Choices></View>'
    )
    # braces 2 + '"sentiment":' 4 + the longest of '"Positive"' / '"Negative"' / '"Neutral"' 3 + a comma 1
    assert expected_output_tokens(None, interface.to_json_schema()) == 10


@pytest.mark.parametrize(
    ("schema", "tokens"),
    [
        ({"type": "array", "items": {"type": "integer"}}, 2 + 3 * (2 + 1)),  # three items by default
        ({"type": "array", "items": {"type": "integer"}, "maxItems": 1}, 2 + 1 * (2 + 1)),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 5}, 2 + 5 * (2 + 1)),
        ({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}, FREE_TEXT_TOKENS),
        ({"anyOf": [{"type": "null"}, {"type": "number"}]}, 2),
        ({"type": ["boolean", "null"]}, 1),
        # '"x":' is 2 tokens; the reference resolves to an integer
        (
            {"$defs": {"n": {"type": "integer"}}, "type": "object", "properties": {"x": {"$ref": "#/$defs/n"}}},
            2 + 2 + 2 + 1,
        ),
    ],
)
def test_expected_output_tokens_by_schema_shape(schema: dict, tokens: int) -> None:
    assert expected_output_tokens(None, schema) == tokens
