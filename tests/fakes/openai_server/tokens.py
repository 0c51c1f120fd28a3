"""The fake's token rule and its prompt cache, so usage figures are reproducible without a tokenizer.

The rule: a token is 4 characters. A request's prompt is the compact JSON (``ensure_ascii=False``) of its
``tools``, ``response_format`` and ``messages``, in that order and each only when present (the provider puts
tool and schema definitions ahead of the conversation), and ``prompt_tokens`` is its length divided by 4,
rounded up. An answer's tokens are its text (the content, or a tool call's ``arguments``) cut into 4-character
pieces, the last one shorter; the same pieces are the tokens of ``logprobs``.

Prefix caching as OpenAI reports it in ``usage.prompt_tokens_details.cached_tokens``: the longest prefix this
prompt shares with an earlier answered prompt of the same model, counted in whole tokens, reported only from
1,024 tokens on and rounded down to a multiple of 128.
"""

from __future__ import annotations

import bisect
import json
import math

CHARS_PER_TOKEN = 4
CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128


def prompt_text(body: dict) -> str:
    parts = {key: body[key] for key in ("tools", "response_format", "messages") if key in body}
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def split_tokens(text: str) -> list[str]:
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


def prompt_tokens(body: dict) -> int:
    """What ``usage.prompt_tokens`` says for this request body."""
    return count_tokens(prompt_text(body))


def cacheable(shared_tokens: int) -> int:
    """The cached tokens a shared prefix of ``shared_tokens`` earns."""
    if shared_tokens < CACHE_MIN_TOKENS:
        return 0
    return shared_tokens // CACHE_STEP_TOKENS * CACHE_STEP_TOKENS


class PrefixCache:
    """The prompts answered so far, per model, sorted; only prompts long enough to ever be cached are kept.

    The earlier prompt sharing the longest prefix with a new one is a neighbour of it in sorted order, so a
    lookup is a bisection, not a comparison with every prompt seen (a 10,000-task job stays fast).
    """

    def __init__(self) -> None:
        self._prompts: dict[str, list[str]] = {}

    def cached_tokens(self, model: str, prompt: str) -> int:
        """Tokens of ``prompt`` served from the cache, then remember ``prompt`` for later requests."""
        seen = self._prompts.setdefault(model, [])
        at = bisect.bisect_left(seen, prompt)
        shared = max((_common_prefix(prompt, seen[i]) for i in (at - 1, at) if 0 <= i < len(seen)), default=0)
        if len(prompt) >= CACHE_MIN_TOKENS * CHARS_PER_TOKEN and (at == len(seen) or seen[at] != prompt):
            seen.insert(at, prompt)
        return cacheable(shared // CHARS_PER_TOKEN)

    def clear(self) -> None:
        self._prompts.clear()


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix, by bisection on slices (compared in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
