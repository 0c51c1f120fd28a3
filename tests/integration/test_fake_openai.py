"""The fake OpenAI-compatible server itself, through the real ``openai`` client over HTTP: structured output,
refusals, logprobs, usage with prefix caching and the Batch API."""

import json
import math
import socket
import threading
import time
from urllib.parse import urlsplit

import openai
import pytest
from label_studio_sdk.label_interface import LabelInterface

from tests.conftest import labeling_config
from tests.fakes.openai_server import Answer
from tests.fakes.openai_server.schemas import check_instance, example_instance

MESSAGES = [{"role": "user", "content": "Is this sarcastic?"}]
SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["Sarcastic", "Not Sarcastic"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "spans": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"text": {"type": "string"}, "start": {"type": "integer"}},
                "required": ["text", "start"],
                "additionalProperties": False,
            },
        },
        "comment": {"type": ["string", "null"]},
    },
    "required": ["label", "score", "spans", "comment"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
TOOL = {"type": "function", "function": {"name": "label_task", "parameters": SCHEMA, "strict": True}}


@pytest.fixture
def client(llm_server, fake_llm) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{llm_server.url}/v1", api_key="test-key", max_retries=0)


def ask(client, **params):
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **params)


# structured output


def test_json_schema_answers_the_default_instance(client):
    completion = ask(client, response_format=JSON_SCHEMA)
    assert json.loads(completion.choices[0].message.content) == {
        "label": "Sarcastic",
        "score": 1,
        "spans": [{"text": "x", "start": 0}],
        "comment": None,
    }


def test_json_schema_answers_the_replys_instance(client, fake_llm):
    instance = {"label": "Not Sarcastic", "score": 4, "spans": [], "comment": "dry"}
    fake_llm.reply = lambda messages, index: instance
    assert json.loads(ask(client, response_format=JSON_SCHEMA).choices[0].message.content) == instance


def test_a_reply_that_breaks_the_schema_fails_loudly(client, fake_llm):
    fake_llm.reply = lambda messages, index: {"label": "Maybe", "score": 4, "spans": [], "comment": None}
    with pytest.raises(openai.InternalServerError, match="the reply does not match response_format 'answer'.*'Maybe'"):
        ask(client, response_format=JSON_SCHEMA)
    fake_llm.reply = lambda messages, index: "Sarcastic"
    with pytest.raises(openai.InternalServerError, match="the reply is text .* return a dict"):
        ask(client, response_format=JSON_SCHEMA)


def test_a_schema_the_default_cannot_satisfy_fails_loudly(client):
    code = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "code", "schema": code}}
    with pytest.raises(openai.InternalServerError, match="default instance .* does not match .* '\\^\\[A-Z\\]"):
        ask(client, response_format=response_format)


def test_default_instances_follow_refs_nulls_formats_and_item_counts():
    schema = {
        "$defs": {"tag": {"type": "string", "enum": ["a", "b", "c"]}},
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "minItems": 2, "uniqueItems": True},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "when": {"type": "string", "format": "date"},
            "ratio": {"type": "number", "exclusiveMinimum": 0.5},
            "fixed": {"const": 7},
            "nothing": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
        },
    }
    instance = example_instance(schema)
    assert instance == {
        "tags": ["a", "b"],
        "maybe": None,
        "when": "2000-01-01",
        "ratio": 1.5,
        "fixed": 7,
        "nothing": [],
    }
    check_instance(instance, schema)


def test_label_studio_schemas_get_a_valid_default_instance():
    schema = LabelInterface(labeling_config("evaluation")).to_json_schema()
    check_instance(example_instance(schema), schema)


def test_a_verbatim_answer_plays_a_model_that_breaks_the_schema(client, fake_llm):
    fake_llm.reply = lambda messages, index: Answer("Sarcastic, I think", verbatim=True)
    assert ask(client, response_format=JSON_SCHEMA).choices[0].message.content == "Sarcastic, I think"


