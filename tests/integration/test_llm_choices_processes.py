"""Issue #23 on real ``llm-backend api`` and ``worker`` processes with the default settings: a project's extra
params cannot send its prompts and task texts to an endpoint the operator did not choose, hand the operator's
key to a provider it did not configure, nor pick the model or the number of answers the operator pays for.

Every place data could go is a loopback listener that records what reaches it: the endpoint a caller of
``/setup`` names, and Ollama's default port (localhost:11434, where any local process may listen).
"""

from __future__ import annotations

import time
import uuid

import httpx

from shared.adapters.store import ProjectSetup, Store
from tests.conftest import LS_TOKEN, TEST_API_KEY, labeling_config, real_redis_url
from tests.fakes.recorder import RecordingServer, chat_completion, send
from tests.integration.processes import BackendProcess, llm_backend_env
from tests.integration.test_security_processes import prompt_body, start_api

SARCASM = labeling_config("sarcasm")
ATTACKER_KEY = "sk-attacker-own-key-31337"
OPERATOR_MODEL = "gpt-3.5-turbo"  # OPENAI_MODEL's default
REFUSED_SETUPS = [  # extra params, and the setting the 400 must name
    ({"base_url": "{attacker}/v1", "api_key": ATTACKER_KEY}, "ALLOWED_LLM_ENDPOINTS"),
    ({"base_url": "{attacker}/v1"}, "ALLOWED_LLM_ENDPOINTS"),
    ({"base_url": "https://llm.collector.invalid/v1", "api_key": ATTACKER_KEY}, "ALLOWED_LLM_ENDPOINTS"),
    ({"provider": "ollama"}, "OLLAMA_ENDPOINT"),
    ({"model": "gpt-4o", "num_responses": 20}, "ALLOWED_MODELS"),
    ({"num_responses": 20}, "MAX_NUM_RESPONSES"),
]


def aimed_at(attacker: RecordingServer, extra: dict) -> dict:
    """The extra params with the recording listener's address where they name ``{attacker}``."""
    return {
        key: value.format(attacker=attacker.url) if isinstance(value, str) else value for key, value in extra.items()
    }


def batch_body(project: str, tasks: int = 3) -> dict:
    """Retrieve Predictions: several tasks, no context."""
    listed = [{"id": i, "data": {"text": f"batch text {i}"}} for i in range(1, tasks + 1)]
    return {"tasks": listed, "project": project, "label_config": SARCASM, "params": {"context": None}}


def wait_for_job(client: httpx.Client, job_id: str, worker: BackendProcess) -> dict:
    deadline = time.monotonic() + 90
    while (status := client.get(f"/jobs/{job_id}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"{status}\n{worker.log}"
        time.sleep(0.3)
    return status


def test_extra_params_cannot_choose_the_endpoint_the_provider_the_model_or_the_answers(
    llm_server, fake_llm, fake_label_studio, default_ollama_port, redis_prefix, tmp_path
):
    """OPENAI_PROVIDER, OLLAMA_ENDPOINT, ALLOWED_* and MAX_NUM_RESPONSES unset: the defaults of the findings."""

    def attacker_answers(request, handler):
        send(handler, 200, chat_completion("Sarcastic"))

    with RecordingServer(attacker_answers) as attacker:
        env = llm_backend_env(llm_server.url, redis_prefix)
        api, base = start_api(env, tmp_path / "api.log", "--workers", "1")
        worker = BackendProcess(
            ["worker", "--concurrency", "1", "-n", f"choices-{uuid.uuid4().hex[:8]}@%h"], env, tmp_path / "worker.log"
        ).start()
        client = httpx.Client(base_url=base, timeout=60)
        try:
            worker.wait_for_log(" ready.")
            setup = {"project": "54.1", "schema": SARCASM, "hostname": fake_label_studio.url, "access_token": LS_TOKEN}
            assert client.post("/setup", json=setup).status_code == 200
            refused = []
            for extra, setting in REFUSED_SETUPS:
                extra_params = aimed_at(attacker, extra)
                response = client.post("/setup", json=setup | {"extra_params": extra_params})
                refused.append((response.status_code, setting in response.json().get("error", ""), extra_params))
            # The project, re-registered with none of them, still predicts with the operator's choices.
            prompt = {"action": "ANNOTATION_CREATED", "project": {"id": 54}}
            prompt["annotation"] = {"result": [{"from_name": "prompt", "value": {"text": ["Sarcastic?"]}}]}
            assert client.post("/webhook", json=prompt).status_code == 200
            assert client.post("/predict", json=prompt_body("54.1", "an annotator's text")).status_code == 200
            fake_label_studio.hold_tasks(54, batch_body("54.1")["tasks"])
            job = client.post("/predict", json=batch_body("54.1")).json()["job"]
            status = wait_for_job(client, job, worker)

            # Projects registered before the rule, their setups in Redis as they were accepted then.
            store = Store.from_url(real_redis_url(), redis_prefix)
            stored_before = []
            for number, (extra, setting) in enumerate(REFUSED_SETUPS, start=60):
                extra_params = aimed_at(attacker, extra)
                store.save_setup(str(number), ProjectSetup(SARCASM, fake_label_studio.url, LS_TOKEN, extra_params))
                store.save_prompt(str(number), "Sarcastic?")
                for body in (prompt_body(f"{number}.1", "a later text"), batch_body(f"{number}.1")):
                    response = client.post("/predict", json=body)
                    error = response.json().get("error", "")
                    stored_before.append((response.status_code, setting in error, extra_params, error))
        finally:
            client.close()
            worker.stop()
            api.stop()

    assert all(code == 400 and names_it for code, names_it, *_ in refused), refused
    assert all(code == 400 and names_it for code, names_it, *_ in stored_before), stored_before
    assert attacker.requests == [] and default_ollama_port.requests == []
    assert (status["done"], status["pushed"], status["failed"]) == (3, 3, 0), status
    calls = fake_llm.chat_requests
    assert len(calls) == 4  # the annotator's task and the job's three, nothing for the refused projects
    assert {(c.headers["authorization"], c.body["model"], c.body.get("n", 1)) for c in calls} == {
        (f"Bearer {TEST_API_KEY}", OPERATOR_MODEL, 1)
    }
    assert ATTACKER_KEY not in api.log + worker.log
