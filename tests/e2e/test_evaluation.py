"""The prompt loop against a real Label Studio 1.23.2: score, compare, predict and score, estimate, batch.

A project of 12 reviews (ids below are positions; Label Studio assigns the real ones):

    task  ground truth (why)                          v1        v2        the prompt's answer (--predict)
    1     Positive                                    Positive  Positive  Positive
    2     Negative (marked ground truth, not latest)  Positive  Negative  Negative
    3     Neutral                                     Neutral   Positive  Neutral
    4     Positive (the latest of two)                Negative  Positive  Positive
    5     Negative                                    Negative  Negative  Neutral
    6     none (its only annotation was skipped)      Positive  -         -
    7     Neutral (a later one was skipped)           Neutral   Neutral   Neutral
    8     Positive                                    -         Positive  Positive
    9-12  none (not annotated)                        9: Pos.   -         (the batch: Positive)

v1 scores 1, 2, 3, 4, 5, 7: accuracy 4/6, disagreements 2 and 4, F1 Positive 1/2, Negative 1/2, Neutral 1.
v2 on the same tasks: 5/6 (3 wrong).  The prompt, on the 7 tasks with a ground truth: 6/7 (5 wrong).
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest
import redis
from playwright.sync_api import expect

from shared.reports.data_manager import task_url
from tests.conftest import real_redis_url
from tests.e2e.label_studio_server import TOKEN
from tests.integration.processes import LLM_BACKEND, BackendProcess, llm_backend_env

pytestmark = pytest.mark.timeout(900)

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
PROMPT = "Is this review Positive, Negative or Neutral? {text}"
TRUTH = {1: "Positive", 2: "Negative", 3: "Neutral", 4: "Positive", 5: "Negative", 7: "Neutral", 8: "Positive"}
V1 = {
    1: "Positive",
    2: "Positive",
    3: "Neutral",
    4: "Negative",
    5: "Negative",
    6: "Positive",
    7: "Neutral",
    9: "Positive",
}
V2 = {1: "Positive", 2: "Negative", 3: "Positive", 4: "Positive", 5: "Negative", 7: "Neutral", 8: "Positive"}


def choice(label: str) -> list[dict]:
    return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def review(marker: str, position: int) -> str:
    mood = TRUTH.get(position, "Positive").lower()
    return f"{marker} review {position}: a {mood} review, with words enough to count tokens on. " * 4


@pytest.fixture(scope="module")
def loop(ls, label_studio, llm_server, e2e_dir):
    """The project in Label Studio, its annotations and two versions' predictions; a worker with the LLM cache on."""
    marker = uuid.uuid4().hex[:10]
    project = ls.projects.create(title=f"reviews {marker}", label_config=CONFIG)
    ls.projects.import_tasks(id=project.id, request=[{"text": review(marker, i)} for i in range(1, 13)])
    ids = {
        position: task_id for position, task_id in enumerate(sorted(t.id for t in ls.tasks.list(project=project.id)), 1)
    }
    annotate = ls.annotations.create
    annotate(id=ids[1], result=choice("Positive"))
    annotate(id=ids[2], result=choice("Negative"), ground_truth=True)
    annotate(id=ids[2], result=choice("Positive"))
    annotate(id=ids[3], result=choice("Neutral"))
    annotate(id=ids[4], result=choice("Neutral"))
    annotate(id=ids[4], result=choice("Positive"))
    annotate(id=ids[5], result=choice("Negative"))
    annotate(id=ids[6], result=[], was_cancelled=True)
    annotate(id=ids[7], result=choice("Neutral"))
    annotate(id=ids[7], result=[], was_cancelled=True)
    annotate(id=ids[8], result=choice("Positive"))
    versions = {"v1": f"v1-{marker}", "v2": f"v2-{marker}"}
    for name, answers in (("v1", V1), ("v2", V2)):
        for position, label in answers.items():
            ls.predictions.create(task=ids[position], result=choice(label), model_version=versions[name])

    prefix = f"llm-backend-e2e-eval-{marker}"
    env = llm_backend_env(
        llm_server.url,
        prefix,
        LABEL_STUDIO_URL=label_studio.url,
        LABEL_STUDIO_API_KEY=TOKEN,
        DEFAULT_PROMPT=PROMPT,
        USE_INTERNAL_PROMPT_TEMPLATE="0",
        BATCH_CHUNK_SIZE="4",
        LLM_CONCURRENCY="4",
        OUTPUT_MODE="text",  # the fake model answers with a label, in prose
    )
    worker = BackendProcess(
        ["worker", "--concurrency", "2", "-n", f"eval-{marker}@%h"], env, e2e_dir / "eval-worker.log"
    )
    try:
        worker.start().wait_for_log(" ready.")
        yield {"project": project, "ids": ids, "marker": marker, "env": env, "versions": versions, "ls": label_studio}
    finally:
        worker.stop()
        client = redis.Redis.from_url(real_redis_url())
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)


