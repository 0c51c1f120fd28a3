"""The real ``llm-backend api`` process (gunicorn, threads) on the real Redis, over HTTP."""

from __future__ import annotations

import subprocess
import time

import httpx
import psutil
import pytest

from tests.conftest import TEST_API_KEY, labeling_config
from tests.integration.processes import LLM_BACKEND, BackendProcess, backend_env, free_port, llm_backend_env


@pytest.fixture
def api_process(llm_server, redis_prefix, tmp_path):
    port = free_port()
    log_path = tmp_path / "api.log"
    env = llm_backend_env(
        llm_server.url,
        redis_prefix,
        BASIC_AUTH_USER="ls",
        BASIC_AUTH_PASS="pw",
        LOG_LEVEL="DEBUG",
        OUTPUT_MODE="text",  # the fake model answers in prose, as the reference's did
    )
    api = BackendProcess(["api", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"], env, log_path)
    api.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", auth=("ls", "pw"), timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert api.process.poll() is None, api.log
            assert time.monotonic() < deadline, "llm-backend api did not come up in 30 s"
            time.sleep(0.1)
        yield base, log_path
    finally:
        api.stop()


def test_served_api_predicts_learns_and_guards(api_process, fake_llm):
    base, log_path = api_process
    auth = ("ls", "pw")
    config = labeling_config("sarcasm")
    fake_llm.reply = lambda messages, index: "Sarcastic"

    assert httpx.get(f"{base}/health", timeout=5).status_code == 401
    setup = httpx.post(
        f"{base}/setup",
        json={"project": "9.1700000000", "schema": config, "hostname": "http://ls", "access_token": "tok-abc"},
        auth=auth,
        timeout=10,
    )
    assert setup.status_code == 200
    version = setup.json()["model_version"]

    context = {"result": [{"from_name": "prompt", "to_name": "text", "type": "textarea", "value": {"text": ["Sarc?"]}}]}
    body = {"tasks": [{"id": 1, "data": {"text": "Nice crash"}}], "project": "9.1700000000", "label_config": config}
    predicted = httpx.post(f"{base}/predict", json=body | {"params": {"context": context}}, auth=auth, timeout=30)
    assert predicted.status_code == 200
    [result] = predicted.json()["results"]
    assert result["model_version"] == version
    assert {r["from_name"]: r["value"] for r in result["result"]}["sentiment"] == {"choices": ["Sarcastic"]}

    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 9},
        "annotation": {"result": [{"from_name": "prompt", "value": {"text": ["Is {text} sarcastic?"]}}]},
    }
    learned = httpx.post(f"{base}/webhook", json=event, auth=auth, timeout=10).json()
    assert learned["prompt_changed"] and learned["model_version"] != version

    # Two gunicorn workers share the prompt through Redis: any of them predicts with it now.
    for _ in range(4):
        batch = httpx.post(f"{base}/predict", json=body, auth=auth, timeout=30).json()
        assert batch["results"][0]["model_version"] == learned["model_version"]
    assert fake_llm.chat_requests[-1].body["messages"][0]["content"].startswith("Task Directive: Is {text} sarcastic?")

    # Both gunicorn workers count into Redis (each flushes once a second): a scrape sees all five predictions.
    expected = 'llm_backend_http_requests_total{method="POST",route="/predict",status="200"} 5.0'
    deadline = time.monotonic() + 10
    while expected not in (metrics := httpx.get(f"{base}/metrics", auth=auth, timeout=10).text):
        assert time.monotonic() < deadline, metrics
        time.sleep(0.3)

    log_text = log_path.read_text()
    assert "Listening at: http://127.0.0.1" in log_text
    for secret in (TEST_API_KEY, "tok-abc", "pw@", "Basic bHM6cHc="):
        assert secret not in log_text


def test_the_api_server_takes_its_settings_with_the_commands_options_over_them(llm_server, redis_prefix, tmp_path):
    """``API_*`` settings shape gunicorn (its debug log prints its configuration); ``--threads`` overrides
    ``API_THREADS``."""
    settings = {"API_WORKERS": "1", "API_THREADS": "5", "API_TIMEOUT": "77", "API_GRACEFUL_TIMEOUT": "11"}
    env = llm_backend_env(llm_server.url, redis_prefix, LOG_LEVEL="DEBUG", API_KEEPALIVE="3", **settings)
    api = BackendProcess(["api", "--port", str(free_port()), "--threads", "4"], env, tmp_path / "api.log").start()
    try:
        api.wait_for_log("Booting worker")
        configuration = {line.strip() for line in api.log.splitlines()}
        expected = {"workers: 1", "threads: 4", "timeout: 77", "graceful_timeout: 11", "keepalive: 3"}
        assert expected <= configuration, api.log
        assert len(psutil.Process(api.process.pid).children()) == 1
    finally:
        api.stop()


def test_invalid_configuration_stops_start_up_with_one_line():
    result = subprocess.run(
        [LLM_BACKEND, "api", "--port", str(free_port())],
        env=backend_env(TEMPERATURE="abc", NUM_RESPONSES="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "TEMPERATURE='abc': Input should be a valid number" in lines[0]
    assert "NUM_RESPONSES='0': Input should be greater than or equal to 1" in lines[0]


def test_help_lists_the_api_command():
    result = subprocess.run([LLM_BACKEND, "api", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--host", "--port", "--workers", "--threads"):
        assert option in result.stdout
