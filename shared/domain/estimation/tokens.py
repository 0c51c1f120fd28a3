"""Input tokens of a chat request, counted offline, and the output tokens to expect.

Text is counted exactly with the model's own BPE encoding by ``toktok`` (pinned), whose ``cl100k_base``
and ``o200k_base`` vocabularies are compiled into its wheel: ``tiktoken`` would download them on first
use, which these machines cannot.  toktok's counts equal tiktoken's with OpenAI's published encoding
files (checked offline on 3,424 texts, 539,447 o200k tokens: no difference).  The first count in a
process loads the encoding (seconds, and memory: bench/README.md); later counts are fast.

Around the text, OpenAI's counting rules for chat models (the "How to count tokens with tiktoken"
cookbook, checked there against the API's ``usage.prompt_tokens``): 3 tokens per message, 1 more when it
has a ``name``, and 3 priming the reply.  Parts that are not text are estimates:

- an image costs ``IMAGE_TOKENS``: a high-detail 1024×1024 image is 85 + 4 tiles × 170 = 765 tokens on
  gpt-4o (``detail: low`` is 85); other sizes and gpt-4o-mini's inflated image tokens differ;
- a ``response_format`` schema costs the tokens of its compact JSON (OpenAI does not publish how it
  renders schemas into the prompt).

Models outside OpenAI's families (Ollama's Llama, Qwen, Mistral…) are counted with ``o200k_base`` as a
stand-in and flagged inexact: on this repository's prose and code, o200k gives 6% fewer tokens than
Qwen's tokenizer (per text: median -6%, 90th percentile 10%).  ``calibration_factor`` corrects both kinds
of estimate with what the provider reported for the project's past requests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import toktok

TOKENS_PER_MESSAGE = 3  # <|start|>{role}<|message|>…<|end|>
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>
IMAGE_TOKENS = {"low": 85, "high": 765, "auto": 765}
FALLBACK_ENCODING = "o200k_base"

# Model name prefixes (checked in order: longest first where one prefixes another) and their encodings.
_ENCODINGS: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),  # Azure's spelling
)


@dataclass(frozen=True)
class TokenCount:
    """The input tokens of one request; ``exact`` when the text was counted with the model's own encoding."""

    tokens: int
    encoding: str
    exact: bool


def encoding_for_model(model: str) -> tuple[str, bool]:
    """The BPE encoding of a model name (``openai/`` style prefixes ignored) and whether it is its own."""
    name = model.rsplit("/", 1)[-1].lower()
    for prefix, encoding in _ENCODINGS:
        if name.startswith(prefix):
            return encoding, True
    return FALLBACK_ENCODING, False


def count_texts(texts: Sequence[str], encoding: str) -> list[int]:
    """Tokens of each text (special-token text such as ``<|endoftext|>`` counts as plain text, as users'
    data reaches the model)."""
    return toktok.batch_count(list(texts), encoding, threads=1) if texts else []


def _image_tokens(part: dict[str, Any]) -> int:
    detail = (part.get("image_url") or {}).get("detail", "auto")
    return IMAGE_TOKENS.get(detail, IMAGE_TOKENS["auto"])


def _message_parts(message: dict[str, Any]) -> tuple[list[str], int]:
    """The texts a message sends and the tokens of its images."""
    texts = [value for key, value in message.items() if key != "content" and isinstance(value, str)]
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
        return texts, 0
    images = 0
    for part in content or []:
        if part.get("type") == "text":
            texts.append(part.get("text") or "")
        elif part.get("type") == "image_url":
            images += _image_tokens(part)
    return texts, images


def count_request_tokens(
    messages: list[dict[str, Any]], model: str, response_format: dict[str, Any] | None = None
) -> TokenCount:
    """The prompt tokens a chat completion request will be billed for (before calibration)."""
    encoding, exact = encoding_for_model(model)
    texts: list[str] = []
    total = REPLY_PRIMING
    for message in messages:
        message_texts, images = _message_parts(message)
        texts.extend(message_texts)
        total += TOKENS_PER_MESSAGE + images + (TOKENS_PER_NAME if "name" in message else 0)
    if response_format is not None:
        texts.append(json.dumps(response_format, separators=(",", ":"), ensure_ascii=False))
    return TokenCount(total + sum(count_texts(texts, encoding)), encoding, exact)


