"""Reading request bodies, with 4xx answers that name what is wrong.

A body is bounded before it is parsed: MAX_REQUEST_BYTES however it is sent (413), JSON nesting
(``shared.domain.untrusted``, 400), and text that is not valid Unicode (a lone surrogate, 400 naming the
field) everywhere except where each task is checked on its own, so one bad task fails alone.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from shared.domain.errors import InvalidRequest, TooManyTasks, UnsupportedMediaType
from shared.domain.types import Task
from shared.domain.untrusted import (
    TooDeep,
    loads,
    lone_surrogate_message,
    lone_surrogate_path,
    may_hold_lone_surrogates,
)


def body_bytes() -> bytes:
    """The request body; 413 when it is over MAX_REQUEST_BYTES, whether sent with a length or chunked.

    werkzeug refuses a declared Content-Length over the limit, but stops reading a chunked body at the limit
    as if it had ended; one more byte from the server's own stream tells a cut body from a complete one.
    """
    raw = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge(f"request body is over MAX_REQUEST_BYTES={limit} bytes")
    return raw


def json_object(checked_per_task: tuple[str, ...] = ()) -> dict[str, Any]:
    """The body as a JSON object. ``checked_per_task``: top-level keys whose text is checked task by task later
    (a task with invalid text fails alone rather than the whole request).

    The body must be declared ``application/json``: a browser page of any site may send ``text/plain`` or a
    form to this backend without asking first, but a JSON body only to a server that allows it (CORS), and
    this one allows none."""
    if request.mimetype != "application/json":
        declared = request.content_type or "no Content-Type"
        raise UnsupportedMediaType(
            f"request body must be JSON sent with Content-Type: application/json, not {declared}"
        )
    raw = body_bytes()
    try:
        body = loads(raw) if raw else None
    except TooDeep as exc:
        raise InvalidRequest(f"request body is refused: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if may_hold_lone_surrogates(raw):
        where = lone_surrogate_path({key: value for key, value in body.items() if key not in checked_per_task}, "")
        if where:
            raise InvalidRequest(lone_surrogate_message(where))
    return body


def is_task(value: object) -> TypeGuard[Task]:
    """An object with a ``data`` object: what a task needs to be predicted."""
    return isinstance(value, dict) and isinstance(value.get("data"), dict)


def tasks_of(body: dict[str, Any]) -> list[Task]:
    """The tasks of a /predict body: a non-empty list of objects, each with a ``data`` object."""
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        raise InvalidRequest("tasks must be a list of task objects")
    if not tasks:
        raise InvalidRequest("tasks is empty: send at least one task")
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise InvalidRequest(f"tasks[{index}] must be an object")
        if not isinstance(task.get("data"), dict):
            raise InvalidRequest(f"tasks[{index}] has no data object")
    return tasks


def at_most(tasks: list[Task], limit: int) -> list[Task]:
    """The tasks, unless there are more than the operator allows in one request (checked before anything is
    stored or asked of the LLM)."""
    if len(tasks) > limit:
        raise TooManyTasks(
            f"{len(tasks)} tasks in one request, over MAX_TASKS_PER_REQUEST={limit}: select fewer tasks, or ask "
            "the operator to raise MAX_TASKS_PER_REQUEST"
        )
    return tasks


def optional_object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{key} must be an object")
    return value
