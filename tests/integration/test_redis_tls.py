"""Production Redis (issue #26, item 3): the whole stack over TLS with an ACL user, as a managed Redis asks, and
one clear line at start-up when the password or a certificate is wrong, and which server certificates each
``REDIS_TLS_CERT_REQS`` accepts."""

from __future__ import annotations

import subprocess
import time
import uuid
from contextlib import closing

import httpx
import pytest

from shared.adapters.jobs import JobState
from shared.adapters.redis_connection import check_redis, redis_client
from shared.domain.errors import ConfigError
from tests.conftest import LS_TOKEN, labeling_config
from tests.integration.processes import (
    LLM_BACKEND,
    BackendProcess,
    free_port,
    llm_backend_env,
    prepare_project_over_http,
)
from tests.integration.test_security_processes import start_api
from tests.integration.tls_redis import ACL_PASSWORD, TlsRedis

FLOWER_AUTH = ("admin", "flower-tls")
PROJECT = 71


@pytest.fixture
def tls_redis(tmp_path):
    server = TlsRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def wait_until(check, timeout: float, what: str, *processes: BackendProcess):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if result := check():
                return result
        except (httpx.TransportError, ValueError):
            pass
        for process in processes:
            assert process.process.poll() is None, process.log[-5000:]
        assert time.monotonic() < deadline, f"{what} not within {timeout} s\n" + "\n".join(
            p.log[-3000:] for p in processes
        )
        time.sleep(0.3)


def test_api_worker_and_flower_work_over_tls_with_an_acl_user(
    tls_redis, llm_server, fake_llm, fake_label_studio, tmp_path
):
    prefix = f"tls-{uuid.uuid4().hex[:8]}"
    env = llm_backend_env(
        llm_server.url,
        prefix,
        **tls_redis.settings_env(),
        FLOWER_BASIC_AUTH=":".join(FLOWER_AUTH),
        BATCH_CHUNK_SIZE="10",
        OUTPUT_MODE="text",
    )
    fake_llm.reply = lambda messages, index: "Sarcastic"
    api, base = start_api(env, tmp_path / "api.log", "--workers", "1")
    worker = BackendProcess(
        ["worker", "--concurrency", "2", "-n", f"tls-{uuid.uuid4().hex[:8]}@%h"], env, tmp_path / "worker.log"
    ).start()
    flower_port = free_port()
    flower = BackendProcess(["flower", "--host", "127.0.0.1", "--port", str(flower_port)], env, tmp_path / "f.log")
    flower.start()
    flower_url = f"http://127.0.0.1:{flower_port}"
    client = httpx.Client(base_url=base, timeout=30)
    try:
        worker.wait_for_log(" ready.")
        config = labeling_config("sarcasm")
        prepare_project_over_http(base, PROJECT, fake_label_studio.url, LS_TOKEN, config)
        tasks = [{"id": i, "data": {"text": f"t{i}"}} for i in range(1, 31)]
        fake_label_studio.hold_tasks(PROJECT, tasks)
        body = {"tasks": tasks, "project": f"{PROJECT}.1", "label_config": config}
        job = client.post("/predict", json=body).json()["job"]
        status = wait_until(
            lambda: JobState((s := client.get(f"/jobs/{job}").json())["state"]).finished and s,
            120,
            "the batch job",
            api,
            worker,
        )
        workers = wait_until(
            lambda: httpx.get(f"{flower_url}/api/workers?refresh=1", auth=FLOWER_AUTH, timeout=10).json(),
            60,
            "Flower's workers",
            flower,
        )
        # Flower's own Redis connection (the broker's queue lengths) goes over TLS too.
        queues = httpx.get(f"{flower_url}/api/queues/length", auth=FLOWER_AUTH, timeout=10)
        stored_keys = tls_redis.client().keys(f"{prefix}:*")
    finally:
        client.close()
        for process in (flower, worker, api):
            process.stop()

    assert (status["state"], status["pushed"], status["failed"]) == ("done", 30, 0), status
    assert sorted(fake_label_studio.predictions_by_task()) == list(range(1, 31))
    assert any(name.startswith("tls-") for name in workers)
    assert queues.status_code == 200 and {"name": "batch", "messages": 0} in queues.json()["active_queues"]
    assert f"{prefix}:project:{PROJECT}:setup" in stored_keys  # the store wrote to the TLS Redis, not elsewhere
    assert ACL_PASSWORD not in api.log + worker.log + flower.log


