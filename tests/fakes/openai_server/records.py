"""What the fake keeps for tests to assert on: the HTTP requests it got and the completions it answered."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict  # the JSON body; {} for GET, DELETE and file uploads
    at: float
    status: int | None = None  # what the fake answered, once it has
    error: str | None = None  # the error message it answered with, if any
    client: str | None = None  # the caller's address: which host sent it, where tests run hosts of their own


@dataclass(frozen=True)
class Completion:
    """One chat completion the model answered (HTTP 200 live, or a line of a batch's output file)."""

    via: str  # "live" or "batch"
    body: dict  # the request
    answer: dict  # the chat.completion object answered, with its usage
    custom_id: str | None = None
    batch_id: str | None = None