def test_strict_schemas_must_close_every_object_as_openai_demands(client):
    loose = {"type": "object", "properties": {"label": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "loose", "schema": loose, "strict": True}}
    with pytest.raises(openai.BadRequestError, match="'additionalProperties' is required to be supplied"):
        ask(client, response_format=response_format)
    response_format["json_schema"]["strict"] = False
    assert json.loads(ask(client, response_format=response_format).choices[0].message.content) == {"label": "x"}


@pytest.mark.parametrize(
    ("enums", "refusal"),
    [
        ([[f"v{i}" for i in range(600)], [f"w{i}" for i in range(401)]], "at most 1000 enum values in total"),
        ([[f"{i:060d}" for i in range(251)]], "at most 15000 total string length for enum values with more than 250"),
    ],
    ids=["1001 values", "251 long values"],
)
def test_strict_schemas_must_keep_enums_within_openais_limits(client, enums, refusal):
    properties = {f"p{index}": {"type": "string", "enum": enum} for index, enum in enumerate(enums)}
    schema = {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
    response_format = {"type": "json_schema", "json_schema": {"name": "big", "schema": schema, "strict": True}}
    with pytest.raises(openai.BadRequestError, match=refusal):
        ask(client, response_format=response_format)
    enums[0].pop()  # one value fewer is within the limits
    assert json.loads(ask(client, response_format=response_format).choices[0].message.content)["p0"] == enums[0][0]


def test_json_object_mode_answers_json_content(client, fake_llm):
    content = ask(client, response_format={"type": "json_object"}).choices[0].message.content
    assert json.loads(content) == {"answer": "ANSWER to: Is this sarcastic?"}
    fake_llm.reply = lambda messages, index: {"label": "Sarcastic"}
    assert json.loads(ask(client, response_format={"type": "json_object"}).choices[0].message.content) == {
        "label": "Sarcastic"
    }


def test_a_forced_tool_choice_answers_a_tool_call_with_valid_arguments(client, fake_llm):
    instance = {"label": "Sarcastic", "score": 5, "spans": [{"text": "sure", "start": 3}], "comment": None}
    fake_llm.reply = lambda messages, index: instance
    named = {"type": "function", "function": {"name": "label_task"}}
    choice = ask(client, tools=[TOOL], tool_choice=named).choices[0]
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.type, call.function.name, json.loads(call.function.arguments)) == ("function", "label_task", instance)
    assert choice.finish_reason == "stop", "OpenAI ends a call it was told to make by name with 'stop'"
    assert ask(client, tools=[TOOL], tool_choice="required").choices[0].finish_reason == "tool_calls"


def test_auto_tool_choice_calls_the_tool_unless_the_reply_is_text(client, fake_llm):
    assert ask(client, tools=[TOOL]).choices[0].message.tool_calls[0].function.name == "label_task"
    fake_llm.reply = lambda messages, index: "No tool needed"
    message = ask(client, tools=[TOOL]).choices[0].message
    assert (message.content, message.tool_calls) == ("No tool needed", None)


# refusals, for an `auto` fallback


def test_refused_response_format_answers_400_naming_it_and_is_recorded(client, fake_llm):
    fake_llm.refuse = {"response_format"}
    with pytest.raises(openai.BadRequestError, match="response_format") as refused:
        ask(client, response_format=JSON_SCHEMA)
    assert refused.value.status_code == 400
    assert ask(client).choices[0].message.content == "ANSWER to: Is this sarcastic?"
    first, second = fake_llm.chat_requests
    assert (first.status, "response_format" in first.body) == (400, True)
    assert first.error == "Unrecognized request argument supplied: response_format"
    assert (second.status, "response_format" in second.body) == (200, False)


