"""The annotator's flow in a real browser: Chromium, driven by Playwright, against a real Label Studio 1.23.2.

The `page` fixture (tests/e2e/conftest.py) is Debian's chromium, which `make tools` installs.  Every wait here is
on a DOM condition or an HTTP response.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Locator, Page, Response, expect

from shared.adapters.jobs import JobState
from shared.domain.answers.html_spans import PageText
from tests.e2e.label_studio_server import PASSWORD, USER
from tests.e2e.test_label_studio import (
    calls_for,
    connect,
    new_project,
    predictions,
    retrieve_predictions,
    task_ids,
    wait_for_predictions,
)
from tests.e2e.test_structured import HTML_ANSWER, HTML_NER, HTML_PAGE, structured_project

pytestmark = pytest.mark.timeout(900)  # the first e2e test of a session may install and migrate Label Studio

PROMPT = "Is the praise in this text meant seriously?"
ANSWER = "Not Sarcastic\nThe praise reads as sincere."  # names a choice of tests/configs/sarcasm.xml


def log_in(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/user/login/")
    page.locator("#email").fill(USER)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/user/login" not in url)


def response_to(method: str, path: str) -> Callable[[Response], bool]:
    return lambda response: response.request.method == method and path in response.url


def open_task(
    page: Page, base_url: str, project_id: int, task_id: int, text: str, shown: str = "textarea[name=prompt]"
) -> None:
    """Click the task's row in the Data Manager: its labeling screen opens beside the list (``shown`` appears)."""
    page.goto(f"{base_url}/projects/{project_id}/data")
    with page.expect_response(response_to("GET", f"/api/tasks/{task_id}?")) as loaded:
        page.get_by_test_id("table-row").filter(has_text=text).click()
    assert loaded.value.ok, loaded.value.text()
    expect(page.locator(shown)).to_be_visible()


def ask_the_llm(page: Page, prompt: str) -> dict:
    """Auto-Annotation on, the prompt typed, Shift+Enter: Label Studio's interactive call to our backend."""
    toggle = page.get_by_test_id("bottombar-auto-annotation-toggle")
    page.get_by_text("Auto-Annotation", exact=True).click()
    expect(toggle).to_be_checked()
    box = page.locator("textarea[name=prompt]")
    box.fill(prompt)
    with page.expect_response(response_to("POST", "/interactive-annotating")) as answered:
        box.press("Shift+Enter")
    assert answered.value.ok, answered.value.text()
    return answered.value.json()


def choice(page: Page, label: str) -> Locator:
    return page.locator(f'input[type=checkbox][name="{label}"]')


def text_region(page: Page, from_name: str) -> Locator:
    """The entries a TextArea shows under its input (what was typed, or what the LLM answered)."""
    return page.locator(f'[data-testid=htx-textbox-content][name^="{from_name}:"]')


def submit(page: Page, task_id: int) -> tuple[dict, dict]:
    """The annotation Label Studio stored, and the task as the labeling screen reloads it right after."""
    with (
        page.expect_response(response_to("POST", f"/api/tasks/{task_id}/annotations")) as created,
        page.expect_response(response_to("GET", f"/api/tasks/{task_id}?")) as reloaded,
    ):
        page.get_by_role("button", name="Submit").click()
    assert created.value.status == 201, created.value.text()
    assert reloaded.value.ok, reloaded.value.text()
    return created.value.json(), reloaded.value.json()


def retrieve_predictions_for_all(page: Page, base_url: str, project_id: int, count: int) -> None:
    """Data Manager → select all → Actions → Retrieve Predictions → OK in the dialog."""
    page.goto(f"{base_url}/projects/{project_id}/data")
    page.get_by_label("Select all rows").check()
    actions = page.get_by_role("button", name="Tasks Actions")
    expect(actions).to_have_text(f"{count} Tasks")
    actions.click()
    page.get_by_text("Retrieve Predictions", exact=True).click()
    with page.expect_response(response_to("POST", "/api/dm/actions?id=retrieve_tasks_predictions")) as retrieved:
        page.get_by_role("button", name="Confirm").click()  # the dialog's OK
    assert retrieved.value.ok, retrieved.value.text()


