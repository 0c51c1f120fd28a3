"""Every error leaves as JSON ``{"error": "..."}`` naming the problem; never a traceback, never a secret.

The one place where errors become HTTP statuses: routes and the code below them raise the classes of
``shared.domain.errors`` (or let Redis errors through) and never translate them themselves.
"""

from __future__ import annotations

import json
import logging

import redis
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from shared.domain.errors import (
    BackendError,
    DeadlineExceeded,
    Forbidden,
    InvalidInput,
    LabelStudioError,
    LimitReached,
    LLMError,
    NotFound,
    TaskError,
    TooManyTasks,
    Unavailable,
    UnsupportedMediaType,
)
from shared.redaction import redact

log = logging.getLogger(__name__)

# The most specific class of an error decides: LLMError is a TaskError, but answers 502.
STATUS_BY_ERROR: dict[type[BackendError], int] = {
    InvalidInput: 400,
    UnsupportedMediaType: 415,
    Forbidden: 403,
    TooManyTasks: 413,
    NotFound: 404,
    TaskError: 422,  # an annotator's only task: its prompt or data do not work
    LLMError: 502,
    LabelStudioError: 502,
    Unavailable: 503,
    DeadlineExceeded: 504,  # the annotator's request ran out of INTERACTIVE_DEADLINE
    LimitReached: 429,  # an operator's bound: MAX_ACTIVE_JOBS_PER_PROJECT, PROJECT_DAILY_USD, EVALUATION_CONCURRENCY
}


def status_of(exc: BackendError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BackendError)
    def _backend_error(exc: BackendError) -> ResponseReturnValue:
        return jsonify(error=redact(str(exc))), status_of(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        response = exc.get_response()  # keeps the status and headers such as Allow
        response.data = json.dumps({"error": redact(exc.description or exc.name)})
        response.content_type = "application/json"
        return response

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def _redis_down(exc: redis.RedisError) -> ResponseReturnValue:
        log.error("Redis is unavailable: %s", exc)
        return jsonify(error=redact(f"Redis is unavailable: {exc}")), 503

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error")
        return jsonify(error=f"internal error ({type(exc).__name__}); see the backend's log"), 500