def test_refused_json_schema_still_allows_json_object(client, fake_llm):
    fake_llm.refuse = {"json_schema"}
    with pytest.raises(openai.BadRequestError, match="'response_format' of type 'json_schema' is not supported"):
        ask(client, response_format=JSON_SCHEMA)
    assert json.loads(ask(client, response_format={"type": "json_object"}).choices[0].message.content)


def test_refused_tools_answer_400_naming_them(client, fake_llm):
    fake_llm.refuse = {"tools"}
    with pytest.raises(openai.BadRequestError, match="tools"):
        ask(client, tools=[TOOL], tool_choice="required")
    assert [request.status for request in fake_llm.chat_requests] == [400]
    assert fake_llm.completions == []


def test_refused_logprobs_answer_400_naming_them(client, fake_llm):
    fake_llm.refuse = {"logprobs"}
    with pytest.raises(openai.BadRequestError, match="'logprobs' is not supported") as refused:
        ask(client, logprobs=True)
    assert refused.value.body["param"] == "logprobs"
    assert ask(client).choices[0].logprobs is None


# logprobs


def test_logprobs_cover_the_content_token_by_token(client, fake_llm):
    choice = ask(client, logprobs=True, top_logprobs=3).choices[0]
    tokens = choice.logprobs.content
    assert "".join(token.token for token in tokens) == choice.message.content
    assert {token.logprob for token in tokens} == {-0.01}
    assert all(len(token.top_logprobs) == 3 and token.top_logprobs[0].token == token.token for token in tokens)
    assert all(bytes(token.bytes).decode() == token.token for token in tokens)


def test_logprobs_are_set_by_the_test_per_fake_or_per_answer(client, fake_llm):
    fake_llm.logprob = -0.7
    assert {token.logprob for token in ask(client, logprobs=True).choices[0].logprobs.content} == {-0.7}
    fake_llm.reply = lambda messages, index: Answer({"label": "Sarcastic"}, logprob=-2.5)
    choice = ask(client, logprobs=True, response_format={"type": "json_object"}).choices[0]
    assert "".join(token.token for token in choice.logprobs.content) == '{"label": "Sarcastic"}'
    assert {token.logprob for token in choice.logprobs.content} == {-2.5}
    assert ask(client).choices[0].logprobs is None


# usage and prefix caching


def test_cached_tokens_count_the_prefix_shared_with_an_earlier_request(client):
    instructions = {"role": "system", "content": "Label the text. " * 375}  # 6,000 characters: 1,500 tokens
    first = client.chat.completions.create(
        model="gpt-4o-mini", messages=[instructions, {"role": "user", "content": "Task one"}]
    )
    second = client.chat.completions.create(
        model="gpt-4o-mini", messages=[instructions, {"role": "user", "content": "Another task"}]
    )
    other_model = client.chat.completions.create(
        model="gpt-4o", messages=[instructions, {"role": "user", "content": "Another task"}]
    )
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    # shared: '{"messages":[{"role":"system","content":"' (41) + 6,000 + '"},{"role":"user","content":"' (29)
    # = 6,070 characters, 1,517 tokens, cached in 128-token steps
    assert second.usage.prompt_tokens_details.cached_tokens == 1408
    assert other_model.usage.prompt_tokens_details.cached_tokens == 0
    prompt = json.dumps(
        {"messages": [instructions, {"role": "user", "content": "Another task"}]}, separators=(",", ":")
    )
    assert second.usage.prompt_tokens == math.ceil(len(prompt) / 4)


def test_a_short_prompt_is_never_cached(client):
    ask(client)
    again = ask(client)
    assert again.usage.prompt_tokens_details.cached_tokens == 0
    assert (again.usage.prompt_tokens, again.usage.completion_tokens) == (16, 8)  # 61 and 29 characters


# Batch API


def batch_file(*custom_ids: str, **body) -> bytes:
    lines = [
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Task {custom_id}"}]} | body,
        }
        for custom_id in custom_ids
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def start_batch(client, content: bytes, **metadata):
    uploaded = client.files.create(file=("tasks.jsonl", content), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata=metadata or None
    )


