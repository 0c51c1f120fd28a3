"""What the fake keeps for tests to assert on: the HTTP requests it got and the completions it answered."""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass
class Counters:
    """What a fake in its own process is read by (``/_fake/stats``): counts and times of its live chat calls,
    never their bodies, so that a long benchmark does not grow it.  Times are ``time.time()``, comparable across
    the processes of one machine."""

    requests: int = 0  # chat requests received, refused ones included
    ok: int = 0  # answered 200
    rate_limited: int = 0  # refused for the rpm or tpm limit
    rejected_rpm: int = 0
    rejected_tpm: int = 0
    tokens: int = 0  # the answered calls' total_tokens
    first_request_at: float | None = None
    ok_times: list[float] = field(default_factory=list)  # of each 200, in order
    repeated_times: list[float] = field(default_factory=list)  # of each 200 for a last message answered before
    limited_times: list[float] = field(default_factory=list)
    answered: set[str] = field(default_factory=set, repr=False)  # the last message of every call answered
