"""How the answer's schema travels to the model, and how the answer object comes back.

Three ways, one per ``OUTPUT_MODE``:

- ``json_schema``: ``response_format={"type": "json_schema", "json_schema": {"name", "schema",
  "strict": true}}``; the answer is the message's content;
- ``tools``: one function whose parameters are the schema, and ``tool_choice`` forcing it; the answer
  is the call's arguments (for providers without ``response_format`` schemas);
- ``text``: nothing; the answer is prose (a JSON object in it is still read, if the model wrote one).

``auto`` picks per provider (``resolve_output_mode``); the caller falls back when a provider refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.domain.answers.json_in_text import json_object_in
from shared.domain.config import OutputMode
from shared.domain.errors import TaskError

ANSWER_NAME = "annotation"  # the response format's and the tool's name: [a-zA-Z0-9_-]{1,64}

# Azure OpenAI took json_schema response formats from 2024-08-01-preview, tools from 2023-12-01-preview.
_AZURE_JSON_SCHEMA_SINCE = "2024-08-01"
_AZURE_TOOLS_SINCE = "2023-12-01"


class AnswerFormatError(TaskError):
    """The model's message holds no answer object where the output mode promised one."""

    status = 502


def resolve_output_mode(mode: OutputMode, provider: str, azure_api_version: str | None = None) -> str:
    """The concrete mode for ``auto``: json_schema where the provider takes it, else tools, else text."""
    if mode != "auto":
        return mode
    if provider != "azure":
        return "json_schema"  # OpenAI, and Ollama's OpenAI-compatible endpoint since 0.5
    version = azure_api_version or ""
    if version >= _AZURE_JSON_SCHEMA_SINCE:
        return "json_schema"
    return "tools" if version >= _AZURE_TOOLS_SINCE else "text"


def request_options(mode: str, schema: dict[str, Any], name: str = ANSWER_NAME) -> dict[str, Any]:
    """The chat completion request's fields beyond model, messages, n and temperature for a (resolved) output mode."""
    if mode == "json_schema":
        json_schema = {"name": name, "schema": schema, "strict": True}
        return {"response_format": {"type": "json_schema", "json_schema": json_schema}}
    if mode == "tools":
        function = {
            "name": name,
            "description": "Record the annotation of the task.",
            "parameters": schema,
            "strict": True,
        }
        return {
            "tools": [{"type": "function", "function": function}],
            "tool_choice": {"type": "function", "function": {"name": name}},
        }
    if mode == "text":
        return {}
    raise ValueError(f"unknown output mode {mode!r}: use json_schema, tools or text (resolve auto first)")


def _field(item: Any, name: str) -> Any:
    """A field of the openai client's objects or of their dict form."""
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def read_answer(message: Any, mode: str) -> dict[str, Any] | None:
    """The answer object of a chat completion's message, for a resolved output mode.

    Raises AnswerFormatError when json_schema or tools promised an object and the message has none
    (a refusal, or a provider that ignored the schema and wrote prose); returns None in text mode
    when the prose holds no JSON object.
    """
    refusal = _field(message, "refusal")
    if refusal and mode != "text":
        raise AnswerFormatError(f"the model refused to answer: {refusal}")
    content = _field(message, "content")
    if mode == "tools":
        for call in _field(message, "tool_calls") or []:
            arguments = _field(_field(call, "function"), "arguments")
            found = arguments if isinstance(arguments, dict) else json_object_in(arguments)
            if found is not None:
                return found
    found = json_object_in(content)
    if found is None and mode != "text":
        where = "no tool call and no JSON object in its content" if mode == "tools" else "no JSON object in its content"
        raise AnswerFormatError(f"the model's answer has {where} ({mode} output mode): {str(content)[:200]!r}")
    return found