def llm_backend(loop, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    command = [LLM_BACKEND, *args]
    return subprocess.run(command, env=loop["env"], capture_output=True, text=True, timeout=300, input=input)


def evaluate(loop, *args: str) -> dict:
    result = llm_backend(loop, "eval", "--project", str(loop["project"].id), "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_eval_scores_a_version_against_ground_truth_marks_and_skips(loop):
    ids = loop["ids"]

    run = evaluate(loop, "--version", loop["versions"]["v1"])

    [v1] = run["scores"]
    assert v1["coverage"] == {"tasks": 12, "scored": 6, "without_ground_truth": 5, "failed": 0, "without_prediction": 1}
    sentiment = v1["controls"]["sentiment"]
    assert sentiment["metrics"]["accuracy"] == pytest.approx(4 / 6)
    assert sentiment["metrics"]["macro_f1"] == pytest.approx(2 / 3)
    per_label = sentiment["per_label"]["match"]
    assert [per_label[label]["f1"] for label in ("Positive", "Negative", "Neutral")] == [0.5, 0.5, 1.0]
    assert sentiment["disagreements"] == [ids[2], ids[4]]
    # the predictions were made without a score: each disagreement keeps both answers, nothing is calibrated
    assert sentiment["disagreement_details"][0] == {
        "task_id": ids[2],
        "expected": "Negative",
        "predicted": "Positive",
        "score": None,
    }
    assert (sentiment["calibration"]["items"], sentiment["calibration"]["unscored"]) == (0, 6)
    assert run["excerpts"][str(ids[4])].startswith(f"{loop['marker']} review 4: a positive review, with words")
    assert run["skipped_controls"] == {"prompt": "it holds the prompt", "response": "no ground truth answers it"}
    assert run["title"] == loop["project"].title


def test_eval_compare_reports_the_change_on_the_same_tasks(loop):
    v1, v2 = loop["versions"]["v1"], loop["versions"]["v2"]

    run = evaluate(loop, "--compare", v1, v2)

    deltas = {(d["control"], d["metric"]): d for d in run["comparison"]["deltas"]}
    assert run["comparison"]["same_tasks"] is True
    assert deltas["sentiment", "accuracy"]["before"] == pytest.approx(4 / 6)
    assert deltas["sentiment", "accuracy"]["after"] == pytest.approx(5 / 6)
    assert deltas["sentiment", "accuracy"]["delta"] == pytest.approx(1 / 6)
    assert run["scores"][1]["controls"]["sentiment"]["disagreements"] == [loop["ids"][3]]
    text = llm_backend(loop, "eval", "--project", str(loop["project"].id), "--compare", v1, v2).stdout
    assert re.search(r"sentiment +accuracy +0\.667 +0\.833 +\+0\.167", text)
    assert f"{loop['ls'].url}/projects/{loop['project'].id}/data?task={loop['ids'][2]}" in text


def test_eval_predict_runs_the_prompt_on_the_annotated_tasks_then_scores_it(loop, fake_llm, tmp_path):
    marker, ids = loop["marker"], loop["ids"]
    fake_llm.reply = lambda messages, index: answer(messages, marker, wrong={5: "Neutral"})
    html = tmp_path / "report.html"

    result = llm_backend(loop, "eval", "--project", str(loop["project"].id), "--predict", "--html", str(html))

    assert result.returncode == 0, result.stderr
    assert re.search(r"predicting 7 tasks with version \S+: job [0-9a-f]{32}", result.stderr)
    assert "tasks 12: scored 7, without ground truth 5, without a prediction 0, prediction failed 0" in result.stdout
    assert "accuracy 0.857" in result.stdout
    assert f"disagreements: 1 task; first 1:\n      task {ids[5]}" in result.stdout
    calls = [call for call in fake_llm.live_completions if marker in str(call.body["messages"])]
    assert sorted(position_in(call.body["messages"], marker) for call in calls) == [1, 2, 3, 4, 5, 7, 8]
    page = html.read_text()
    assert page.count("<svg") == 2  # the confusion matrix and the reliability chart of the predicted version
    link = task_url(loop["ls"].url, loop["project"].id, ids[5])
    assert re.search(rf'<a href="{re.escape(link)}">task {ids[5]}</a></td><td>{marker} review 5: a negative', page)
    assert re.search(r"</td><td>Negative</td><td>Neutral</td><td>[01]\.\d{3}</td></tr>", page)
    again = evaluate(loop, "--predict")  # everything is predicted now: scored at once, no call
    assert again["scores"][0]["controls"]["sentiment"]["metrics"]["accuracy"] == pytest.approx(6 / 7)
    calibration = again["scores"][0]["controls"]["sentiment"]["calibration"]
    assert (calibration["items"], calibration["unscored"]) == (7, 0)  # the backend scores every prediction
    [detail] = again["scores"][0]["controls"]["sentiment"]["disagreement_details"]
    assert (detail["expected"], detail["predicted"]) == ("Negative", "Neutral") and 0 <= detail["score"] <= 1
    assert len([call for call in fake_llm.live_completions if marker in str(call.body["messages"])]) == 7


def test_estimate_matches_the_batch_that_follows(loop, fake_llm):
    """Calibrated by the answers --predict left in the LLM cache, the estimate's tasks and tokens are within 10 %
    of what the batch reports."""
    marker = loop["marker"]
    fake_llm.reply = lambda messages, index: answer(messages, marker, wrong={})
    project = str(loop["project"].id)

    estimated = llm_backend(loop, "estimate", "--project", project, "--json")
    assert estimated.returncode == 0, estimated.stderr
    estimate = json.loads(estimated.stdout)
    batch = llm_backend(loop, "batch", "--project", project, "--wait")

    assert batch.returncode == 0, batch.stderr
    assert estimate["calibration_requests"] >= 7 and estimate["workers_source"] == "live"
    total = int(re.search(r"job [0-9a-f]{32}: (\d+) of 12 tasks", batch.stdout).group(1))
    tokens_in, tokens_out = map(int, re.search(r"tokens in (\d+), out (\d+)", batch.stdout).groups())
    # 6 and 9 to 12: a skipped task stays unlabeled (Label Studio requeues it for others by default)
    assert estimate["tasks"] == total == 5
    assert estimate["run"]["requests"] == total
    assert estimate["run"]["input_tokens"] == pytest.approx(tokens_in, rel=0.1)
    assert estimate["run"]["output_tokens"] == pytest.approx(tokens_out, rel=0.1)
    assert f"tasks to predict: {total} of 12" in batch.stdout  # the same estimate, printed before the job starts


def test_a_disagreement_link_opens_that_task_in_the_data_manager(loop, page):
    """The link form the reports print: Label Studio's Data Manager opens the task's labeling pane."""
    from tests.e2e.test_browser import log_in, response_to

    base, ids = loop["ls"].url, loop["ids"]
    log_in(page, base)
    with page.expect_response(response_to("GET", f"/api/tasks/{ids[4]}?")) as loaded:
        page.goto(task_url(base, loop["project"].id, ids[4]))

    assert loaded.value.ok and loaded.value.json()["id"] == ids[4]
    expect(page.locator('input[type=checkbox][name="Positive"]')).to_be_checked()  # its labeling pane, annotated
    assert f"/projects/{loop['project'].id}/data?task={ids[4]}" in page.url  # Label Studio adds its view: &tab=1


def position_in(messages: list[dict], marker: str) -> int:
    return int(re.search(rf"{marker} review (\d+):", str(messages)).group(1))


def answer(messages: list[dict], marker: str, wrong: dict[int, str]) -> str:
    """The fake model's answer: the mood the review names, except where told to be wrong."""
    position = position_in(messages, marker)
    if position in wrong:
        return wrong[position]
    return re.search(r"review \d+: a (\w+) review", str(messages)).group(1).capitalize()


TWO_CONTROLS = """
<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text" editable="true" rows="2"/>
  <Choices name="sentiment" toName="text"><Choice value="Positive"/><Choice value="Negative"/></Choices>
  <Choices name="topic" toName="text"><Choice value="Sports"/><Choice value="Politics"/></Choices>
</View>
"""


def test_each_control_is_calibrated_by_its_own_region_scores(loop, ls, fake_llm):
    """Two controls choose labels, so Label Studio stores each region with its own control's score and ``eval``
    calibrates each control by it.  The model sends no logprobs here: a label written exactly scores 1.0, "pol"
    (a prefix of Politics) 0.7, and the prediction the mean, 0.85.

        task  ground truth          the model's answer   sentiment  topic
        1     Positive, Sports      Positive / Sports    right 1.0  right 1.0
        2     Negative, Politics    Negative / pol       right 1.0  right 0.7
        3     Negative, Sports      Positive / Sports    wrong 1.0  right 1.0
    """
    marker = uuid.uuid4().hex[:10]
    truth = {1: ("Positive", "Sports"), 2: ("Negative", "Politics"), 3: ("Negative", "Sports")}
    said = {1: "Positive\nSports", 2: "Negative\npol", 3: "Positive\nSports"}
    project = ls.projects.create(title=f"two controls {marker}", label_config=TWO_CONTROLS)
    ls.projects.import_tasks(id=project.id, request=[{"text": f"{marker} news {i}: words"} for i in truth])
    ids = {
        position: task_id for position, task_id in enumerate(sorted(t.id for t in ls.tasks.list(project=project.id)), 1)
    }
    for position, (mood, topic) in truth.items():
        regions = choice(mood) + [{**choice(topic)[0], "from_name": "topic"}]
        ls.annotations.create(id=ids[position], result=regions)
    fake_llm.refuse = {"logprobs"}
    fake_llm.reply = lambda messages, index: said[int(re.search(rf"{marker} news (\d+):", str(messages)).group(1))]

    result = llm_backend(loop, "eval", "--project", str(project.id), "--predict", "--json")

    assert result.returncode == 0, result.stderr
    controls = json.loads(result.stdout)["scores"][0]["controls"]
    filled = {
        name: [
            (bucket["low"], bucket["items"], bucket["accuracy"])
            for bucket in score["calibration"]["buckets"]
            if bucket["items"]
        ]
        for name, score in controls.items()
    }
    assert filled == {"sentiment": [(0.9, 3, pytest.approx(2 / 3))], "topic": [(0.7, 1, 1.0), (0.9, 2, 1.0)]}
    assert controls["sentiment"]["disagreement_details"][0] | {"task_id": None} == {
        "task_id": None,
        "expected": "Negative",
        "predicted": "Positive",
        "score": 1.0,
    }
    [stored] = [p.dict() for p in ls.predictions.list(project=project.id) if p.task == ids[2]]
    assert stored["score"] == 0.85
    assert {region["from_name"]: region.get("score") for region in stored["result"]} == {
        "sentiment": 1.0,
        "topic": 0.7,
        "prompt": None,
    }
