"""How every process reaches Redis: one set of TLS options for the store, the Celery broker and result backend,
and Flower, and a check at start-up that turns a refused password or an untrusted certificate into one line
naming the setting to fix.

A managed Redis speaks TLS (``rediss://``) and wants an ACL user and password, both in ``REDIS_URL``; the CA,
the client certificate and how strictly the server's certificate is checked are ``REDIS_TLS_*`` settings.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

import redis

from shared.domain.config import Settings
from shared.domain.errors import ConfigError

_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
_TLS_FILES = {
    "REDIS_TLS_CA_FILE": "redis_tls_ca_file",
    "REDIS_TLS_CERT_FILE": "redis_tls_cert_file",
    "REDIS_TLS_KEY_FILE": "redis_tls_key_file",
}


def uses_tls(settings: Settings) -> bool:
    return urlsplit(settings.redis_url).scheme == "rediss"


def tls_options(settings: Settings) -> dict[str, Any]:
    """The ``ssl_*`` keyword arguments redis-py, kombu's ``broker_use_ssl`` and Celery's ``redis_backend_use_ssl``
    all take; none for a plain ``redis://`` URL (where a ``REDIS_TLS_*`` file is a mistake worth saying)."""
    files = {name: getattr(settings, field) for name, field in _TLS_FILES.items() if getattr(settings, field)}
    if not uses_tls(settings):
        if files:
            raise ConfigError(
                f"{', '.join(files)} is set but REDIS_URL is not rediss://: the connection would not use TLS; "
                "write REDIS_URL as rediss://user:password@host:port/db"
            )
        return {}
    options: dict[str, Any] = {"ssl_cert_reqs": _CERT_REQS[settings.redis_tls_cert_reqs]}
    for option, value in (
        ("ssl_ca_certs", settings.redis_tls_ca_file),
        ("ssl_certfile", settings.redis_tls_cert_file),
        ("ssl_keyfile", settings.redis_tls_key_file),
    ):
        if value:
            options[option] = value
    return options


def redis_client(settings: Settings, **options: Any) -> redis.Redis:
    """A client of ``REDIS_URL`` with the TLS settings; ``options`` are redis-py's (timeouts, decoding)."""
    return redis.Redis.from_url(settings.redis_url, **tls_options(settings), **options)


def check_redis(settings: Settings) -> None:
    """Raise ConfigError when Redis refuses our credentials or we refuse its certificate: no retry mends those.

    A Redis that does not answer yet is no error here (in a cluster the backend may start first); the
    processes keep trying to reach it as they always do.
    """
    client = redis_client(settings, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise ConfigError(
            f"Redis refused the user name or password in REDIS_URL ({exc}); with an ACL user write "
            "rediss://user:password@host:port/db, with only a password rediss://:password@host:port/db"
        ) from None
    except redis.ConnectionError as exc:
        reason = _tls_failure(exc)
        if reason is not None:
            raise ConfigError(reason) from None
    finally:
        client.close()


def _tls_failure(exc: redis.ConnectionError) -> str | None:
    """What to fix when the TLS handshake failed; None for anything else (Redis not up yet)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    text = str(cause if cause is not None else exc)
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"the Redis server's certificate is not trusted ({text}): set REDIS_TLS_CA_FILE to the CA file that "
            "signed it (REDIS_TLS_CERT_REQS=none turns the check off, and with it the protection TLS gives)"
        )
    if cause is not None or "SSL" in text:
        return (
            f"the TLS handshake with Redis failed ({text}): check REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE (a "
            "Redis with tls-auth-clients yes wants a client certificate signed by a CA it trusts) and that "
            "REDIS_URL's port speaks TLS"
        )
    return None