def finished_job(backend: dict, project_id: int, timeout: float = 120) -> dict:
    """The project's one batch job once it has finished, from our backend's /jobs."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{backend['url']}/jobs", params={"project": project_id}, auth=backend["auth"], timeout=10)
        jobs = response.json()["jobs"]
        if jobs and all(JobState(job["state"]).finished for job in jobs):
            assert len(jobs) == 1, jobs
            return jobs[0]
        assert time.monotonic() < deadline, f"no finished job after {timeout} s: {jobs}"
        time.sleep(0.2)


def regions(result: list[dict]) -> dict[str, dict]:
    return {region["from_name"]: region["value"] for region in result}


def prompted_task(page, ls, label_studio, backend, fake_llm) -> tuple:
    """A sarcasm project of 3 tasks; the annotator opens the first, asks the LLM, and sees its answer."""
    fake_llm.reply = lambda messages, index: ANSWER
    project, marker = new_project(ls, "sarcasm", 3)
    connected = connect(ls, project, backend)
    first = task_ids(ls, project)[0]

    log_in(page, label_studio.url)
    open_task(page, label_studio.url, project.id, first, f"{marker} task 0")
    assert predictions(ls, project) == [], "opening a task while there is no prompt stores no prediction"
    answer = ask_the_llm(page, PROMPT)

    assert "errors" not in answer, answer
    expect(choice(page, "Not Sarcastic")).to_be_checked()
    expect(choice(page, "Sarcastic")).not_to_be_checked()
    expect(text_region(page, "response")).to_have_text(ANSWER, use_inner_text=True)  # its lines are <br>-separated
    [call] = calls_for(fake_llm, marker)
    assert call.body["messages"][0] == {"role": "system", "content": f"Task Directive: {PROMPT}"}
    return project, marker, connected, first


def test_annotator_asks_the_llm_submits_and_retrieves_predictions(page, ls, label_studio, backend, fake_llm):
    project, marker, connected, first = prompted_task(page, ls, label_studio, backend, fake_llm)

    annotation, reloaded = submit(page, first)

    assert regions(annotation["result"]) == {
        "prompt": {"text": [PROMPT]},
        "response": {"text": [ANSWER]},
        "sentiment": {"choices": ["Not Sarcastic"]},
    }
    # The submission's webhook gave our backend the prompt (a new model version); the labeling screen then reloads
    # the task, and Label Studio, finding it without predictions, asks /predict for it and stores the answer.
    version = ls.ml.get(id=connected.id).model_version
    assert version != connected.model_version, "the annotator's prompt made a new model version"
    assert [p["model_version"] for p in reloaded["predictions"]] == [version]

    retrieve_predictions_for_all(page, label_studio.url, project.id, 3)
    job = finished_job(backend, project.id)

    assert (job["state"], job["total"], job["pushed"]) == ("done", 2, 2), "the first task had its prediction already"
    assert job["model_version"] == version
    found = predictions(ls, project)
    assert sorted(p["task"] for p in found) == task_ids(ls, project), "one prediction per task"
    assert {p["model_version"] for p in found} == {version}
    assert all(regions(p["result"])["sentiment"] == {"choices": ["Not Sarcastic"]} for p in found)
    for other in (f"{marker} task 1", f"{marker} task 2"):
        [call] = calls_for(fake_llm, other)
        assert call.body["messages"][0]["content"].endswith(f"Task Directive: {PROMPT}"), "the annotator's prompt"


def test_reloading_the_submitted_task_costs_no_llm_call(page, ls, label_studio, backend, fake_llm):
    _, marker, _, first = prompted_task(page, ls, label_studio, backend, fake_llm)

    # With Auto-Annotation on, the reloaded labeling screen sends interactive calls of its own, without regions.
    with page.expect_response(response_to("POST", "/interactive-annotating")) as unasked:
        submit(page, first)

    assert unasked.value.request.post_data_json["context"] == {"result": []}
    assert unasked.value.json()["data"]["result"] == [], "nothing asked, nothing to suggest"
    assert len(calls_for(fake_llm, marker)) == 2, "the annotator's call and the reloaded task's /predict"


def test_a_task_opened_while_its_job_runs_gets_one_prediction_and_one_llm_call(
    page, ls, label_studio, backend, fake_llm
):
    """The race of issue #12: Retrieve Predictions with a slow LLM, then the annotator opens a task of the job.

    Label Studio stores the answer to the task's own one-task /predict; the worker must neither push a second
    prediction of the same version nor ask the LLM again."""
    fake_llm.reply = lambda messages, index: ANSWER
    fake_llm.delay = 4.0
    project, marker = new_project(ls, "sarcasm", 4)
    extra = {"default_prompt": "Is this sarcastic? {text} Labels: {labels}", "use_internal_prompt_template": False}
    version = connect(ls, project, backend, extra_params=extra).model_version
    log_in(page, label_studio.url)
    page.goto(f"{label_studio.url}/projects/{project.id}/data")
    expect(page.get_by_test_id("table-row")).to_have_count(4)

    retrieve_predictions(ls, project)  # the job starts; its LLM calls take 4 s each
    opened = task_ids(ls, project)[2]
    with page.expect_response(response_to("GET", f"/api/tasks/{opened}?")) as loaded:
        page.get_by_test_id("table-row").filter(has_text=f"{marker} task 2").click()
    assert loaded.value.ok, loaded.value.text()
    shown = loaded.value.json()["predictions"]
    assert [p["model_version"] for p in shown] == [version], "the opened task shows the job's answer at once"

    job = finished_job(backend, project.id)
    assert (job["state"], job["done"], job["pushed"]) == ("done", 4, 4)
    found = predictions(ls, project)
    assert sorted(p["task"] for p in found) == task_ids(ls, project), "exactly one prediction per task"
    assert {p["model_version"] for p in found} == {version}
    for index in range(4):
        assert len(calls_for(fake_llm, f"{marker} task {index}")) == 1, f"one LLM call for task {index}"


PAGE_FRAME = "iframe.lsf-htx-richtext"  # where Label Studio renders a HyperText page


def highlighted(page: Page, count: int) -> list[str]:
    """The texts of the page's highlighted spans, once there are ``count`` (the page is a same-origin iframe)."""
    script = f"""count => [...(document.querySelector("{PAGE_FRAME}")?.contentDocument
        ?.querySelectorAll(".htx-highlight") ?? [])].map(span => span.textContent)"""
    page.wait_for_function(f"count => ({script})(count).length >= count", arg=count)
    texts: list[str] = page.evaluate(script, count)
    return texts


