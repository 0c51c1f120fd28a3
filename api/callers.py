"""Checks on every request before any route (and before basic auth): the ``Host`` it names and the browser page
that sent it (``shared.domain.callers`` says why); and headers on every answer that keep a browser from reading
a body as anything but what it is."""

from __future__ import annotations

from flask import Flask, Response, request

from shared.domain.callers import host_allowed, host_name, origin_allowed
from shared.domain.config import Settings
from shared.domain.errors import Forbidden, InvalidRequest


def install_caller_checks(app: Flask, settings: Settings) -> None:
    allowed_hosts = tuple(settings.allowed_hosts)
    allowed_origins = tuple(settings.allowed_origins)

    @app.before_request
    def _check_caller() -> None:
        # Without a Host header (HTTP/1.0) nothing was named to rebind; an unreadable one reads as "".
        if "Host" in request.headers and not host_allowed(request.host, allowed_hosts):
            name = host_name(request.host)
            raise InvalidRequest(
                f"Host {name!r} is not allowed: add {name} to ALLOWED_HOSTS if Label Studio reaches this backend "
                "by that name (loopback names and IP addresses are always accepted; ALLOWED_HOSTS=* accepts any)"
            )
        page = request.headers.get("Origin")
        if page is not None and not origin_allowed(page, allowed_origins):
            raise Forbidden(
                f"requests from browser pages of {page} are refused: Label Studio calls this backend from its "
                "server, without an Origin; to let a page of that site call the API, add it to ALLOWED_ORIGINS"
            )

    @app.after_request
    def _no_sniffing(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
