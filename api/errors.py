"""Every error leaves as JSON ``{"error": "..."}`` naming the problem; never a traceback."""

from __future__ import annotations

import json
import logging

import redis
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify(error=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response = exc.get_response()  # keeps the status and headers such as Allow
        response.data = json.dumps({"error": exc.description or exc.name})
        response.content_type = "application/json"
        return response

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def _redis_down(exc: redis.RedisError):
        log.error("Redis is unavailable: %s", exc)
        return jsonify(error=f"Redis is unavailable: {exc}"), 503

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return jsonify(error=f"internal error ({type(exc).__name__}); see the backend's log"), 500
