"""Every error this backend raises on purpose, as one small hierarchy.

Each message names the problem and, where there is one, the fix; it is safe to show (no secrets).
Code raises these without translating them: the API maps each class to an HTTP status in one place
(``api/errors.py``), the workers decide retry or failure by class, the CLI prints the message.

    BackendError
    ├── InvalidInput            the caller sent something unusable                  → 400
    │   ├── InvalidRequest      a request body or parameter
    │   ├── ConfigError         a setting or a project's extra params
    │   └── LabelingConfigError a labeling config this backend cannot work with
    ├── NotFound                the thing asked for does not exist (or expired)     → 404
    ├── TaskError               one task cannot be predicted; the others go on      → 422
    │   ├── LLMError            the provider refused or could not answer (.retryable) → 502
    │   └── DeadlineExceeded    an interactive request ran out of INTERACTIVE_DEADLINE → 504
    ├── LabelStudioError        Label Studio refused or could not be reached (.retryable)
    └── Unavailable             a service we need (the job queue) is down           → 503
"""

from __future__ import annotations


class BackendError(Exception):
    """Base class: an error with a message meant for the person who can fix it."""


class InvalidInput(BackendError):
    """The caller sent something this backend cannot use."""


class InvalidRequest(InvalidInput):
    """A request body or parameter is malformed; the message names the field."""


class ConfigError(InvalidInput):
    """A setting has a value we cannot run with; the message names the setting and what it accepts."""


class LabelingConfigError(InvalidInput):
    """The labeling config cannot be used with this backend; the message says what is missing."""


class NotFound(BackendError):
    """What was asked for does not exist, or no longer does."""


class TaskError(BackendError):
    """Something about this task (its data, its prompt, its image) stops us from predicting it."""


class LLMError(TaskError):
    """The provider refused or could not answer; ``retryable`` says whether trying later may help."""

    def __init__(
        self, message: str, *, retryable: bool, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after  # seconds, when the provider said (Retry-After)


class DeadlineExceeded(TaskError):
    """The request's overall deadline passed (connect, reads, retries and rate-limit waits together):
    an annotator is waiting, and Label Studio stops waiting at 100 s."""


class LabelStudioError(BackendError):
    """Label Studio did not take our request; ``retryable`` is False when resending cannot help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class PushOutcomeUnknown(LabelStudioError):
    """A push that Label Studio may have stored, or not: the call timed out, lost its connection after the request
    was sent, or got a 5xx.  Label Studio takes no client-supplied id, so sending it again may store it twice:
    which of its tasks hold the prediction has to be read back first.  ``answered`` when Label Studio answered
    (its work on the call is over), False when the client gave up (Label Studio may still be storing it)."""

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message, retryable=True)
        self.answered = answered


class Unavailable(BackendError):
    """A service this backend needs (the job queue) does not answer; trying later may help."""
