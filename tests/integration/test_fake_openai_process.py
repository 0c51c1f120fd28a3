"""The fake OpenAI server in its own process does what the benchmarks rely on; no timing assertions."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import urllib.error
from pathlib import Path

import openai
import pytest

from tests.fakes.openai_server.control import FakeOpenAIControl
from tests.integration.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fake():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port), "--delay", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert "listening on" in process.stdout.readline()  # printed once it serves
        yield FakeOpenAIControl(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def chat(url: str, text: str) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection(url.split("//")[1], timeout=30)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]})
    conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response.status, payload, {k.lower(): v for k, v in response.getheaders()}


def test_answers_through_the_openai_client_with_the_sarcasm_labels(fake):
    fake.configure(delay=0, jitter=0, rpm=0, tpm=0)
    fake.clear()
    assert fake.healthy()
    client = openai.OpenAI(api_key="x", base_url=f"{fake.url}/v1", max_retries=0)
    texts = [
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": c}]).choices[0].message.content
        for c in ("an even one", "an odd one")
    ]
    assert texts == ["Not Sarcastic", "Sarcastic"]
    stats = fake.stats()
    assert (stats["requests"], stats["ok"], stats["rate_limited"], len(stats["ok_times"])) == (2, 2, 0, 2)
    assert stats["repeated_times"] == [] and stats["first_request_at"] <= stats["ok_times"][0]
    assert fake.in_flight() == {"in_flight": 0, "ok": 2}


def test_counts_a_call_asked_again_as_repeated(fake):
    fake.configure(delay=0, jitter=0, rpm=0, tpm=0)
    fake.clear()
    statuses = [chat(fake.url, text)[0] for text in ("one", "two", "one")]
    stats = fake.stats()
    assert statuses == [200, 200, 200] and stats["ok_times"][2:] == stats["repeated_times"]


def test_holds_hundreds_of_requests_at_once(fake):
    fake.configure(delay=3, jitter=0)
    fake.clear()
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(chat(fake.url, "x")[0])) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 200
    assert fake.stats()["max_in_flight"] == 200


def test_over_the_rpm_limit_answers_429_with_retry_after(fake):
    fake.configure(delay=0, jitter=0, rpm=60, tpm=0, burst=1)  # a bucket of one request, refilled each second
    fake.clear()
    first, _, _ = chat(fake.url, "x")
    second, payload, headers = chat(fake.url, "x")
    assert (first, second) == (200, 429)
    assert headers["retry-after"] == "1"
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert payload["error"]["code"] == "rate_limit_exceeded"
    stats = fake.stats()
    assert (stats["ok"], stats["rate_limited"], stats["rejected_rpm"], len(stats["limited_times"])) == (1, 1, 1, 1)


def test_over_the_tpm_limit_answers_429(fake):
    fake.configure(delay=0, jitter=0, rpm=0, tpm=600, burst=1)  # 10 tokens a second; a call costs more
    fake.clear()
    statuses = [chat(fake.url, "y" * 200)[0] for _ in range(2)]
    assert statuses == [200, 429]
    assert fake.stats()["rejected_tpm"] == 1


def test_clearing_refills_the_buckets_and_keeps_the_settings(fake):
    fake.configure(delay=0, jitter=0, rpm=60, tpm=0, burst=1)
    fake.clear()
    assert [chat(fake.url, "x")[0] for _ in range(2)] == [200, 429]
    fake.clear()
    assert chat(fake.url, "x")[0] == 200
    assert fake.stats()["settings"] == {"delay": 0, "jitter": 0, "rpm": 60, "tpm": 0, "burst": 1}


def test_an_unknown_setting_is_refused_naming_it(fake):
    with pytest.raises(urllib.error.HTTPError) as refused:
        fake.configure(latency=1)
    assert refused.value.code == 400
    assert "unknown setting latency" in json.loads(refused.value.read())["error"]["message"]


def test_records_its_own_time_per_bench_token(fake):
    fake.configure(delay=0.01, jitter=0, rpm=0, tpm=0)
    fake.clear()
    chat(fake.url, "Is it sarcastic? [bench:abc-1]")
    timings = fake.timings()
    assert list(timings) == ["abc-1"] and timings["abc-1"] > 0
    assert fake.timings() == {}, "reading the timings clears them"


def test_finds_the_bench_token_in_any_message(fake):
    """The backend puts the annotator's prompt (and its token) in the system message, the task's text last."""
    fake.configure(delay=0, jitter=0, rpm=0, tpm=0)
    fake.clear()
    messages = [{"role": "system", "content": "Is it sarcastic? [bench:sys-1]"}, {"role": "user", "content": "text"}]
    openai.OpenAI(api_key="x", base_url=f"{fake.url}/v1", max_retries=0).chat.completions.create(
        model="m", messages=messages
    )
    assert list(fake.timings()) == ["sys-1"]


def test_answers_a_json_schema_request_with_an_object_of_that_schema(fake):
    fake.configure(delay=0, jitter=0, rpm=0, tpm=0)
    client = openai.OpenAI(api_key="x", base_url=f"{fake.url}/v1", max_retries=0)
    labels = {"type": "array", "items": {"type": "string", "enum": ["Sarcastic", "Not Sarcastic"]}}
    note = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    schema = {
        "type": "object",
        "properties": {"sentiment": labels, "note": note},
        "required": ["sentiment", "note"],
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}}
    answers = [
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": text}], response_format=response_format
        )
        .choices[0]
        .message.content
        for text in ("an even one", "an odd one")
    ]
    assert [json.loads(answer) for answer in answers] == [
        {"sentiment": ["Not Sarcastic"], "note": "Not Sarcastic"},
        {"sentiment": ["Sarcastic"], "note": "Sarcastic"},
    ]
