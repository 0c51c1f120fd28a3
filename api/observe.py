"""Request metrics: every response is counted by route and status; interactive answers are timed.

Each request's clock starts here, as it arrives: what ``interactive_seconds`` measures and what
INTERACTIVE_DEADLINE counts from (``arrived``), labeling config parsing included."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from shared.adapters.metrics import HTTP_METHODS, Metrics, bounded


def mark_interactive() -> None:
    """Called by a route that is answering an annotator who waits."""
    g.interactive = True


def arrived() -> float:
    """When the current request arrived (``time.monotonic()``)."""
    return float(g.arrived)  # flask.g holds untyped attributes


def install_request_metrics(app: Flask, metrics: Metrics) -> None:
    @app.before_request
    def _start_clock() -> None:
        g.arrived = time.monotonic()

    @app.after_request
    def _count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"  # raw paths would explode cardinality
        method = bounded(request.method, HTTP_METHODS)  # any word is a method to werkzeug: a series each
        metrics.count("http_requests", route=route, method=method, status=str(response.status_code))
        if g.get("interactive"):
            metrics.observe("interactive_seconds", time.monotonic() - arrived())
        return response
