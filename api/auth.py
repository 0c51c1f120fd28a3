"""HTTP basic auth on every route when BASIC_AUTH_USER and BASIC_AUTH_PASS are set.

Label Studio sends the credentials when the backend is registered with ``auth_method=BASIC_AUTH``.
"""

from __future__ import annotations

import hmac

from flask import Flask, jsonify, request

from shared.domain.config import Settings


def install_basic_auth(app: Flask, settings: Settings) -> None:
    if not (settings.basic_auth_user and settings.basic_auth_pass):
        return
    expected_user = settings.basic_auth_user.encode()
    expected_pass = settings.basic_auth_pass.get_secret_value().encode()

    @app.before_request
    def _require_credentials():
        auth = request.authorization
        given_user = (auth.username or "").encode() if auth and auth.type == "basic" else b""
        given_pass = (auth.password or "").encode() if auth and auth.type == "basic" else b""
        user_ok = hmac.compare_digest(given_user, expected_user)
        pass_ok = hmac.compare_digest(given_pass, expected_pass)
        if user_ok and pass_ok:
            return None
        response = jsonify(error="authentication required: this backend expects HTTP basic auth")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Basic realm="llm-backend"'
        return response
