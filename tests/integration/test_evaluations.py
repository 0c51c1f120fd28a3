"""/evaluations, /estimate and the eval score export, over HTTP against the recording Label Studio stand-in, on
the real Redis; ``--predict`` and the estimate's calibration through a real worker process and the fake LLM.

Project 41 (one Choices, plus the prompt and an output TextArea nobody annotates):

    task  ground truth (why)                          v1        v2
    1     Positive                                    Positive  Positive
    2     Negative (marked ground_truth, not latest)  Positive  Negative
    3     none (its only annotation was cancelled)    Positive  -
    4     Positive (latest of two)                    Positive  Neutral
    5     Negative                                    Positive  Negative
    6     none (no annotation)                        Positive  -
    7     Neutral (a later one was cancelled)         Neutral   Neutral
    8     Positive                                    -         Positive

v1 scores tasks 1, 2, 4, 5, 7: accuracy 3/5, disagreements 2 and 5; Positive tp 2 fp 2 (F1 2/3), Negative fn 2
(F1 0), Neutral tp 1 (F1 1).  v2 on the same tasks: 4/5 (only 4 wrong); alone it also scores task 8: 5/6.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.state import state_of
from cli.batch import run_batch
from shared.adapters.evaluations import EvaluationStore
from shared.adapters.kept_runs import RUNS_KEPT
from shared.domain.config import setting_default
from shared.domain.estimation.tokens import count_request_tokens
from shared.domain.evaluation.run import EvaluationRun, RunState
from shared.evaluation import Evaluations
from shared.project_tasks import open_project
from tests.conftest import LS_TOKEN
from tests.fakes.openai_server.tokens import prompt_tokens
from tests.integration.processes import LLM_BACKEND, BackendProcess, llm_backend_env

# The fake LLM replies in prose (a label), so the backend asks in text mode, as the reference does.
pytestmark = pytest.mark.prose_answers
PROJECT = 41
CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text" editable="true" rows="2"/>
  <TextArea name="response" toName="text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>
  </Choices>
</View>
"""
TRUTH = {1: "Positive", 2: "Negative", 4: "Positive", 5: "Negative", 7: "Neutral", 8: "Positive"}
V1 = {1: "Positive", 2: "Positive", 3: "Positive", 4: "Positive", 5: "Positive", 6: "Positive", 7: "Neutral"}
V2 = {1: "Positive", 2: "Negative", 4: "Neutral", 5: "Negative", 7: "Neutral", 8: "Positive"}


def choice(label: str) -> list[dict]:
    return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def annotation(id_: int, label: str, when: str, **flags) -> dict:
    return {"id": id_, "result": choice(label), "created_at": when, "updated_at": when, **flags}


def tasks(texts: dict[int, str] | None = None) -> list[dict]:
    texts = texts or {}
    annotations = {
        1: [annotation(11, "Positive", "2025-01-01T10:00:00Z")],
        2: [
            annotation(21, "Negative", "2025-01-01T10:00:00Z", ground_truth=True),
            annotation(22, "Positive", "2025-01-02T10:00:00Z"),
        ],
        3: [annotation(31, "Negative", "2025-01-01T10:00:00Z", was_cancelled=True)],
        4: [annotation(41, "Neutral", "2025-01-01T10:00:00Z"), annotation(42, "Positive", "2025-01-03T10:00:00Z")],
        5: [annotation(51, "Negative", "2025-01-01T10:00:00Z")],
        7: [
            annotation(71, "Neutral", "2025-01-01T10:00:00Z"),
            annotation(72, "Positive", "2025-01-05T10:00:00Z", was_cancelled=True),
        ],
        8: [annotation(81, "Positive", "2025-01-01T10:00:00Z")],
    }
    return [
        {"id": i, "data": {"text": texts.get(i, f"review number {i}")}, "annotations": annotations.get(i, [])}
        for i in range(1, 9)
    ]


