"""Issue #23, integrity: what reaches Label Studio is made from the data Label Studio holds, and a prediction is
handed only to a caller that sent the data it was made from.

Real ``llm-backend api`` and ``worker`` processes with the default settings (auth off, as Label Studio's ML
backends ship; only OUTPUT_MODE=text, as the fake answers in prose), the recording Label Studio stand-in
holding the project's tasks, and the fake LLM, whose answer shows which text it was given: "Sarcastic" for a
text saying CONFIDENTIAL or FORGED, "Not Sarcastic" otherwise.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LS_TOKEN, labeling_config
from tests.integration.processes import BackendProcess, llm_backend_env
from tests.integration.test_security_processes import start_api

SARCASM = labeling_config("sarcasm")
PROJECT = 7
HELD = {11: "an ordinary record 11", 12: "an ordinary record 12", 13: "an ordinary record 13"}
SECRET = {31: "CONFIDENTIAL record 31: diagnosis X", 32: "CONFIDENTIAL record 32: diagnosis Y"}


def choice_of(prediction: dict) -> list[str]:
    return {r["from_name"]: r["value"] for r in prediction["result"]}["sentiment"]["choices"]


def texts_asked(fake_llm) -> list[str]:
    """The task text of every chat request the LLM got (the source text ends each prompt)."""
    return [str(request.body["messages"]) for request in fake_llm.chat_requests]


class Backend:
    def __init__(self, base: str, fake_label_studio) -> None:
        self.base, self.label_studio = base, fake_label_studio
        self.http = httpx.Client(base_url=base, timeout=60)

    def predict(self, tasks: dict[int, str], project: str = f"{PROJECT}.1") -> dict:
        body = {
            "tasks": [{"id": task_id, "data": {"text": text}} for task_id, text in tasks.items()],
            "project": project,
            "label_config": SARCASM,
            "params": {"context": None},
        }
        response = self.http.post("/predict", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_finished(self, job_id: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while (status := self.http.get(f"/jobs/{job_id}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        return status


@pytest.fixture
def backend(llm_server, fake_llm, fake_label_studio, redis_prefix, tmp_path) -> Iterator[Backend]:
    """The project set up as Label Studio sets it up, its tasks held by the Label Studio stand-in."""
    env = llm_backend_env(llm_server.url, redis_prefix, OUTPUT_MODE="text")  # the fake answers in prose
    api, base = start_api(env, tmp_path / "api.log")
    worker = BackendProcess(
        ["worker", "-n", f"integrity-{uuid.uuid4().hex[:8]}@%h"], env, tmp_path / "worker.log"
    ).start()
    fake_llm.reply = lambda messages, index: (
        "Sarcastic" if "CONFIDENTIAL" in str(messages) or "FORGED" in str(messages) else "Not Sarcastic"
    )
    fake_label_studio.hold_tasks(PROJECT, [{"id": i, "data": {"text": t}} for i, t in (HELD | SECRET).items()])
    try:
        worker.wait_for_log(" ready.")
        setup = {
            "project": f"{PROJECT}.1",
            "schema": SARCASM,
            "hostname": fake_label_studio.url,
            "access_token": LS_TOKEN,
        }
        assert httpx.post(f"{base}/setup", json=setup).status_code == 200
        event = {
            "action": "ANNOTATION_CREATED",
            "project": {"id": PROJECT},
            "annotation": {"result": [{"from_name": "prompt", "value": {"text": ["Sarcastic?"]}}]},
        }
        assert httpx.post(f"{base}/webhook", json=event).status_code == 200
        yield Backend(base, fake_label_studio)
    finally:
        worker.stop()
        api.stop()


def test_forged_task_data_never_reaches_label_studio(backend, fake_label_studio, fake_llm):
    # The attacker's "opened task" answer is recorded for task 13; a batch of the same text is answered from the
    # cache and recorded for 11 and 12; a batch of new texts becomes a job.
    forged = "FORGED BY ATTACKER: awful"
    [answer] = backend.predict({13: forged})["results"]
    assert choice_of(answer) == ["Sarcastic"], "the caller gets the prediction of the data it sent"
    cached = backend.predict({11: forged, 12: forged})
    assert "job" not in cached and [choice_of(p) for p in cached["results"]] == [["Sarcastic"], ["Sarcastic"]]
    attackers_job = backend.predict({11: f"{forged} 11", 12: f"{forged} 12"})["job"]
    backend.wait_finished(attackers_job)
    # Then Label Studio's own Retrieve Predictions, with the data it holds.
    real_job = backend.predict(HELD)["job"]
    status = backend.wait_finished(real_job)

    assert (status["state"], status["pushed"], status["failed"]) == ("done", 3, 0), status
    by_task = fake_label_studio.predictions_by_task()
    assert {task: [choice_of(p) for p in found] for task, found in by_task.items()} == {
        11: [["Not Sarcastic"]],
        12: [["Not Sarcastic"]],
        13: [["Not Sarcastic"]],
    }, "one prediction per task, each made from Label Studio's text"
    asked = texts_asked(fake_llm)
    assert sum("FORGED" in text for text in asked) == 1, "only the attacker's own answer used its text"
    for text in HELD.values():
        assert sum(text in asked_text for asked_text in asked) == 1, f"{text!r} asked once"


def test_a_task_outside_the_project_fails_with_the_reason_and_nothing_is_pushed(backend, fake_label_studio, fake_llm):
    job = backend.predict({11: HELD[11], 999: "a task Label Studio does not hold in this project"})["job"]
    status = backend.wait_finished(job)
    assert (status["state"], status["pushed"], status["failed"]) == ("partial", 1, 1), status
    [error] = status["errors"]
    assert error["task"] == 999 and "not a task of project 7 in Label Studio" in error["error"]
    assert sorted(fake_label_studio.predictions_by_task()) == [11]
    assert not any("does not hold" in text for text in texts_asked(fake_llm))


def test_a_jobs_prediction_is_handed_only_to_a_caller_holding_the_same_data(backend, fake_label_studio, fake_llm):
    fake_label_studio.taking_imports = False  # the job's predictions wait in the ledger
    job = backend.predict(SECRET)["job"]
    deadline = time.monotonic() + 60
    while backend.http.get(f"/jobs/{job}").json()["done"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)

    # Anyone naming task 31 with other data gets the prediction of that data, not the job's.
    [guess] = backend.predict({31: "anything"}, project=str(PROJECT))["results"]
    assert choice_of(guess) == ["Not Sarcastic"]
    # Label Studio opening task 32 sends the data it holds: the job's prediction is handed over, no new call.
    [opened] = backend.predict({32: SECRET[32]})["results"]
    assert choice_of(opened) == ["Sarcastic"]
    assert sum(SECRET[32] in text for text in texts_asked(fake_llm)) == 1
    fake_label_studio.add_prediction(PROJECT, 32, opened["model_version"], opened["result"])  # as Label Studio does

    fake_label_studio.taking_imports = True
    status = backend.wait_finished(job)
    assert status["state"] == "done", status
    by_task = fake_label_studio.predictions_by_task()
    assert [choice_of(p) for p in by_task[31]] == [["Sarcastic"]], "the job's prediction of 31 is pushed once"
    assert len(by_task[32]) == 1, "task 32's prediction went to Label Studio as the opened task's answer only"