def refused_start(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([LLM_BACKEND, *command], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["api", "--port", "0"], ["worker"], ["flower", "--port", "0"]], ids=str)
def test_a_wrong_password_stops_every_process_at_start_naming_redis_url(tls_redis, llm_server, command):
    env = llm_backend_env(llm_server.url, "tls-refused", **tls_redis.settings_env(), FLOWER_BASIC_AUTH="a:b")
    result = refused_start(command, env | {"REDIS_URL": tls_redis.url("wrong-password")})
    assert result.returncode == 2, result.stderr
    assert "Redis refused the user name or password in REDIS_URL" in result.stderr
    assert "wrong-password" not in result.stderr + result.stdout


@pytest.mark.parametrize("command", [["api", "--port", "0"], ["worker"], ["flower", "--port", "0"]], ids=str)
def test_an_untrusted_server_certificate_stops_every_process_at_start_naming_the_ca_setting(
    tls_redis, llm_server, command
):
    env = llm_backend_env(llm_server.url, "tls-refused", **tls_redis.settings_env(), FLOWER_BASIC_AUTH="a:b")
    result = refused_start(command, env | {"REDIS_TLS_CA_FILE": str(tls_redis.certificates.other_ca)})
    assert result.returncode == 2, result.stderr
    assert "the Redis server's certificate is not trusted" in result.stderr
    assert "set REDIS_TLS_CA_FILE" in result.stderr


def test_without_the_client_certificate_a_worker_stops_naming_the_certificate_settings(tls_redis, llm_server):
    env = llm_backend_env(llm_server.url, "tls-refused", **tls_redis.settings_env())
    del env["REDIS_TLS_CERT_FILE"], env["REDIS_TLS_KEY_FILE"]
    result = refused_start(["worker"], env)
    assert result.returncode == 2, result.stderr
    assert "check REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE" in result.stderr


NOT_TRUSTED = "the Redis server's certificate is not trusted"


def connecting(settings) -> str:
    """Whether a PING is answered over TLS ("connected"), or why the start-up check refuses the server."""
    try:
        check_redis(settings)
    except ConfigError as exc:
        return str(exc).split(" (")[0]
    with closing(redis_client(settings, socket_connect_timeout=5, socket_timeout=5)) as client:
        assert client.ping()
    return "connected"


def test_redis_tls_cert_reqs_none_skips_the_check_and_optional_checks_as_required_does(tls_redis, make_settings):
    """``none`` trusts any certificate.  ``optional`` is Python's ``ssl.CERT_OPTIONAL``, which redis-py sets as the
    context's verify_mode (keeping its hostname check): for a client it is OpenSSL's SSL_VERIFY_PEER, as
    ``required`` is (the "fail if no certificate" half of required only means something on a server), and a TLS
    server always sends its certificate; so it is checked against REDIS_TLS_CA_FILE, or the system's CAs when
    that is not set, exactly as with ``required``."""
    certs = tls_redis.certificates
    cas = {"no CA file": None, "another CA": str(certs.other_ca), "the server's CA": str(certs.ca)}
    outcomes = {
        (cert_reqs, ca): connecting(
            make_settings(
                redis_url=tls_redis.url(),
                redis_tls_cert_reqs=cert_reqs,
                redis_tls_ca_file=cas[ca],
                redis_tls_cert_file=str(certs.client_cert),
                redis_tls_key_file=str(certs.client_key),
            )
        )
        for cert_reqs in ("required", "optional", "none")
        for ca in cas
    }
    assert outcomes == {
        ("required", "no CA file"): NOT_TRUSTED,
        ("required", "another CA"): NOT_TRUSTED,
        ("required", "the server's CA"): "connected",
        ("optional", "no CA file"): NOT_TRUSTED,
        ("optional", "another CA"): NOT_TRUSTED,
        ("optional", "the server's CA"): "connected",
        ("none", "no CA file"): "connected",
        ("none", "another CA"): "connected",
        ("none", "the server's CA"): "connected",
    }


def test_tls_files_with_a_plain_redis_url_are_refused(llm_server):
    env = llm_backend_env(llm_server.url, "tls-refused", REDIS_TLS_CA_FILE="/etc/ssl/certs/ca-certificates.crt")
    result = refused_start(["worker"], env)
    assert result.returncode == 2, result.stderr
    assert "REDIS_TLS_CA_FILE is set but REDIS_URL is not rediss://" in result.stderr