@pytest.fixture
def project(make_settings, make_client, real_store, redis_prefix, fake_label_studio):
    """The API in-process on the real Redis, project 41 set up against the stand-in, with v1 and v2 predicted."""
    settings = make_settings(redis_key_prefix=redis_prefix)
    client = make_client(settings, real_store)
    fake_label_studio.add_project(PROJECT, CONFIG, tasks(), title="Reviews")
    for version, answers in (("v1", V1), ("v2", V2)):
        for task, label in answers.items():
            fake_label_studio.add_prediction(PROJECT, task, version, choice(label))
    setup = {"project": f"{PROJECT}.1", "schema": CONFIG, "hostname": fake_label_studio.url, "access_token": LS_TOKEN}
    assert client.post("/setup", json=setup).status_code == 200
    return client


def test_evaluation_scores_a_stored_version_against_the_ground_truth(project, fake_label_studio):
    response = project.post("/evaluations", json={"project": PROJECT, "version": "v1"})

    assert response.status_code == 200, response.json
    run = response.json
    assert run["state"] == "done" and run["title"] == "Reviews" and run["versions"] == ["v1"]
    [v1] = run["scores"]
    assert v1["coverage"] == {"tasks": 8, "scored": 5, "without_ground_truth": 2, "failed": 0, "without_prediction": 1}
    sentiment = v1["controls"]["sentiment"]
    assert sentiment["metrics"]["accuracy"] == pytest.approx(3 / 5)
    assert sentiment["per_label"]["match"]["Positive"]["f1"] == pytest.approx(2 / 3)
    assert sentiment["per_label"]["match"]["Negative"]["f1"] == 0
    assert sentiment["per_label"]["match"]["Neutral"]["f1"] == 1
    assert sentiment["disagreements"] == [2, 5] and v1["disagreement_counts"] == {"sentiment": 2}
    assert sentiment["confusion"]["rows"][1] == [2, 0, 0, 0]  # both Negatives predicted Positive
    assert set(v1["controls"]) == {"sentiment"}
    assert run["skipped_controls"] == {"prompt": "it holds the prompt", "response": "no ground truth answers it"}
    assert run["label_studio_url"] == fake_label_studio.url

    again = project.get(f"/evaluations/{run['id']}")
    assert again.status_code == 200 and again.json == run
    listed = project.get(f"/evaluations?project={PROJECT}").json["evaluations"]
    assert [item["id"] for item in listed] == [run["id"]]
    assert listed[0]["scores"]["v1"]["controls"] == {"sentiment": {"accuracy": pytest.approx(0.6)}}
    page = project.get(f"/evaluations/{run['id']}?format=html")
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<svg" in html and f'href="{fake_label_studio.url}/projects/41/data?task=2"' in html


def test_the_html_report_runs_no_script_and_loads_nothing(project):
    """Text from Label Studio is escaped in the report; the browser is also told to run no script in it, load
    nothing from elsewhere and take it as HTML only."""
    run = project.post("/evaluations", json={"project": PROJECT, "version": "v1"}).json
    page = project.get(f"/evaluations/{run['id']}?format=html")

    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and "script-src" not in policy
    assert policy["style-src"] == "'unsafe-inline'" and "img-src" not in policy
    assert policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'none'"
    html = page.get_data(as_text=True)
    assert "<style>" in html and "<svg" in html and "<img" not in html, "inline style and SVG: what the policy allows"


