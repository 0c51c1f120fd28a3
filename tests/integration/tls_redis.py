"""A redis-server of a test's own as a managed Redis runs: TLS only (no plain port), clients must show a
certificate, and an ACL user with a password instead of the ``default`` user.

The CA, the server's and the client's certificates are made for each test with the ``openssl`` command line,
and so is a second CA that signed nothing of the server's (a certificate the backend must not trust).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.integration.processes import free_port

ACL_USER = "llm-backend"
ACL_PASSWORD = "acl-pass-7f3e"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing the server shows


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _signed(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    cert, key, request, ext = (directory / f"{name}{suffix}" for suffix in (".crt", ".key", ".csr", ".ext"))
    ext.write_text(extensions)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request, "-subj", f"/CN={name}")
    _openssl(
        "x509", "-req", "-in", request, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-days", "1",
        "-out", cert, "-extfile", ext,
    )  # fmt: skip
    return cert, key


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    cas = {}
    for name in ("test-ca", "other-ca"):
        cert, key = directory / f"{name}.crt", directory / f"{name}.key"
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
            "-keyout", key, "-out", cert,
        )  # fmt: skip
        cas[name] = (cert, key)
    server = _signed(directory, "redis", cas["test-ca"], "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    client = _signed(directory, "backend", cas["test-ca"], "extendedKeyUsage=clientAuth\n")
    return Certificates(cas["test-ca"][0], *server, *client, cas["other-ca"][0])


class TlsRedis:
    """``redis-server`` on a TLS port only, asking clients for a certificate, with one ACL user."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.certificates = make_certificates(directory / "certs")
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, password: str = ACL_PASSWORD) -> str:
        return f"rediss://{ACL_USER}:{password}@127.0.0.1:{self.port}/0"

    def settings_env(self) -> dict[str, str]:
        """What a backend process needs to reach it."""
        return {
            "REDIS_URL": self.url(),
            "REDIS_TLS_CA_FILE": str(self.certificates.ca),
            "REDIS_TLS_CERT_FILE": str(self.certificates.client_cert),
            "REDIS_TLS_KEY_FILE": str(self.certificates.client_key),
        }

    def client(self) -> redis.Redis:
        certs = self.certificates
        return redis.Redis.from_url(
            self.url(),
            ssl_ca_certs=str(certs.ca),
            ssl_certfile=str(certs.client_cert),
            ssl_keyfile=str(certs.client_key),
            decode_responses=True,
        )

    def start(self) -> TlsRedis:
        certs = self.certificates
        binary = shutil.which("redis-server")
        assert binary, "Debian's redis-server (built with TLS) is needed: apt-get install redis-server"
        self.process = subprocess.Popen(
            [
                binary,
                "--port", "0",
                "--bind", "127.0.0.1",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(certs.server_cert),
                "--tls-key-file", str(certs.server_key),
                "--tls-ca-cert-file", str(certs.ca),
                "--tls-auth-clients", "yes",
                "--user", "default", "off",
                "--user", ACL_USER, "on", f">{ACL_PASSWORD}", "~*", "&*", "+@all",
                "--dir", str(self.directory),
                "--save", "",
                "--logfile", str(self.directory / "redis.log"),
            ],
        )  # fmt: skip
        for _ in range(200):
            try:
                self.client().ping()
                return self
            except redis.RedisError:
                assert self.process.poll() is None, (self.directory / "redis.log").read_text()
                time.sleep(0.05)
        raise RuntimeError(f"redis-server with TLS did not start:\n{(self.directory / 'redis.log').read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