def calibration_factor(reported_prompt_tokens: int, estimated_prompt_tokens: int) -> float:
    """How much to scale this module's counts for a project: the prompt tokens the provider reported for its
    past requests over what ``count_request_tokens`` gave for the same requests (1.0 before any).  Include
    only requests that reached the provider: answers from the cache report no usage."""
    if reported_prompt_tokens < 0 or estimated_prompt_tokens < 0:
        raise ValueError("token counts cannot be negative")
    if reported_prompt_tokens == 0 or estimated_prompt_tokens == 0:
        return 1.0
    return reported_prompt_tokens / estimated_prompt_tokens


def calibrated(tokens: int, factor: float) -> int:
    """A count scaled by a calibration factor, rounded up (float noise such as 1100.0000000000002 aside)."""
    return math.ceil(round(tokens * factor, 6))


# --- output ----------------------------------------------------------------------------------------

DEFAULT_OUTPUT_TOKENS = 256  # no history, no schema: a short free-text answer
FREE_TEXT_TOKENS = 64  # a string without an enum: a sentence or two
NUMBER_TOKENS = 2
ARRAY_ITEMS_GUESS = 3  # items of an array without maxItems (entities in a text, paths in a taxonomy)
_MAX_DEPTH = 20


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    reference = schema.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#/"):
        return schema
    target: Any = root
    for key in reference[2:].split("/"):
        target = target.get(key, {}) if isinstance(target, dict) else {}
    return target if isinstance(target, dict) else {}


def _answer_tokens(schema: Any, root: dict[str, Any], depth: int = 0) -> float:
    """Tokens of a typical JSON answer to ``schema`` (o200k, with JSON punctuation)."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return FREE_TEXT_TOKENS
    schema = _resolve(schema, root)
    for union in ("anyOf", "oneOf"):
        options = [option for option in schema.get(union) or [] if _resolve(option, root).get("type") != "null"]
        if options:  # the first non-null alternative: the plain form schemas list first
            return _answer_tokens(options[0], root, depth + 1)
    if "enum" in schema or "const" in schema:
        values = schema.get("enum") or [schema.get("const")]
        return max(count_texts([json.dumps(value, ensure_ascii=False) for value in values], FALLBACK_ENCODING))
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((option for option in kind if option != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        keys = count_texts([json.dumps(key) + ":" for key in properties], FALLBACK_ENCODING)
        value_tokens = [_answer_tokens(value, root, depth + 1) for value in properties.values()]
        return 2 + sum(keys) + sum(value_tokens) + len(properties)  # braces, keys, values, commas
    if kind == "array":
        items: int = max(schema.get("minItems", 0), ARRAY_ITEMS_GUESS)
        items = min(items, schema.get("maxItems", items))
        return 2 + items * (_answer_tokens(schema.get("items"), root, depth + 1) + 1)
    if kind in ("integer", "number"):
        return NUMBER_TOKENS
    if kind in ("boolean", "null"):
        return 1
    return FREE_TEXT_TOKENS


def expected_output_tokens(history_mean: float | None, schema: dict[str, Any] | None) -> int:
    """Output tokens to expect per request: the project's observed mean when it has one (it includes what
    the model really writes, reasoning tokens too); else a guess from the answer schema's shape (enum
    values at their longest, ``FREE_TEXT_TOKENS`` per free string, ``ARRAY_ITEMS_GUESS`` items per
    unbounded array); else ``DEFAULT_OUTPUT_TOKENS``."""
    if history_mean is not None and history_mean > 0:
        return math.ceil(history_mean)
    if schema:
        return math.ceil(_answer_tokens(schema, schema))
    return DEFAULT_OUTPUT_TOKENS