def read_lines(client, file_id: str | None) -> dict[str, dict]:
    if file_id is None:
        return {}
    lines = [json.loads(line) for line in client.files.content(file_id).text.splitlines()]
    return {line["custom_id"]: line for line in lines}


def test_a_batch_through_its_whole_life(client, fake_llm):
    fake_llm.batch_turnaround = 100
    fake_llm.batch_line_failures = {"t3": (500, "The model crashed")}
    content = batch_file("t1", "t2", "t3", "t4", response_format=JSON_SCHEMA)
    batch = start_batch(client, content, project="7")
    assert (batch.status, batch.metadata, batch.endpoint) == ("validating", {"project": "7"}, "/v1/chat/completions")
    assert [upload.content for upload in fake_llm.uploads] == [content]

    running = client.batches.retrieve(batch.id)
    assert (running.status, running.request_counts.completed, running.output_file_id) == ("in_progress", 0, None)
    fake_llm.advance_clock(50)
    halfway = client.batches.retrieve(batch.id)
    assert (halfway.status, halfway.request_counts.total, halfway.request_counts.completed) == ("in_progress", 4, 2)
    fake_llm.advance_clock(60)
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.completed_at >= done.in_progress_at
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 1)

    outputs, errors = read_lines(client, done.output_file_id), read_lines(client, done.error_file_id)
    assert sorted(outputs) == ["t1", "t2", "t4"]
    assert errors["t3"]["response"]["status_code"] == 500
    assert errors["t3"]["response"]["body"]["error"]["message"] == "The model crashed"
    for line in outputs.values():
        assert line["error"] is None and line["response"]["status_code"] == 200 and line["id"].startswith("batch_req_")
    assert done.usage.input_tokens == sum(
        line["response"]["body"]["usage"]["prompt_tokens"] for line in outputs.values()
    )

    live = client.chat.completions.with_raw_response.create(**json.loads(content.splitlines()[0])["body"])
    live = live.http_response.json()
    batched = outputs["t1"]["response"]["body"]
    assert json.loads(batched["choices"][0]["message"]["content"])["label"] == "Sarcastic"
    assert (batched["choices"], batched["usage"]) == (live["choices"], live["usage"]), "as the live endpoint answers"
    assert (len(fake_llm.batch_completions), len(fake_llm.live_completions)) == (3, 1)
    assert [c.custom_id for c in fake_llm.batch_completions] == ["t1", "t2", "t4"]
    assert list(fake_llm.asked_more_than_once().values()) == [2], "t1 was asked in the batch and live"


def test_the_output_file_comes_in_its_own_order(client, fake_llm):
    fake_llm.batch_turnaround = 0
    ids = [f"t{i:02}" for i in range(20)]
    done = client.batches.retrieve(start_batch(client, batch_file(*ids)).id)
    order = list(read_lines(client, done.output_file_id))
    assert sorted(order) == ids and order != ids


def test_a_batch_that_runs_out_of_time_expires_with_part_of_its_lines(client, fake_llm):
    fake_llm.batch_turnaround, fake_llm.batch_expires_after = 100, 50
    batch = start_batch(client, batch_file("a", "b", "c", "d"))
    fake_llm.advance_clock(60)
    expired = client.batches.retrieve(batch.id)
    assert expired.status == "expired" and expired.expired_at == expired.expires_at
    assert (expired.request_counts.completed, expired.request_counts.failed) == (2, 0)
    done, left = read_lines(client, expired.output_file_id), read_lines(client, expired.error_file_id)
    assert sorted(done) == ["a", "b"] and sorted(left) == ["c", "d"]
    assert {line["error"]["code"] for line in left.values()} == {"batch_expired"}
    assert all(line["response"] is None for line in left.values())
    assert len(fake_llm.batch_completions) == 2


