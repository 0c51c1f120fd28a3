"""Embeddings for ranking by meaning (SIMILARITY_EMBEDDINGS_MODEL): vectors from the project's provider endpoint
through the ``openai`` client's ``embeddings.create``, kept in Redis.

The client is the chat calls' own (``LLM.client``: same provider, endpoint, key, address policy and retries),
with the embeddings model in place of the chat model (for Azure, as the deployment).  Each text's vector is kept
by endpoint, model and the text's SHA-256 (``endpoint_key`` names the first two), as float32 bytes in base64
(the store's Redis client reads text), so the thousands of labels of a large label set are embedded once for
every task, process and host, and a task's text once however often it is asked about; what is missing is asked
for in lists of ``BATCH`` inputs.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import openai

from shared.adapters.llm import LLM, provider_error
from shared.adapters.store import Store
from shared.domain.config import LLMOptions
from shared.domain.digests import endpoint_key
from shared.domain.errors import LLMError

BATCH = 512  # inputs a call (OpenAI takes 2,048 at most, and 300,000 tokens in all)
VECTOR_TTL = 30 * 24 * 3600  # seconds a vector is kept: a label set in use is embedded about once a month


class Embeddings:
    """Hands out the ``Embed`` of a project's endpoint and an embeddings model (``similarity.Embed``)."""

    def __init__(self, llm: LLM, store: Store) -> None:
        self.llm = llm
        self.store = store

    def embedder(self, options: LLMOptions, model: str) -> ProjectEmbed:
        options = options.model_copy(update={"model": model, "azure_deployment": None})
        return ProjectEmbed(self, options, endpoint_key(options))


@dataclass(frozen=True)
class ProjectEmbed:
    """Texts to vectors for one endpoint and model: from Redis where kept, else from the provider (then kept)."""

    embeddings: Embeddings
    options: LLMOptions
    scope: str  # the endpoint and model, hashed: where the vectors are kept, and which rankers may be reused

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        store = self.embeddings.store
        keys = [
            store.key("embedding", self.scope, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
            for text in texts
        ]
        kept = store.redis.mget(keys) if keys else []
        vectors: list[list[float] | None] = [
            None if raw is None else np.frombuffer(base64.b64decode(raw), dtype=np.float32).tolist() for raw in kept
        ]
        missing = list(dict.fromkeys(text for text, vector in zip(texts, vectors, strict=True) if vector is None))
        fetched: dict[str, list[float]] = {}
        for start in range(0, len(missing), BATCH):
            part = missing[start : start + BATCH]
            fetched.update(zip(part, self._ask(part), strict=True))
        if fetched:
            with store.one_round_trip() as pipe:
                for text, key in zip(texts, keys, strict=True):
                    if text in fetched:
                        pipe.set(key, _packed(fetched[text]), ex=VECTOR_TTL)
        return [vector if vector is not None else fetched[text] for text, vector in zip(texts, vectors, strict=True)]

    def _ask(self, texts: list[str]) -> list[list[float]]:
        """The provider's vectors for ``texts``, in their order; LLMError when it cannot give them."""
        client = self.embeddings.llm.client(self.options)
        try:
            answer = client.embeddings.create(model=self.options.model, input=texts, encoding_format="float")
        except openai.APIStatusError as exc:
            raise provider_error(exc, self.options, "embeddings: ") from None
        except openai.APIError as exc:  # the connection failed or timed out, after the client's retries
            raise LLMError(f"embeddings: {self.options.provider}: {type(exc).__name__}", retryable=True) from None
        ordered = sorted(answer.data, key=lambda item: item.index)
        if len(ordered) != len(texts):
            raise LLMError(f"embeddings: {len(ordered)} vectors for {len(texts)} texts", retryable=True)
        return [list(item.embedding) for item in ordered]


def _packed(vector: list[float]) -> str:
    """A vector as Redis keeps it: float32 (what the models give: no precision lost that ranking would notice),
    base64, about 8 KB for 1,536 dimensions against 30 KB as JSON."""
    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode()
