"""HTTP basic auth on every route when BASIC_AUTH_USER and BASIC_AUTH_PASS are set.

Label Studio sends the credentials when the backend is registered with ``auth_method=BASIC_AUTH``, through
``requests``, which encodes them as latin-1; browsers and curl send UTF-8. Both spellings of the configured
password are accepted, compared as bytes in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from flask import Flask, Response, jsonify, request

from shared.domain.config import Settings


def _spellings(text: str) -> list[bytes]:
    """The byte strings a client may send for ``text``: UTF-8, and latin-1 where it can encode it."""
    spellings = [text.encode("utf-8")]
    try:
        spellings.append(text.encode("latin-1"))
    except UnicodeEncodeError:
        pass
    return spellings


def _given_credentials() -> tuple[bytes, bytes]:
    """User and password from the Authorization header, as the bytes the client sent (b"" when absent)."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return b"", b""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b"", b""
    user, _, password = decoded.partition(b":")
    return user, password


def _matches(given: bytes, spellings: list[bytes]) -> bool:
    # Every spelling is compared, so the time taken does not say which one came close.
    return any([hmac.compare_digest(given, expected) for expected in spellings])


def install_basic_auth(app: Flask, settings: Settings) -> None:
    if not (settings.basic_auth_user and settings.basic_auth_pass):
        return
    expected_user = _spellings(settings.basic_auth_user)
    expected_pass = _spellings(settings.basic_auth_pass.get_secret_value())

    @app.before_request
    def _require_credentials() -> Response | None:
        given_user, given_pass = _given_credentials()
        user_ok = _matches(given_user, expected_user)
        pass_ok = _matches(given_pass, expected_pass)
        if user_ok and pass_ok:
            return None
        response = jsonify(error="authentication required: this backend expects HTTP basic auth")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Basic realm="llm-backend"'
        return response
