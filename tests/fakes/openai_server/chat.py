"""One chat completion, answered the same way live and inside a batch.

The request decides the answer's form: a forced ``tool_choice`` (``"required"`` or a named function) makes a
``tool_calls`` message; else ``response_format`` ``json_schema``/``json_object`` makes JSON content; else
``tools`` with ``tool_choice`` ``"auto"`` (or none given) call the first tool unless the reply is text; else
text. The test's reply function gives the value of each choice (see ``FakeOpenAI.reply``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.fakes.openai_server.errors import ApiError
from tests.fakes.openai_server.records import Completion
from tests.fakes.openai_server.schemas import (
    SchemaProblem,
    check_instance,
    check_schema,
    example_instance,
    instance_saying,
)
from tests.fakes.openai_server.strict import strict_problems
from tests.fakes.openai_server.tokens import count_tokens, prompt_text, split_tokens

if TYPE_CHECKING:
    from tests.fakes.openai_server.fake import FakeOpenAI

MAX_TOP_LOGPROBS = 20
LOWEST_LOGPROB = -9999.0  # what OpenAI reports for a token it gives no chance
EMPTY_PARAMETERS = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class Answer:
    """What a reply function returns when a plain ``str``/``dict`` is not enough."""

    value: str | dict
    logprob: float | None = None  # every token's logprob in this choice; None: FakeOpenAI.logprob
    verbatim: bool = False  # send ``value`` as the content (or arguments) as is: a model that breaks the schema
    fill: bool = False  # a text ``value`` said in whatever schema is asked for (``schemas.instance_saying``)


Reply = Callable[[list[dict], int], "str | dict | Answer"]


def default_reply(messages: list[dict], index: int) -> str:
    """Echo the last user text, so tests can see what the model was sent."""
    content = messages[-1]["content"]
    if isinstance(content, list):
        content = " ".join(part.get("text", "") for part in content if part.get("type") == "text")
    suffix = f" #{index + 1}" if index else ""
    return f"ANSWER to: {content}{suffix}"


@dataclass(frozen=True)
class _Form:
    """The form a request asks its answer to take."""

    kind: str  # "text", "json_object", "json_schema" or "tool"
    label: str = ""  # how errors name the schema: "response_format 'x'" or "function 'x'"
    schema: dict | None = None
    tool: str = ""
    forced: bool = True  # for "tool": False when the model may answer text instead (tool_choice "auto")
    named: bool = False  # tool_choice named the function: OpenAI then ends with finish_reason "stop"


def complete(
    fake: FakeOpenAI,
    body: dict,
    *,
    via: str,
    custom_id: str | None = None,
    batch_id: str | None = None,
    epoch: int | None = None,
):
    """The chat.completion object for ``body``; raises ApiError for what the provider would refuse.  A live call
    gives the ``epoch`` it was answered in: it is recorded only if the records were not cleared meanwhile."""
    _refuse(fake.refuse, body)
    form = _form(body)
    top = _top_logprobs(body)
    messages = body.get("messages", [])
    choices, outputs = [], []
    for index in range(int(body.get("n") or 1)):
        choice, output = _choice(fake, form, messages, index, top)
        choices.append(choice)
        outputs.append(output)
    model = body.get("model", "fake")
    prompt = prompt_text(body)
    prompt_tokens = count_tokens(prompt)
    completion_tokens = sum(count_tokens(output) for output in outputs)
    with fake._lock:
        cached = fake._prefix_cache.cached_tokens(model, prompt)
        answer = {
            "id": fake._next_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(fake.now()),
            "model": model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }
        if fake.keep_records and (epoch is None or fake.current(epoch)):
            fake.completions.append(Completion(via, body, answer, custom_id, batch_id))
    return answer


def _refuse(refused: set[str], body: dict) -> None:
    """Play a server without structured output (older Ollama and vLLM answer 400 naming the parameter), or a
    model without logprobs (OpenAI's reasoning models)."""
    response_format = body.get("response_format")
    if response_format and "response_format" in refused:
        raise ApiError(400, "Unrecognized request argument supplied: response_format", param="response_format")
    if response_format and response_format.get("type") == "json_schema" and "json_schema" in refused:
        message = "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."
        raise ApiError(400, message, param="response_format")
    if body.get("tools") and "tools" in refused:
        raise ApiError(400, "Unrecognized request argument supplied: tools", param="tools")
    if body.get("logprobs") and "logprobs" in refused:
        raise ApiError(400, "Unsupported parameter: 'logprobs' is not supported with this model.", param="logprobs")


def _form(body: dict) -> _Form:
    tool = _tool_form(body)
    if tool and tool.forced:
        return tool
    response_format = body.get("response_format") or {"type": "text"}
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        label = f"response_format '{spec.get('name')}'"
        if not isinstance(spec.get("name"), str) or not isinstance(spec.get("schema"), dict):
            raise ApiError(400, "response_format json_schema needs a 'name' and a 'schema'", param="response_format")
        _check_request_schema(spec["schema"], label, strict=spec.get("strict") is True, param="response_format")
        return _Form("json_schema", label, spec["schema"])
    if kind == "json_object":
        return _Form("json_object", "response_format json_object")
    if kind != "text":
        raise ApiError(400, f"Invalid value for 'response_format.type': {kind!r}", param="response_format")
    return tool or _Form("text")


def _tool_form(body: dict) -> _Form | None:
    functions = {
        tool["function"]["name"]: tool["function"] for tool in body.get("tools") or [] if tool.get("type") == "function"
    }
    choice = body.get("tool_choice", "auto")
    if not functions or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if choice.get("type") != "function" or name not in functions:
            raise ApiError(400, f"Invalid value for 'tool_choice': {json.dumps(choice)}", param="tool_choice")
    elif choice in ("auto", "required"):
        name = next(iter(functions))
    else:
        raise ApiError(400, f"Invalid value for 'tool_choice': {choice!r}", param="tool_choice")
    function = functions[name]
    schema = function.get("parameters") or EMPTY_PARAMETERS
    label = f"function '{name}'"
    _check_request_schema(schema, label, strict=function.get("strict") is True, param="tools")
    return _Form("tool", label, schema, name, forced=choice != "auto", named=isinstance(choice, dict))


def _check_request_schema(schema: dict, label: str, *, strict: bool, param: str) -> None:
    for problem in _schema_problems(json.dumps(schema, sort_keys=True), strict):
        raise ApiError(400, f"Invalid schema for {label}: {problem}", param=param)


@functools.lru_cache(maxsize=256)
def _schema_problems(schema_json: str, strict: bool) -> tuple[str, ...]:
    """What a provider refuses in a request's schema; checked once per distinct schema, as a job asks with the same
    one thousands of times (a benchmark's fake would spend its CPU on it)."""
    schema = json.loads(schema_json)
    try:
        check_schema(schema)
    except SchemaProblem as problem:
        return (str(problem),)
    return tuple(strict_problems(schema)) if strict else ()


def _top_logprobs(body: dict) -> int | None:
    """How many alternatives each token lists, or None when the request wants no logprobs."""
    top = body.get("top_logprobs")
    if not body.get("logprobs"):
        if top is not None:
            raise ApiError(400, "top_logprobs requires logprobs to be true", param="top_logprobs")
        return None
    if top is not None and not 0 <= top <= MAX_TOP_LOGPROBS:
        raise ApiError(400, f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}", param="top_logprobs")
    return top or 0


def _choice(fake: FakeOpenAI, form: _Form, messages: list[dict], index: int, top: int | None) -> tuple[dict, str]:
    """One choice and the text its completion tokens are counted on."""
    reply = fake.reply(messages, index) if fake.reply else None
    answer = reply if isinstance(reply, Answer) else Answer(reply)
    wants_text = form.kind == "text" or (form.kind == "tool" and not form.forced and isinstance(answer.value, str))
    if wants_text:
        output = _text(answer, messages, index)
    else:
        output = _json(answer, form, messages, index)
    if form.kind == "tool" and not wants_text:
        call = {"id": fake._next_id("call_"), "type": "function", "function": {"name": form.tool, "arguments": output}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish_reason = "stop" if form.named else "tool_calls"
        logprobs = {"content": None, "refusal": None}
    else:
        message = {"role": "assistant", "content": output}
        finish_reason = "stop"
        logprob = fake.logprob if answer.logprob is None else answer.logprob
        logprobs = {"content": _token_logprobs(output, logprob, top or 0), "refusal": None}
    choice = {"index": index, "message": message, "finish_reason": finish_reason}
    choice["logprobs"] = logprobs if top is not None else None
    return choice, output


def _text(answer: Answer, messages: list[dict], index: int) -> str:
    if answer.value is None:
        return default_reply(messages, index)
    return answer.value if isinstance(answer.value, str) else json.dumps(answer.value)


def _json(answer: Answer, form: _Form, messages: list[dict], index: int) -> str:
    """The JSON text of the instance, validated: a reply that breaks the schema is the test's bug, said loudly."""
    if answer.verbatim:
        return answer.value
    whose = "the reply"
    if answer.value is None:
        if form.kind == "json_object":
            return json.dumps({"answer": default_reply(messages, index)})
        whose = "the fake's default instance (return the instance from reply instead)"
        try:
            instance = example_instance(form.schema)
        except SchemaProblem as problem:
            raise ApiError(500, f"fake: no default instance for {form.label}: {problem}") from None
    elif answer.fill and isinstance(answer.value, str):
        instance = (
            {"answer": answer.value} if form.kind == "json_object" else instance_saying(form.schema, answer.value)
        )
    elif isinstance(answer.value, str):
        try:
            instance = json.loads(answer.value)
        except ValueError:
            raise ApiError(
                500,
                f"fake: the reply is text ({answer.value[:80]!r}) but the request asks for {form.label}: return a "
                "dict (the instance), or Answer(text, verbatim=True) to play a model that breaks the schema",
            ) from None
    else:
        instance = answer.value
    if form.kind == "json_object":
        if not isinstance(instance, dict):
            raise ApiError(500, f"fake: json_object mode answers a JSON object, {whose} gave {instance!r}")
    else:
        try:
            check_instance(instance, form.schema)
        except SchemaProblem as problem:
            raise ApiError(500, f"fake: {whose} does not match {form.label}: {problem}") from None
    return json.dumps(instance)


def _token_logprobs(text: str, logprob: float, top: int) -> list[dict]:
    """Each 4-character token with ``logprob``; its alternatives share the rest of the probability, halving."""
    rest = 1.0 - math.exp(logprob)
    entries = []
    for token in split_tokens(text):
        alternatives = [_logprob_entry(token, logprob)] + [
            _logprob_entry(f"<alt{k}>", math.log(rest / 2**k) if rest > 0 else LOWEST_LOGPROB) for k in range(1, top)
        ]
        entries.append(_logprob_entry(token, logprob) | {"top_logprobs": alternatives[:top]})
    return entries


def _logprob_entry(token: str, logprob: float) -> dict:
    return {"token": token, "bytes": list(token.encode()), "logprob": max(LOWEST_LOGPROB, logprob)}