def test_a_cancelled_batch_keeps_the_lines_done_so_far(client, fake_llm):
    fake_llm.batch_turnaround = 100
    batch = start_batch(client, batch_file("a", "b", "c", "d"))
    fake_llm.advance_clock(25)
    assert client.batches.cancel(batch.id).status == "cancelling"
    fake_llm.advance_clock(100)
    cancelled = client.batches.retrieve(batch.id)
    assert (cancelled.status, cancelled.request_counts.completed, cancelled.error_file_id) == ("cancelled", 1, None)
    assert list(read_lines(client, cancelled.output_file_id)) == ["a"]
    with pytest.raises(openai.ConflictError, match="Cannot cancel a batch with status 'cancelled'"):
        client.batches.cancel(batch.id)


def test_batch_input_files_are_held_to_the_providers_limits(client, fake_llm):
    too_many = b'{"custom_id": "x"}\n' * 50_001
    with pytest.raises(openai.BadRequestError, match="50001 requests, more than the 50000 allowed"):
        client.files.create(file=("big.jsonl", too_many), purpose="batch")
    fake_llm.batch_max_bytes = 1000
    with pytest.raises(openai.BadRequestError, match="File is too large: 1001 bytes"):
        client.files.create(file=("big.jsonl", b"x" * 1001), purpose="batch")
    assert fake_llm.uploads == []


def test_a_batch_with_a_bad_input_file_fails_validation(client):
    content = batch_file("a", "a") + batch_file("b", model="gpt-4o")
    failed = client.batches.retrieve(start_batch(client, content).id)
    assert failed.status == "failed"
    assert [(error.code, error.line) for error in failed.errors.data] == [
        ("duplicate_custom_id", 2),
        ("mismatched_model", 3),
    ]


def test_files_can_be_looked_up_and_deleted(client, fake_llm):
    uploaded = client.files.create(file=("tasks.jsonl", batch_file("a")), purpose="batch")
    found = client.files.retrieve(uploaded.id)
    assert (found.filename, found.purpose, found.bytes, found.status) == (
        "tasks.jsonl",
        "batch",
        uploaded.bytes,
        "processed",
    )
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)


def test_batches_are_listed_newest_first_page_by_page(client, fake_llm):
    first, second = start_batch(client, batch_file("a")), start_batch(client, batch_file("b"))
    assert [batch.id for batch in client.batches.list()] == [second.id, first.id]
    assert [batch.id for batch in client.batches.list(limit=1)] == [second.id, first.id]
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_unknown")


def test_a_request_cut_off_by_its_client_is_not_recorded(client, llm_server, fake_llm):
    """A worker SIGKILLed mid-request leaves half a body: no provider sees that call, so the fake does not count it."""
    host, port = urlsplit(llm_server.url).hostname, urlsplit(llm_server.url).port
    with socket.create_connection((host, port)) as connection:
        connection.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"model": "gpt'
        )
        connection.shutdown(socket.SHUT_WR)
        assert connection.recv(1024) == b""  # closed without an answer

    assert ask(client).choices[0].message.content
    assert [r.body["messages"] for r in fake_llm.chat_requests] == [MESSAGES]


def test_a_call_still_answered_when_the_records_are_cleared_is_recorded_nowhere(client, fake_llm):
    """A test's worker stopped with calls in flight: their answers must not show up among the next test's calls."""
    fake_llm.delay = 0.5
    late = threading.Thread(target=lambda: client.chat.completions.create(model="m", messages=MESSAGES))
    late.start()
    deadline = time.monotonic() + 5
    while fake_llm.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_llm.in_flight == 1, "the call is being answered"
    fake_llm.reset()  # what the next test's fake_llm fixture does
    late.join()
    assert (fake_llm.in_flight, fake_llm.live_completions, fake_llm.call_spans) == (0, [], [])
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(fake_llm.live_completions) == 1 and fake_llm.in_flight == 0, "calls after the clear are recorded"
