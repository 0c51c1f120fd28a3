"""``/v1/embeddings``: deterministic vectors, a hashed bag of words, so texts that share words are near (a cosine
above 0) and texts that share none are orthogonal, as a test needs to know which labels a real model would rank
first without one."""

from __future__ import annotations

import base64
import hashlib
import re
import struct

from tests.fakes.openai_server.errors import ApiError

DIMENSIONS = 512
_WORD = re.compile(r"[^\W_]+")


def vector(text: str) -> list[float]:
    """Each word (lower case) adds 1 to the dimension its SHA-256 picks."""
    counts = [0.0] * DIMENSIONS
    for word in _WORD.findall(text.casefold()):
        counts[int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big") % DIMENSIONS] += 1.0
    return counts


def embed(body: dict) -> dict:
    """An embeddings answer for the request ``body``, in the encoding it asks for (the client's default: base64)."""
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not body.get("model"):
        raise ApiError(400, "you must provide a model parameter", param="model")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(item, str) and item for item in inputs):
        raise ApiError(400, "'input' must be a non-empty string or a list of non-empty strings", param="input")
    if len(inputs) > 2048:
        raise ApiError(400, "'input' must have at most 2048 items", param="input")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        values = vector(text)
        encoded = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode() if as_base64 else values
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(len(_WORD.findall(text)) for text in inputs)
    return {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
