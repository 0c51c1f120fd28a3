"""The provider's Batch API through the ``openai`` client: upload a file, create, look at, cancel a batch,
download its output.  The same clients as the live calls (``LLM.client``: one per LLMOptions, behind the
network guard); the provider's errors become LLMErrors with the key redacted, as live ones do.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from openai.types import Batch

from shared.adapters.llm import LLM, provider_error
from shared.domain.batch_requests import ENDPOINTS
from shared.domain.config import LLMOptions
from shared.domain.errors import LLMError

T = TypeVar("T")


@dataclass(frozen=True)
class BatchState:
    """What the provider says of one batch now."""

    id: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    counts: dict[str, int]

    def as_record(self) -> dict[str, Any]:
        """What the job keeps of it (shown by ``/jobs/<id>``)."""
        return {"status": self.status, "counts": self.counts}


def _state(batch: Batch) -> BatchState:
    counts = batch.request_counts
    return BatchState(
        id=batch.id,
        status=batch.status,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        counts={
            "total": getattr(counts, "total", 0) or 0,
            "completed": getattr(counts, "completed", 0) or 0,
            "failed": getattr(counts, "failed", 0) or 0,
        },
    )


class BatchApi:
    def __init__(self, llm: LLM) -> None:
        self._llm = llm

    def _call(self, options: LLMOptions, what: str, work: Callable[[openai.OpenAI], T]) -> T:
        try:
            return work(self._llm.client(options))
        except openai.APIStatusError as exc:
            raise provider_error(exc, options, f"{what}: ") from None
        except openai.APIConnectionError as exc:
            raise LLMError(f"{what}: cannot reach {options.provider}: {exc.__cause__ or exc}", retryable=True) from None

    def submit(self, options: LLMOptions, content: bytes, metadata: dict[str, str]) -> BatchState:
        """Upload one input file and start its batch (24 h window)."""
        upload = self._call(
            options,
            "uploading a batch file",
            lambda client: client.files.create(file=("batch.jsonl", io.BytesIO(content)), purpose="batch"),
        )
        batch = self._call(
            options,
            "creating a batch",
            lambda client: client.batches.create(
                input_file_id=upload.id,
                endpoint=ENDPOINTS[options.provider],  # type: ignore[arg-type]  # the SDK's Literal lacks Azure's path
                completion_window="24h",
                metadata=metadata,
            ),
        )
        return _state(batch)

    def find(self, options: LLMOptions, metadata: dict[str, str], newest: int = 100) -> BatchState | None:
        """Among the provider's ``newest`` batches, one created with this metadata (a submit cut short)."""
        page = self._call(options, "listing batches", lambda client: client.batches.list(limit=newest))
        for batch in page.data:
            if all((batch.metadata or {}).get(key) == value for key, value in metadata.items()):
                return _state(batch)
        return None

    def retrieve(self, options: LLMOptions, batch_id: str) -> BatchState:
        return _state(self._call(options, f"looking at batch {batch_id}", lambda c: c.batches.retrieve(batch_id)))

    def cancel(self, options: LLMOptions, batch_id: str) -> BatchState:
        return _state(self._call(options, f"cancelling batch {batch_id}", lambda c: c.batches.cancel(batch_id)))

    def content(self, options: LLMOptions, file_id: str) -> bytes:
        response = self._call(options, f"downloading {file_id}", lambda client: client.files.content(file_id))
        return bytes(response.content)
