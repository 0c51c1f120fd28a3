"""Every error this backend raises on purpose, as one small hierarchy.

Each message names the problem and, where there is one, the fix; it is safe to show (no secrets).
Code raises these without translating them: the API maps each class to an HTTP status in one place
(``api/errors.py``), the workers decide retry or failure by class, the CLI prints the message.

    BackendError
    ├── InvalidInput            the caller sent something unusable                  → 400
    │   ├── InvalidRequest      a request body or parameter
    │   │   ├── UnsupportedMediaType  a body not declared as JSON                   → 415
    │   │   └── TooManyTasks    more tasks in one request than MAX_TASKS_PER_REQUEST → 413
    │   ├── ConfigError         a setting or a project's extra params
    │   └── LabelingConfigError a labeling config this backend cannot work with
    ├── Forbidden               a browser page of a site not allowed                → 403
    ├── NotFound                the thing asked for does not exist (or expired)     → 404
    ├── TaskError               one task cannot be predicted; the others go on      → 422
    │   ├── LLMError            the provider refused or could not answer (.retryable) → 502
    │   ├── DeadlineExceeded    an interactive request ran out of INTERACTIVE_DEADLINE → 504
    │   ├── LimitReached        an operator's bound (jobs, daily spend, evaluations) → 429
    │   └── JobPaused           a job's task is not asked while the job is paused (held for its resume)
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


class TooManyTasks(InvalidRequest):
    """A request carries more tasks than the operator allows in one (``MAX_TASKS_PER_REQUEST``)."""


class ConfigError(InvalidInput):
    """A setting has a value we cannot run with; the message names the setting and what it accepts."""


class LabelingConfigError(InvalidInput):
    """The labeling config cannot be used with this backend; the message says what is missing."""


class UnsupportedMediaType(InvalidRequest):
    """A JSON route got a body not declared ``Content-Type: application/json``: a browser sends other types
    across sites without asking first, so such a body may come from another site's page."""


class Forbidden(BackendError):
    """The request comes from a caller this backend does not serve: a browser page of an origin not allowed."""


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


class LimitReached(TaskError):
    """An operator's bound is reached (``MAX_ACTIVE_JOBS_PER_PROJECT``, ``PROJECT_DAILY_USD``,
    ``EVALUATION_CONCURRENCY``): the message names the setting and when the bound lifts.  A TaskError, so a
    job's tasks that meet it fail with that message, without an LLM call, while a request stops with it."""


class JobPaused(TaskError):
    """The task's job is paused (by its owner, or at its budget): the task is not asked of the LLM and waits,
    with its chunk, for the job to be resumed.  The message says why the job is paused."""


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
