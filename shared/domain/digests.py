"""What decided a result, in a digest: the LLM's answer cache and model versions name what shaped an answer,
provider endpoints are named for what they refuse and how fast they may be called.  One way of hashing each, so
that every process (API, workers, CLI) agrees on them without coordination.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from shared.domain.config import LLMOptions


def digest(decisive: Mapping[str, object]) -> str:
    """The SHA-256 (hex) of ``decisive`` written as JSON with sorted keys: the same fields, the same digest."""
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()


def llm_fields(options: LLMOptions) -> dict[str, object]:
    """What of the LLM options shapes an answer: who answers (provider, endpoint, Azure deployment, model) and how
    (temperature, number of answers).  The key or the timeouts do not."""
    return {
        "provider": options.provider,
        "endpoint": options.endpoint,
        "deployment": options.azure_deployment,
        "model": options.model,
        "temperature": options.temperature,
        "n": options.num_responses,
    }


def endpoint_key(options: LLMOptions) -> str:
    """One provider endpoint and model, in 16 hex characters: what it refused, what a shared rate limit counts of
    it and the embeddings it made are kept under this name."""
    return hashlib.sha256(f"{options.provider}|{options.endpoint}|{options.model}".encode()).hexdigest()[:16]
