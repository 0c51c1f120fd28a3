"""Issue #11 on real ``llm-backend`` processes (gunicorn's threads and limits, a Celery worker, Flower), with the
default settings where the finding was made with them, and loopback listeners that record what reaches them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import psutil
import pytest
import redis
import requests

from api.capacity import slots_for
from shared.domain.config import Settings
from tests.conftest import TEST_API_KEY, labeling_config, real_redis_url
from tests.fakes.recorder import Recorded, RecordingServer, chat_completion, http_response, send
from tests.integration.processes import BackendProcess, backend_env, free_port, llm_backend_env

SARCASM = labeling_config("sarcasm")


def start_api(env: dict[str, str], log: Path, *args: str, auth=None) -> tuple[BackendProcess, str]:
    port = free_port()
    api = BackendProcess(["api", "--host", "127.0.0.1", "--port", str(port), *args], env, log).start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", auth=auth, timeout=1).status_code == 200:
                return api, base
        except httpx.TransportError:
            pass
        assert api.process.poll() is None, api.log
        assert time.monotonic() < deadline, f"llm-backend api did not come up:\n{api.log}"
        time.sleep(0.1)


def prompt_body(project: str, text: str, prompt: str = "Sarcastic?") -> dict:
    return {
        "tasks": [{"id": 1, "data": {"text": text}}],
        "project": project,
        "label_config": SARCASM,
        "params": {"context": {"result": [{"from_name": "prompt", "to_name": "text", "value": {"text": [prompt]}}]}},
    }


# --- a slow provider: 504 before Label Studio gives up, /health on time ------------------------------------------

TRICKLE_EVERY = 2.0  # seconds per byte, as in the issue
DEFAULTS = Settings.model_fields
LLM_SLOTS = DEFAULTS["api_workers"].default * slots_for(DEFAULTS["api_threads"].default)  # may wait for the LLM at once
STUCK_REQUESTS = LLM_SLOTS + 10


@pytest.fixture
def slow_provider() -> Iterator[RecordingServer]:
    """Hangs for prompts saying HANG; sends the head at once and trickles the body for TRICKLE-BODY; trickles
    even the status line for TRICKLE-HEAD."""
    answer = http_response(200, chat_completion("Sarcastic"))
    head, body = answer.split(b"\r\n\r\n", 1)

    def respond(request: Recorded, handler) -> None:
        if b"TRICKLE-BODY" in request.body:
            handler.wfile.write(head + b"\r\n\r\n")
            server.trickle(handler, body, TRICKLE_EVERY)
        elif b"TRICKLE-HEAD" in request.body:
            server.trickle(handler, answer, TRICKLE_EVERY)
        else:
            server.hang(handler)

    with RecordingServer(respond) as server:
        yield server


@pytest.mark.fault_recovery
def test_a_hung_or_trickling_provider_gets_the_annotator_a_504_before_label_studio_gives_up(
    slow_provider, redis_prefix, tmp_path
):
    """Defaults throughout: LLM_TIMEOUT=120, LLM_MAX_RETRIES=5, INTERACTIVE_DEADLINE=60, 2 workers x 32 threads."""
    env = llm_backend_env(slow_provider.url, redis_prefix)
    api, base = start_api(env, tmp_path / "api.log")
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            assert client.post("/setup", json={"project": "51.1", "schema": SARCASM}).status_code == 200
            outcomes: dict[str, tuple[int, dict, float]] = {}

            def ask(name: str, text: str) -> None:
                started = time.monotonic()
                response = client.post("/predict", json=prompt_body("51.1", text))
                outcomes[name] = (response.status_code, response.json(), time.monotonic() - started)

            measured = [
                threading.Thread(target=ask, args=(name, name)) for name in ("HANG", "TRICKLE-BODY", "TRICKLE-HEAD")
            ]
            for thread in measured:
                thread.start()
            time.sleep(1.0)
            stuck = [threading.Thread(target=ask, args=(f"stuck-{i}", f"HANG {i}")) for i in range(STUCK_REQUESTS)]
            for thread in stuck:
                thread.start()
            time.sleep(3.0)

            health_seconds = []
            for _ in range(10):
                started = time.monotonic()
                assert httpx.get(f"{base}/health", timeout=5).json()["status"] == "UP"
                health_seconds.append(time.monotonic() - started)
                time.sleep(0.2)
            for thread in measured + stuck:
                thread.join(timeout=100)
    finally:
        api.stop()

    assert max(health_seconds) < 1.0, f"/health took {max(health_seconds):.2f} s with {STUCK_REQUESTS} stuck"
    for name in ("HANG", "TRICKLE-BODY", "TRICKLE-HEAD"):
        status, body, seconds = outcomes[name]
        assert status == 504, (name, status, body)
        assert "INTERACTIVE_DEADLINE" in body["error"] and "60 s" in body["error"]
        assert 59 < seconds < 65, (name, seconds)  # Label Studio waits 100 s
    statuses = sorted(outcomes[f"stuck-{i}"][0] for i in range(STUCK_REQUESTS))
    turned_away = statuses.count(503)
    # 2 processes x (32 threads - 2 kept for /health and the like) may wait for the LLM; the rest answer 503 at once
    assert turned_away >= STUCK_REQUESTS + 3 - LLM_SLOTS and set(statuses) <= {503, 504}, statuses
    assert all(outcomes[f"stuck-{i}"][2] < 5 for i in range(STUCK_REQUESTS) if outcomes[f"stuck-{i}"][0] == 503)
    print(
        f"\n504 after {outcomes['HANG'][2]:.1f} s (hung), {outcomes['TRICKLE-BODY'][2]:.1f} s (trickled body), "
        f"{outcomes['TRICKLE-HEAD'][2]:.1f} s (trickled head); /health max {max(health_seconds) * 1000:.0f} ms "
        f"with {STUCK_REQUESTS} stuck requests, {turned_away} of them turned away with 503; "
        f"the provider saw {len(slow_provider.requests)} calls"
    )


# --- a batch: Label Studio gets /setup's token only, echoes are redacted, a bad task fails alone --------------

OPERATOR_LS_KEY = "ls-operator-key-0123456789"
SETUP_TOKEN = "setup-token-abcdef987654"
REFUSED_TASK = 2
BAD_TEXT_TASK = 4


def batch_text(task_id: int) -> str:
    return "lone \ud800 surrogate" if task_id == BAD_TEXT_TASK else f"text {task_id}"


def echoing_label_studio(request: Recorded, handler) -> None:
    """Serves tasks 1–5 and takes predictions, but refuses task 2 with an error body that echoes the request's
    Authorization header."""
    echo = {"detail": f"task {REFUSED_TASK} is not yours; you sent {request.headers.get('authorization')}"}
    payload = request.json() if request.method == "POST" else None
    if request.method == "GET" and request.path.startswith("/api/tasks/"):
        wanted = json.loads(parse_qs(urlsplit(request.path).query)["query"][0])["selectedItems"]["included"]
        send(handler, 200, {"tasks": [{"id": i, "data": {"text": batch_text(i)}} for i in wanted if 1 <= i <= 5]})
    elif request.method == "GET":
        send(handler, 200, [])
    elif isinstance(payload, list) and any(item["task"] == REFUSED_TASK for item in payload):
        send(handler, 400, echo)
    elif isinstance(payload, dict) and payload.get("task") == REFUSED_TASK:
        send(handler, 400, echo)
    else:
        send(handler, 201, payload)


def test_a_batch_reaches_label_studio_only_with_the_setup_token_and_bad_tasks_fail_alone(
    llm_server, fake_llm, redis_prefix, tmp_path
):
    """LABEL_STUDIO_API_KEY set, LABEL_STUDIO_URL not: the key must not go to the host that /setup names."""
    with RecordingServer(echoing_label_studio) as label_studio:
        env = llm_backend_env(llm_server.url, redis_prefix, LABEL_STUDIO_API_KEY=OPERATOR_LS_KEY)
        api, base = start_api(env, tmp_path / "api.log")
        worker = BackendProcess(
            ["worker", "--concurrency", "1", "-n", f"sec-{uuid.uuid4().hex[:8]}@%h"], env, tmp_path / "worker.log"
        ).start()
        try:
            worker.wait_for_log(" ready.")
            setup = {"project": "52.1", "schema": SARCASM, "hostname": label_studio.url, "access_token": SETUP_TOKEN}
            assert httpx.post(f"{base}/setup", json=setup).status_code == 200
            event = {
                "action": "ANNOTATION_CREATED",
                "project": {"id": 52},
                "annotation": {"result": [{"from_name": "prompt", "value": {"text": ["Sarcastic?"]}}]},
            }
            assert httpx.post(f"{base}/webhook", json=event).status_code == 200
            tasks = [{"id": i, "data": {"text": batch_text(i)}} for i in range(1, 6)]
            body = {"tasks": tasks, "project": "52.1", "label_config": SARCASM, "params": {"context": None}}
            response = httpx.post(
                f"{base}/predict", content=json.dumps(body), headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 200 and response.json()["results"] == [], response.text
            job_id = response.json()["job"]
            deadline = time.monotonic() + 90
            while (status := httpx.get(f"{base}/jobs/{job_id}").json())["state"] in ("queued", "running"):
                assert time.monotonic() < deadline, f"{status}\n{worker.log}"
                time.sleep(0.3)
        finally:
            worker.stop()
            api.stop()

    assert (status["done"], status["pushed"], status["failed"]) == (4, 3, 2), status
    errors = {error["task"]: error["error"] for error in status["errors"]}
    assert "data.text holds a lone surrogate" in errors[BAD_TEXT_TASK]
    assert "Label Studio refused the prediction" in errors[REFUSED_TASK] and "Token ***" in errors[REFUSED_TASK]
    assert {r.headers.get("authorization") for r in label_studio.requests} == {f"Token {SETUP_TOKEN}"}
    assert OPERATOR_LS_KEY not in label_studio.seen() and TEST_API_KEY not in label_studio.seen()
    stored_errors = redis.Redis.from_url(real_redis_url()).lrange(f"{redis_prefix}:job:{job_id}:errors", 0, -1)
    for text in (worker.log, api.log, json.dumps(status), b"".join(stored_errors).decode()):
        assert SETUP_TOKEN not in text and OPERATOR_LS_KEY not in text and TEST_API_KEY not in text


# --- the server's edge: basic auth spellings, chunked bodies, long URLs, the config cache -----------------------

USER, PASSWORD = "annotator", "pässwörd-ü-42"  # latin-1 can encode it: Label Studio (requests) sends it so


def big_config(index: int, choices: int = 30_000) -> str:
    options = "".join(f'<Choice value="label {index} {k}"/>' for k in range(choices))
    return (
        '<View><Text name="text" value="$text"/><TextArea name="prompt" toName="text"/>'
        f'<Choices name="c" toName="text">{options}</Choices></View>'
    )


def test_the_servers_edge_answers_json_and_bounds_what_it_keeps(llm_server, redis_prefix, tmp_path):
    env = llm_backend_env(
        llm_server.url,
        redis_prefix,
        BASIC_AUTH_USER=USER,
        BASIC_AUTH_PASS=PASSWORD,
        MAX_REQUEST_BYTES=str(2 * 1024 * 1024),
    )
    api, base = start_api(env, tmp_path / "api.log", "--workers", "1", auth=(USER, PASSWORD))
    try:
        # The password as Label Studio sends it (requests' HTTPBasicAuth: latin-1) and as curl/httpx do (UTF-8).
        assert requests.get(f"{base}/health", auth=(USER, PASSWORD), timeout=5).status_code == 200
        assert httpx.get(f"{base}/health", auth=(USER, PASSWORD), timeout=5).status_code == 200
        assert requests.get(f"{base}/health", auth=(USER, "passwörd"), timeout=5).status_code == 401
        with httpx.Client(base_url=base, auth=(USER, PASSWORD), timeout=60) as client:
            # A chunked body over MAX_REQUEST_BYTES: 413, not a cut body reported as invalid JSON. (gunicorn then
            # closes the connection rather than drain the rest: each request below opens its own.)
            def chunked_post(total: int) -> httpx.Response:
                def chunks() -> Iterator[bytes]:
                    yield b'{"tasks": [], "padding": "'
                    for _ in range(total // 65536):
                        yield b"x" * 65536
                    yield b'"}'

                headers = {"Content-Type": "application/json", "Connection": "close"}
                return client.post("/predict", content=chunks(), headers=headers)

            too_big = chunked_post(3 * 1024 * 1024)
            assert too_big.status_code == 413 and "MAX_REQUEST_BYTES" in too_big.json()["error"]
            fits = chunked_post(64 * 1024)
            assert fits.status_code == 400 and fits.json()["error"] == "tasks is empty: send at least one task"
            # gunicorn's own answers are JSON too.
            long_url = client.get("/jobs/" + "x" * 5000)
            assert long_url.status_code == 414 and long_url.headers["content-type"] == "application/json"
            assert long_url.json()["error"].startswith("URI Too Long")

            # Distinct large configs to /setup (no auth needed if the API were open): the memory they take is bounded.
            [worker] = psutil.Process(api.process.pid).children()
            client.post("/setup", json={"project": "53.1", "schema": big_config(-1, 10)})
            before = worker.memory_info().rss
            for index in range(8):
                config = big_config(index)
                assert client.post("/setup", json={"project": f"{60 + index}.1", "schema": config}).status_code == 200
            grown = (worker.memory_info().rss - before) / 2**20
    finally:
        api.stop()
    # Unbounded, 8 configs of 0.9 MB kept about 350 MB (44 MB each); LABEL_CONFIG_CACHE_BYTES=2 MiB keeps 2.
    print(f"\nAPI worker grew {grown:.0f} MiB after 8 distinct 0.9 MB labeling configs")
    assert grown < 200, f"{grown:.0f} MiB"


# --- Flower: /metrics behind its basic auth ---------------------------------------------------------------------


def test_flowers_metrics_need_its_credentials(redis_prefix, tmp_path):
    port = free_port()
    env = backend_env(
        REDIS_URL=real_redis_url(), REDIS_KEY_PREFIX=redis_prefix, FLOWER_BASIC_AUTH="watcher:flower-pw-123"
    )
    flower = BackendProcess(["flower", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "flower.log")
    flower.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthcheck", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert flower.process.poll() is None, flower.log
            assert time.monotonic() < deadline, flower.log
            time.sleep(0.2)
        assert httpx.get(f"{base}/metrics", timeout=5).status_code == 401
        assert httpx.get(f"{base}/metrics", auth=("watcher", "wrong"), timeout=5).status_code == 401
        metrics = httpx.get(f"{base}/metrics", auth=("watcher", "flower-pw-123"), timeout=5)
        assert metrics.status_code == 200 and "flower_" in metrics.text
    finally:
        flower.stop()