def test_the_editor_shows_hypertext_predictions_and_saves_them_as_predicted(page, ls, label_studio, backend, fake_llm):
    """The HyperText prediction opens in Label Studio's editor highlighting the predicted words; submitted, the
    editor writes our regions back unchanged (it recomputes XPaths and offsets from the global offsets), and a
    span the annotator selects by hand is saved as ``PageText`` computes it."""
    marker = uuid.uuid4().hex[:10]
    html = HTML_PAGE.format(marker=marker, index=0)
    fake_llm.reply = lambda messages, index: HTML_ANSWER
    project, _version = structured_project(ls, backend, HTML_NER, [html], "Find people and places: {text}")
    retrieve_predictions(ls, project)
    [prediction] = wait_for_predictions(ls, project, 1, backend)
    [task_id] = task_ids(ls, project)

    log_in(page, label_studio.url)
    open_task(page, label_studio.url, project.id, task_id, marker, shown=PAGE_FRAME)
    assert highlighted(page, 7) == [
        "John",
        "Acme",
        " Inc.",
        "New\xa0York",
        "Mary",
        "John",
        "Paris",
    ]  # Acme Inc.: 2 nodes

    # By hand: the LOC label, then "lives" selected in the page (a Range, as a mouse drag leaves it) and let go.
    page.locator(".lsf-label__text").filter(has_text=re.compile(r"^LOC$")).first.click()
    page.evaluate(
        """frame => {
            const paragraph = document.querySelector(frame).contentDocument.querySelector("p");
            const words = paragraph.firstChild;  // "He lives in " (the rest is highlighted)
            const range = paragraph.ownerDocument.createRange();
            range.setStart(words, 3);
            range.setEnd(words, 8);
            const selection = paragraph.ownerDocument.getSelection();
            selection.removeAllRanges();
            selection.addRange(range);
            paragraph.dispatchEvent(new MouseEvent("mouseup", {bubbles: true}));
        }""",
        PAGE_FRAME,
    )
    assert "lives" in highlighted(page, 8)
    annotation, _reloaded = submit(page, task_id)

    saved = [region["value"] for region in annotation["result"] if region["from_name"] == "ner"]
    predicted = [region["value"] for region in prediction["result"] if region["from_name"] == "ner"]
    by_hand = [value for value in saved if value not in predicted]
    assert [value for value in saved if value in predicted] == predicted, "the editor keeps our regions as sent"
    lives = PageText(html).text.index("lives")
    assert by_hand == [{**PageText(html).xpath_range(lives, lives + 5), "text": "lives", "hypertextlabels": ["LOC"]}]
