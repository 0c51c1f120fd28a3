"""Reading request bodies, with 400s that name what is wrong."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from shared.domain.errors import InvalidRequest


def json_object() -> dict[str, Any]:
    raw = request.get_data(cache=False)
    try:
        body = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def tasks_of(body: dict[str, Any]) -> list[dict[str, Any]]:
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


def optional_object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{key} must be an object")
    return value
