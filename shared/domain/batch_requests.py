"""The provider's Batch API, as data: request lines in, answer lines out, and when to look again.

A batch input file is JSONL, one chat-completion request a line, each keyed by a ``custom_id`` that the
answer carries back (answers come in any order, in an output file for those that succeeded and an error
file for the others).  A file holds at most 50,000 requests and 100 MB, so a large job is split into
several files, each a batch of its own.  Pure code: the adapter (``shared.adapters.batch_api``) uploads
and downloads, the job logic (``shared.batch_jobs``) decides.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

MAX_FILE_BYTES = 100 * 1024 * 1024  # the provider's documented limit for a batch input file
FINAL_STATES = frozenset({"completed", "failed", "expired", "cancelled"})
ENDPOINTS = {"openai": "/v1/chat/completions", "azure": "/chat/completions"}
_PREFIX = "task-"


def custom_id(task_id: int) -> str:
    return f"{_PREFIX}{task_id}"


def task_of(custom: str) -> str | None:
    """The task id a ``custom_id`` names (as text), or None for one we did not write."""
    return custom[len(_PREFIX) :] if custom.startswith(_PREFIX) else None


def request_line(custom: str, url: str, body: dict[str, Any]) -> bytes:
    """One line of a batch input file: a POST of ``body`` to ``url``."""
    line = {"custom_id": custom, "method": "POST", "url": url, "body": body}
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def group_lines(lines: Iterable[bytes], max_requests: int, max_bytes: int = MAX_FILE_BYTES) -> Iterator[list[bytes]]:
    """The lines cut into files of at most ``max_requests`` lines and ``max_bytes`` bytes, in order, each
    file given as soon as it is full (a large job is never held in memory whole).

    A single line larger than ``max_bytes`` cannot go into any file: ValueError names it.
    """
    current: list[bytes] = []
    size = 0
    for line in lines:
        if len(line) > max_bytes:
            raise ValueError(f"a batch request of {len(line)} bytes is larger than a batch file may be ({max_bytes})")
        if current and (len(current) >= max_requests or size + len(line) > max_bytes):
            yield current
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        yield current


@dataclass(frozen=True)
class AnswerLine:
    """One line of an output or error file: the task it answers and either a completion or why not."""

    task_id: str
    completion: dict[str, Any] | None  # the chat completion's body, when the request succeeded
    error: str | None  # else what went wrong, as the provider put it


def read_answer_lines(content: bytes) -> Iterator[AnswerLine]:
    """The lines of an output or error file that name one of our tasks (blank and foreign lines are skipped)."""
    for text in content.decode().splitlines():
        if not text.strip():
            continue
        line = json.loads(text)
        task_id = task_of(str(line.get("custom_id", "")))
        if task_id is None:
            continue
        response = line.get("response") or {}
        body = response.get("body")
        if response.get("status_code") == 200 and isinstance(body, dict):
            yield AnswerLine(task_id, body, None)
        else:
            yield AnswerLine(task_id, None, _line_error(line, response))


def _line_error(line: dict[str, Any], response: dict[str, Any]) -> str:
    error = line.get("error") or (response.get("body") or {}).get("error") or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    status = response.get("status_code")
    code = error.get("code") if isinstance(error, dict) else None
    parts = [f"status {status}" if status else None, code, message]
    return ": ".join(str(part) for part in parts if part) or "no answer"


def poll_delay(polls: int, first: float, longest: float) -> float:
    """Seconds until the next look at a job's batches: ``first``, then doubling up to ``longest``."""
    return float(min(longest, first * 2 ** min(polls, 32)))