def test_evaluation_keeps_each_disagreements_answers_score_and_text_and_calibrates_the_score(project):
    """Every prediction of the stand-in scores 0.5: one bucket, accuracy 3/5, ECE 0.1; 0.9 is out of reach,
    0.6 is reached from 0.5 up (every item)."""
    run = project.post("/evaluations", json={"project": PROJECT, "version": "v1", "precisions": [0.9, 0.6]}).json

    sentiment = run["scores"][0]["controls"]["sentiment"]
    assert sentiment["disagreement_details"] == [
        {"task_id": 2, "expected": "Negative", "predicted": "Positive", "score": 0.5},
        {"task_id": 5, "expected": "Negative", "predicted": "Positive", "score": 0.5},
    ]
    assert run["excerpts"] == {"2": "review number 2", "5": "review number 5"}
    calibration = sentiment["calibration"]
    assert (calibration["items"], calibration["unscored"]) == (5, 0)
    assert [(b["low"], b["items"], b["accuracy"]) for b in calibration["buckets"] if b["items"]] == [(0.5, 5, 0.6)]
    assert calibration["ece"] == pytest.approx(0.1)
    out_of_reach, reached = calibration["thresholds"]
    assert out_of_reach == {"target": 0.9, "score": None, "precision": None, "items": 0, "share": None}
    assert reached == {"target": 0.6, "score": 0.5, "precision": pytest.approx(0.6), "items": 5, "share": 1.0}
    html = project.get(f"/evaluations/{run['id']}?format=html").get_data(as_text=True)
    assert "<td>review number 2</td><td>Negative</td><td>Positive</td><td>0.500</td>" in html
    assert "ECE 0.100 over 5 items with a score" in html and html.count("<svg") == 2


def test_comparison_scores_both_versions_on_the_same_tasks(project):
    run = project.post("/evaluations", json={"project": PROJECT, "compare": ["v1", "v2"]}).json

    before, after = run["scores"]
    assert (before["version"], after["version"]) == ("v1", "v2")
    for version in (before, after):  # task 8 has no v1 prediction, so neither version scores it
        assert version["coverage"]["scored"] == 5 and version["coverage"]["without_prediction"] == 1
    assert after["controls"]["sentiment"]["disagreements"] == [4]
    deltas = {(d["control"], d["metric"]): d for d in run["comparison"]["deltas"]}
    assert run["comparison"]["same_tasks"] is True
    assert deltas["sentiment", "accuracy"]["before"] == pytest.approx(0.6)
    assert deltas["sentiment", "accuracy"]["after"] == pytest.approx(0.8)
    assert deltas["sentiment", "accuracy"]["delta"] == pytest.approx(0.2)
    changes = run["changes"]["sentiment"]
    assert (changes["fixed"], changes["broken"], changes["changed"]) == (2, 1, 0)
    assert [(task["task_id"], task["kind"], task["before"], task["after"]) for task in changes["tasks"]] == [
        (4, "broken", "Positive", "Neutral"),
        (2, "fixed", "Positive", "Negative"),
        (5, "fixed", "Positive", "Negative"),
    ]
    assert set(run["excerpts"]) == {"2", "4", "5"}

    alone = project.post("/evaluations", json={"project": PROJECT, "version": "v2"}).json
    assert alone["scores"][0]["controls"]["sentiment"]["metrics"]["accuracy"] == pytest.approx(5 / 6)


