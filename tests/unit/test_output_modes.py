import json

import pytest
from openai.types.chat import ChatCompletionMessage

from shared.domain.answers.json_in_text import first_json, json_object_in
from shared.domain.answers.output_modes import (
    ANSWER_NAME,
    AnswerFormatError,
    read_answer,
    request_options,
    resolve_output_mode,
)

SCHEMA = {
    "type": "object",
    "properties": {"c": {"type": "string", "enum": ["A"]}},
    "required": ["c"],
    "additionalProperties": False,
}


def test_json_schema_mode_sends_a_strict_response_format():
    assert request_options("json_schema", SCHEMA) == {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": ANSWER_NAME, "schema": SCHEMA, "strict": True},
        }
    }


def test_tools_mode_forces_one_function_with_the_schema():
    options = request_options("tools", SCHEMA)
    [tool] = options["tools"]
    assert tool["type"] == "function"
    assert (tool["function"]["name"], tool["function"]["parameters"], tool["function"]["strict"]) == (
        ANSWER_NAME,
        SCHEMA,
        True,
    )
    assert options["tool_choice"] == {"type": "function", "function": {"name": ANSWER_NAME}}


def test_text_mode_sends_nothing_and_auto_must_be_resolved_first():
    assert request_options("text", SCHEMA) == {}
    with pytest.raises(ValueError, match="resolve auto first"):
        request_options("auto", SCHEMA)


@pytest.mark.parametrize(
    ("provider", "version", "expected"),
    [
        ("openai", None, "json_schema"),
        ("ollama", None, "json_schema"),
        ("azure", "2024-08-01-preview", "json_schema"),
        ("azure", "2024-10-21", "json_schema"),
        ("azure", "2024-02-01", "tools"),
        ("azure", "2023-12-01-preview", "tools"),
        ("azure", "2023-05-15", "text"),
    ],
)
def test_auto_picks_what_the_provider_takes(provider, version, expected):
    assert resolve_output_mode("auto", provider, version) == expected
    assert resolve_output_mode("tools", provider, version) == "tools"


def message(**fields):
    return ChatCompletionMessage(role="assistant", **fields)


def test_json_schema_answer_is_the_content():
    assert read_answer(message(content='{"c": "A"}'), "json_schema") == {"c": "A"}
    assert read_answer({"role": "assistant", "content": '{"c": "A"}'}, "json_schema") == {"c": "A"}


@pytest.mark.parametrize(
    "content",
    [
        '```json\n{"c": "A"}\n```',
        '```\n{"c": "A"}```',
        'Here you go:\n```JSON\n{"c": "A"}\n```\nAnything else?',
        'Sure! {"c": "A"} is my answer',
        '{"c": "A"}\n\n{"c": "B"}',
    ],
)
def test_code_fences_and_surrounding_words_are_tolerated(content):
    assert read_answer(message(content=content), "json_schema") == {"c": "A"}


def test_tools_answer_is_the_call_arguments():
    call = {"id": "call_1", "type": "function", "function": {"name": ANSWER_NAME, "arguments": json.dumps({"c": "A"})}}
    assert read_answer(message(content=None, tool_calls=[call]), "tools") == {"c": "A"}
    fenced = {**call, "function": {"name": ANSWER_NAME, "arguments": '```json\n{"c": "A"}\n```'}}
    assert read_answer({"content": None, "tool_calls": [fenced]}, "tools") == {"c": "A"}


def test_a_provider_that_ignored_the_tool_but_wrote_json_is_read_too():
    assert read_answer(message(content='{"c": "A"}'), "tools") == {"c": "A"}


@pytest.mark.parametrize(
    ("msg", "mode", "error"),
    [
        (message(content="I think it is A."), "json_schema", "no JSON object in its content"),
        (message(content="[1, 2]"), "json_schema", "no JSON object"),
        (message(content="A"), "tools", "no tool call and no JSON object"),
        (message(content=None, refusal="I can't help with that"), "json_schema", "refused to answer: I can't"),
        (
            {"content": None, "tool_calls": [{"function": {"name": ANSWER_NAME, "arguments": "{broken"}}]},
            "tools",
            "no tool call and no JSON object",
        ),
    ],
)
def test_a_missing_answer_object_is_a_task_error(msg, mode, error):
    with pytest.raises(AnswerFormatError, match=error):
        read_answer(msg, mode)


def test_text_mode_reads_a_json_object_if_there_is_one():
    assert read_answer(message(content="Sarcastic"), "text") is None
    assert read_answer(message(content='The answer: {"c": "A"}'), "text") == {"c": "A"}
    assert read_answer(message(content=None), "text") is None


def test_json_object_in_skips_braces_that_open_no_object():
    assert json_object_in('a {b} then {"c": {"d": [1]}}') == {"c": {"d": [1]}}
    assert json_object_in("") is None and json_object_in(None) is None


def test_the_first_json_in_prose_is_read_from_a_fence_first_and_may_be_a_list():
    fenced = 'Maybe {"c": "B"}?\n```json\n{"c": "A"}\n```'
    assert first_json(fenced, "{") == {"c": "A"} == json_object_in(fenced)
    assert first_json('Labels: ["A", "B"], then {"c": "C"}', "[{") == ["A", "B"]
    assert first_json('Labels: ["A", "B"], then {"c": "C"}', "{") == {"c": "C"}
    assert first_json("no JSON here", "[{") is None
