"""Errors that belong to one task: reported for that task, never fatal for the request or batch."""

from __future__ import annotations


class TaskError(Exception):
    """Something about this task (its data, its prompt, its image) stops us from predicting it.

    ``status`` is the HTTP status an interactive request answers with when its only task fails.
    """

    status = 422


class LLMError(TaskError):
    """The provider refused or could not answer; ``retryable`` says whether trying later may help."""

    status = 502

    def __init__(
        self, message: str, *, retryable: bool, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after  # seconds, when the provider said (Retry-After)