def test_metrics_export_the_latest_scores_per_project_and_version(project):
    project.post("/evaluations", json={"project": PROJECT, "version": "v1", "limit": 2})  # tasks 1 and 2: 1 of 2
    project.post("/evaluations", json={"project": PROJECT, "compare": ["v1", "v2"]})

    found = {}
    for family in text_string_to_metric_families(project.get("/metrics").get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == "llm_backend_eval_score":
                labels = sample.labels
                found[labels["version"], labels["control"], labels["metric"]] = sample.value
                assert labels["project"] == "41"
    assert found["v1", "sentiment", "accuracy"] == pytest.approx(0.6)  # the latest run's, not the limited one
    assert found["v2", "sentiment", "accuracy"] == pytest.approx(0.8)
    assert found["v1", "sentiment", "f1:Positive"] == pytest.approx(2 / 3)
    assert found["v1", "(coverage)", "scored"] == 5


def eval_series(client) -> set[str]:
    return {
        sample.labels["version"]
        for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        for sample in family.samples
        if sample.name == "llm_backend_eval_score"
    }


def test_versions_named_only_by_runs_dropped_leave_metrics_with_them(project):
    """Issue #23: every name given to ``compare`` became a series kept forever."""
    for n in range(RUNS_KEPT + 5):
        assert (
            project.post("/evaluations", json={"project": PROJECT, "compare": [f"made-up-{n}", "v1"]}).status_code
            == 200
        )

    assert eval_series(project) == {f"made-up-{n}" for n in range(5, RUNS_KEPT + 5)} | {"v1"}


def test_evaluations_past_evaluation_concurrency_get_429_at_once(project):
    """Issue #23: twelve at once took an API process from 131 to 510 MB; now one more than the bound is refused."""
    limit = setting_default("evaluation_concurrency")
    slots = state_of(project.application).evaluation_slots
    with slots.hold(), slots.hold():  # two evaluations running in this process
        refused = project.post("/evaluations", json={"project": PROJECT, "version": "v1"})

    assert limit == 2 and refused.status_code == 429
    assert "2 evaluations are running in this API process, EVALUATION_CONCURRENCY=2" in refused.json["error"]
    assert project.post("/evaluations", json={"project": PROJECT, "version": "v1"}).status_code == 200


def test_a_run_scored_when_its_job_has_finished_waits_for_a_slot_too(project):
    """``GET /evaluations/<id>`` reads the project again to score a run whose job has finished: bounded alike."""
    services = state_of(project.application).services
    job_id = services.jobs.create(services.projects.snapshot(services.projects.context("41", CONFIG, None)), [], 10)
    services.jobs.cancel(job_id)
    run = EvaluationRun(id="waiting", project="41", created_at=time.time(), versions=["v1"], state=RunState.PREDICTING)
    run.job_id, run.predicted_version = job_id, "v1"
    EvaluationStore(services.store).save(run)
    slots = state_of(project.application).evaluation_slots

    with slots.hold(), slots.hold():
        refused = project.get("/evaluations/waiting")
    scored = project.get("/evaluations/waiting")

    assert refused.status_code == 429 and "EVALUATION_CONCURRENCY=2" in refused.json["error"]
    assert scored.status_code == 200 and scored.json["state"] == "done"


def test_a_run_keeps_of_each_task_only_what_scoring_needs(project):
    """Predictions only of the versions scored, and an excerpt, for the tasks with a ground truth; no task data."""
    services = state_of(project.application).services
    opened = open_project(services, PROJECT)

    scoring = Evaluations(services)._records(opened, ["v1"])

    assert [record.id for record in scoring] == list(range(1, 9))
    assert not any(hasattr(record, "data") for record in scoring)
    assert {record.id for record in scoring if record.predictions} == set(TRUTH) - {8}  # task 8 has no v1
    assert {record.id for record in scoring if record.excerpt} == set(TRUTH)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "project is required"),
        ({"project": "x"}, 400, "project must be a whole number"),
        ({"project": PROJECT, "version": "v1", "compare": ["v2"]}, 400, "either a version or versions to compare"),
        ({"project": PROJECT, "controls": ["nope"]}, 400, "control 'nope' is not in the labeling config"),
        ({"project": PROJECT, "limit": 0}, 400, "limit must be at least 1"),
        ({"project": PROJECT, "controls": "sentiment"}, 400, "controls must be a list of names"),
        ({"project": PROJECT, "precisions": 0.9}, 400, "precisions must be a list of target precisions"),
        ({"project": PROJECT, "precisions": [0.9, 1.5]}, 400, "a target precision is a number above 0 and at most 1"),
        ({"project": PROJECT, "precisions": ["high"]}, 400, "a target precision is a number above 0 and at most 1"),
        ({"project": 99}, 400, "no Label Studio to read project 99 from"),
        ({"project": PROJECT, "predict": True}, 400, 'project 41: no prompt: type one into the "prompt" TextArea'),
    ],
)
def test_bad_evaluation_requests_name_the_problem(project, body, status, message):
    response = project.post("/evaluations", json=body)

    assert response.status_code == status and message in response.json["error"], response.json


def test_the_batch_command_stops_at_a_project_without_a_prompt_as_an_evaluation_does(
    project, make_settings, redis_prefix, capsys
):
    code = run_batch(make_settings(redis_key_prefix=redis_prefix), PROJECT, only_unlabeled=False, wait=False)

    assert code == 2
    assert capsys.readouterr().err.startswith('llm-backend: project 41: no prompt: type one into the "prompt" TextArea')
    assert project.get(f"/jobs?project={PROJECT}").json == {"jobs": []}


def test_unknown_evaluation_is_404_and_listing_needs_a_project(project):
    assert project.get("/evaluations/nope").status_code == 404
    assert "project is required" in project.get("/evaluations").json["error"]
    assert "project is required" in project.get("/estimate").json["error"]
    assert "filter must be" in project.get(f"/estimate?project={PROJECT}&filter=some").json["error"]


def test_predict_then_score_then_estimate_the_rest_then_confirm_the_batch(
    project, fake_label_studio, fake_llm, llm_server, redis_prefix, tmp_path
):
    """The loop of docs/iterating.md through a real worker: ``--predict`` runs the prompt on the annotated tasks
    (task 8 has no text: its prediction fails), the answers are scored; the estimate of the remaining tasks is
    calibrated by those answers, which the LLM cache kept; ``batch`` asks above BATCH_CONFIRM_USD."""
    marker = uuid.uuid4().hex[:8]
    texts = {i: f"{marker} review {i}: {TRUTH.get(i, 'Neutral').lower()} words " * 3 for i in range(1, 8)}
    fake_label_studio.add_project(PROJECT, CONFIG, tasks(texts))
    fake_label_studio.tasks[PROJECT][7]["data"] = {}  # task 8
    fake_llm.reply = lambda messages, index: "Neutral" if "review 5" in str(messages) else _said(messages)
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": PROJECT},
        "annotation": {"result": [{"from_name": "prompt", "value": {"text": ["Positive, Negative or Neutral?"]}}]},
    }
    version = project.post("/webhook", json=event).json["model_version"]
    env = llm_backend_env(llm_server.url, redis_prefix, BATCH_CHUNK_SIZE="4", LLM_CONCURRENCY="4", OUTPUT_MODE="text")
    worker = BackendProcess(["worker", "--concurrency", "2", "-n", f"eval-{marker}@%h"], env, tmp_path / "worker.log")
    worker.start()
    try:
        worker.wait_for_log(" ready.")
        started = project.post("/evaluations", json={"project": PROJECT, "predict": True})
        assert started.status_code == 202 and started.json["state"] == "predicting", started.json
        assert started.json["predicted_version"] == version
        run = wait_until_scored(project, started.json["id"], worker)

        [score] = run["scores"]
        assert score["version"] == version
        assert score["coverage"] == {
            "tasks": 8,
            "scored": 5,
            "without_ground_truth": 2,
            "failed": 1,
            "without_prediction": 0,
        }
        assert score["controls"]["sentiment"]["metrics"]["accuracy"] == pytest.approx(4 / 5)  # task 5 answered Neutral
        assert score["controls"]["sentiment"]["disagreements"] == [5]
        predicted_calls = [call for call in fake_llm.live_completions if marker in str(call.body["messages"])]
        assert len(predicted_calls) == 5, "tasks 1, 2, 4, 5 and 7: those with a ground truth and a text"

        flushed_by = time.monotonic() + 10  # the worker writes its latency observations to Redis once a second
        while (estimate := project.get(f"/estimate?project={PROJECT}&filter=all").json)[
            "latency_source"
        ] != "observed mean" and time.monotonic() < flushed_by:
            time.sleep(0.2)
        assert estimate["tasks"] == 3 and estimate["tasks_seen"] == 8  # 3, 6 and 8: no prediction of it
        assert estimate["failing"] == 1 and estimate["run"]["requests"] == 2  # task 8 has no text
        assert estimate["workers"] == 2 and estimate["workers_source"] == "live"
        assert estimate["latency_source"] == "observed mean"
        assert estimate["calibration_requests"] == 5
        reported = sum(call.answer["usage"]["prompt_tokens"] for call in predicted_calls)
        counted = sum(count_request_tokens(call.body["messages"], "gpt-3.5-turbo").tokens for call in predicted_calls)
        assert estimate["calibration"] == pytest.approx(reported / counted)
        assert estimate["output_tokens_per_request"] == 2  # the fake's 4 characters a token: "Positive" is 2
        would_report = sum(prompt_tokens({"messages": _messages(texts[i])}) for i in (3, 6))
        assert estimate["run"]["input_tokens"] == pytest.approx(would_report, rel=0.1)

        command = [LLM_BACKEND, "batch", "--project", str(PROJECT), "--filter", "all"]
        guarded = env | {"BATCH_CONFIRM_USD": "0"}
        refused = subprocess.run(command, env=guarded, input="n\n", capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1, refused.stderr
        assert "tasks to predict: 3 of 8" in refused.stdout
        assert "is above BATCH_CONFIRM_USD $0. Start the job? [y/N]" in refused.stdout
        assert "not started" in refused.stderr
        no_terminal = subprocess.run(command, env=guarded, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        assert no_terminal.returncode == 1 and "pass --yes to start it anyway" in no_terminal.stderr
        assert "job " not in no_terminal.stdout
        accepted = subprocess.run(
            [*command, "--yes", "--wait"], env=guarded, capture_output=True, text=True, timeout=120
        )
        assert accepted.returncode == 1, accepted.stderr  # task 8 fails again: the job is partial
        assert "3 of 8 tasks" in accepted.stdout and "tasks 3: done 2, failed 1, pushed 2" in accepted.stdout
        tokens_in, tokens_out = map(int, re.search(r"tokens in (\d+), out (\d+)", accepted.stdout).groups())
        assert tokens_in == would_report
        assert estimate["run"]["input_tokens"] == pytest.approx(tokens_in, rel=0.1)
        assert estimate["run"]["output_tokens"] == tokens_out == 4
    finally:
        worker.stop()


def _said(messages: list[dict]) -> str:
    """What the fake model answers: the label the task's text names."""
    text = str(messages).lower()
    return next(label for label in ("Positive", "Negative", "Neutral") if f": {label.lower()} words" in text)


def _messages(text: str) -> list[dict]:
    return [
        {"role": "system", "content": "Task Directive: Positive, Negative or Neutral?"},
        {"role": "user", "content": f"Source Text: {text}"},
    ]


def wait_until_scored(client, run_id: str, worker: BackendProcess, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while (run := client.get(f"/evaluations/{run_id}").json)["state"] == "predicting":
        assert worker.process.poll() is None, worker.log
        assert time.monotonic() < deadline, f"not scored in {timeout} s: {run}\n{worker.log}"
        time.sleep(0.3)
    assert run["state"] == "done", run
    return run


def test_eval_command_prints_the_report_and_writes_html(project, llm_server, redis_prefix, tmp_path):
    env = llm_backend_env(llm_server.url, redis_prefix, OUTPUT_MODE="text")
    report = tmp_path / "report.html"
    command = [LLM_BACKEND, "eval", "--project", str(PROJECT), "--compare", "v1", "v2", "--html", str(report)]

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert "comparison: v1 (before) -> v2 (after), on the same tasks" in result.stdout
    assert re.search(r"sentiment +accuracy +0\.600 +0\.800 +\+0\.200", result.stdout)
    assert "/projects/41/data?task=2" in result.stdout
    assert f"HTML report: {report}" in result.stderr
    assert report.read_text().count("<svg") == 4  # per version, the confusion matrix and the reliability chart
    assert "<h2>Tasks that changed</h2>" in report.read_text()
    assert "calibration of the score: ECE 0.100 (5 items with a score)" in result.stdout
    assert "expected Negative, predicted Positive (score 0.500)  'review number 2'" in result.stdout
    assert "  sentiment: 2 fixed, 1 broken, 0 answered differently; first 3:" in result.stdout
    targeted = subprocess.run([*command[:-2], "--precisions", "0.55"], env=env, capture_output=True, text=True)
    assert "precision 0.55: score >= 0.500 (60.0% right), covers 100.0% (5 of 5 items)" in targeted.stdout
    as_json = subprocess.run([*command[:-2], "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert '"same_tasks": true' in as_json.stdout
    missing = subprocess.run([LLM_BACKEND, "eval", "--project", "99"], env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "no Label Studio to read project 99 from" in missing.stderr
