"""Few-shot examples against a real Label Studio 1.23.2: the pool is its annotations, read by ``eval``'s rule.

A project of 12 notes on four topics (``tests.fakes.topics``); notes 1-8 annotated with their topic, note 1
twice (the later annotation, which is the ground truth, says its real topic), 9-12 not annotated.  A worker
process and the commands run with FEW_SHOT_EXAMPLES=3 and FEW_SHOT_STRATEGY=similar; ``fixed`` and ``diverse``
are chosen per project instead, in the extra params of the project's connection to the suite's backend (which
Label Studio sends it in ``/setup``), and scored through its API.  The fake model answers only from the examples
it is given (``answer_from_examples``).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from shared.domain.prompts.few_shot import EXAMPLES_HEADING
from tests.conftest import delete_prefix
from tests.e2e.conftest import change_connection, connect
from tests.e2e.label_studio_server import TOKEN
from tests.fakes.topics import CONFIG, PROMPT, answer_from_examples, choice, notes
from tests.integration.processes import LLM_BACKEND, BackendProcess, llm_backend_env
from tests.integration.test_few_shot import examples_in

pytestmark = pytest.mark.timeout(900)
NOTES = notes(12, seed=7)
ANNOTATED = range(1, 9)


@pytest.fixture(scope="module")
def notes_project(ls, label_studio, llm_server, e2e_dir):
    marker = uuid.uuid4().hex[:10]
    project = ls.projects.create(title=f"notes {marker}", label_config=CONFIG)
    ls.projects.import_tasks(id=project.id, request=[{"text": f"{note.text} [{marker}]"} for note in NOTES])
    ids = dict(enumerate(sorted(task.id for task in ls.tasks.list(project=project.id)), 1))
    ls.annotations.create(id=ids[1], result=choice("Finance" if NOTES[0].topic != "Finance" else "Sport"))
    for position in ANNOTATED:
        ls.annotations.create(id=ids[position], result=choice(NOTES[position - 1].topic))
    prefix = f"llm-backend-e2e-fewshot-{marker}"
    env = llm_backend_env(
        llm_server.url,
        prefix,
        LABEL_STUDIO_URL=label_studio.url,
        LABEL_STUDIO_API_KEY=TOKEN,
        DEFAULT_PROMPT=f"{PROMPT} {{text}}",
        USE_INTERNAL_PROMPT_TEMPLATE="0",
        FEW_SHOT_EXAMPLES="3",
        FEW_SHOT_STRATEGY="similar",
        BATCH_CHUNK_SIZE="4",
    )
    worker = BackendProcess(["worker", "--concurrency", "2", "-n", f"fewshot-{marker}@%h"], env, e2e_dir / "fs.log")
    try:
        worker.start().wait_for_log(" ready.")
        yield {"project": project, "ids": ids, "marker": marker, "env": env}
    finally:
        worker.stop()
        delete_prefix(prefix)


def llm_backend(setup: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    command = [LLM_BACKEND, *args, "--project", str(setup["project"].id)]
    result = subprocess.run(command, env=setup["env"] | env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def calls_of(fake_llm, marker: str) -> dict[int, list[dict]]:
    """The messages of each note the model was asked about, by the note's position (its task's text comes last)."""
    found = {}
    for call in fake_llm.live_completions:
        messages = call.body["messages"]
        if marker in str(messages):
            found[int(re.findall(r"Note (\d+):", messages[-1]["content"])[-1]) + 1] = messages
    return found


@pytest.fixture(scope="module")
def per_project(notes_project, ls, backend) -> Callable[[str], str]:
    """Chooses a strategy for the notes project as a team would per project: in the extra params of its connection
    to the backend (Label Studio sends them with ``/setup``, again on each change); gives the model version Label
    Studio got."""
    project = notes_project["project"]
    connections: list[int] = []

    def choose(strategy: str) -> str:
        extra = {
            "default_prompt": f"{PROMPT} {{text}}",
            "use_internal_prompt_template": False,
            "output_mode": "auto",  # the suite backend runs with OUTPUT_MODE=text; these answers are JSON
            "few_shot_examples": 3,
            "few_shot_strategy": strategy,
        }
        if connections:
            return change_connection(ls, project, connections[0], backend, extra_params=extra).model_version
        connection = connect(ls, project, backend, extra_params=extra)
        connections.append(connection.id)
        return connection.model_version

    return choose


def eval_predict_through_the_api(backend: dict, project_id: int) -> dict:
    """``POST /evaluations`` with ``predict``, then the run read again until its job has finished and it is scored."""
    url, auth = backend["url"], backend["auth"]
    response = httpx.post(f"{url}/evaluations", json={"project": project_id, "predict": True}, auth=auth, timeout=60)
    assert response.status_code == 202, response.text
    run = response.json()
    deadline = time.monotonic() + 120
    while run["state"] == "predicting":
        assert time.monotonic() < deadline, f"still predicting after 120 s: {run}"
        time.sleep(0.2)
        run = httpx.get(f"{url}/evaluations/{run['id']}", auth=auth, timeout=60).json()
    assert run["state"] == "done", run
    return run


@pytest.mark.parametrize("strategy", ["similar", "fixed", "diverse"])
def test_eval_predict_shows_each_annotated_note_ground_truth_never_its_own(
    strategy, notes_project, per_project, backend, fake_llm
):
    """Every strategy: three examples a note, each a ground truth as Label Studio holds it, never the note's own.
    ``fixed``: one label-balanced set in the system message, the same for every note but the three it holds, which
    see the other note of their topic in their own slot.  ``similar`` and ``diverse``: per note, in its user
    message; ``diverse`` spreads over the labels (on this corpus three topics each, where ``similar`` shows notes
    2, 3 and 7 a topic twice).  ``similar`` from the environment through ``llm-backend eval``, the others per
    project through ``POST /evaluations``."""
    fake_llm.reply = answer_from_examples
    marker = notes_project["marker"]
    truth = {given(position, marker): NOTES[position - 1].topic for position in ANNOTATED}
    if strategy == "similar":
        run = json.loads(llm_backend(notes_project, "eval", "--predict", "--json").stdout)
    else:
        version = per_project(strategy)
        run = eval_predict_through_the_api(backend, notes_project["project"].id)
        assert run["predicted_version"] == version, "the version Label Studio got from /setup is the one predicted"

    asked = calls_of(fake_llm, marker)
    assert sorted(asked) == list(ANNOTATED)
    fixed = strategy == "fixed"
    right = 0
    for position, messages in asked.items():
        assert len(messages) == 2
        system, user = messages[0]["content"], messages[-1]["content"]
        shown = examples_in(system if fixed else user)
        assert EXAMPLES_HEADING not in (user if fixed else system), "the examples are in one message only"
        assert len(shown) == 3
        assert all(text in truth and text != given(position, marker) for text, _answer in shown)
        # each example carries its ground truth as Label Studio holds it: for note 1, the later annotation
        assert all(json.loads(answer) == {"topic": truth[text]} for text, answer in shown)
        if strategy == "diverse":
            assert len({truth[text] for text, _answer in shown}) == 3, f"note {position} saw a topic twice"
        right += answer_from_examples(messages) == {"topic": NOTES[position - 1].topic}
    if fixed:
        assert_one_set_for_all(asked, marker, truth)
    accuracy = run["scores"][0]["controls"]["topic"]["metrics"]["accuracy"]
    assert run["scores"][0]["coverage"]["scored"] == 8 and accuracy == pytest.approx(right / 8)


def given(position: int, marker: str) -> str:
    """A note's text as the project holds it, and as an example shows it."""
    return f"{NOTES[position - 1].text} [{marker}]"


def assert_one_set_for_all(asked: dict[int, list[dict]], marker: str, truth: dict[str, str]) -> None:
    """``fixed``: one label-balanced set, its system message the same for every note but the three notes it holds;
    each of those sees it with the other note of its topic in its own slot, the other slots as everyone sees them."""
    common, seen = Counter(messages[0]["content"] for messages in asked.values()).most_common(1)[0]
    fixed_set = [text for text, _answer in examples_in(common)]
    assert len({truth[text] for text in fixed_set}) == 3, "label-balanced"
    holders = [position for position in ANNOTATED if given(position, marker) in fixed_set]
    assert len(holders) == 3 and seen == 5
    for position, messages in asked.items():
        if position not in holders:
            assert messages[0]["content"] == common
            continue
        topic = NOTES[position - 1].topic
        [mate] = [p for p in ANNOTATED if p != position and NOTES[p - 1].topic == topic]
        expected = [given(mate, marker) if text == given(position, marker) else text for text in fixed_set]
        shown = [text for text, _answer in examples_in(messages[0]["content"])]
        assert shown == expected, f"note {position}: only its own slot differs"


def test_batch_sends_the_examples_and_estimate_counts_them(notes_project, fake_llm, ls):
    fake_llm.reply = answer_from_examples
    without = json.loads(llm_backend(notes_project, "estimate", "--json", FEW_SHOT_EXAMPLES="0").stdout)
    with_examples = json.loads(llm_backend(notes_project, "estimate", "--json").stdout)
    assert with_examples["input_tokens_per_request"] > without["input_tokens_per_request"] + 3 * 20
    assert with_examples["model_version"] != without["model_version"]

    result = llm_backend(notes_project, "batch", "--wait", "--yes")

    asked = calls_of(fake_llm, notes_project["marker"])
    assert sorted(asked) == [9, 10, 11, 12]
    assert all(len(examples_in(messages[-1]["content"])) == 3 for messages in asked.values())
    version = re.search(r"model version ([\w.-]+)", result.stdout).group(1)
    assert version == with_examples["model_version"]
    ids = notes_project["ids"]
    for position in (9, 10, 11, 12):
        [prediction] = ls.predictions.list(task=ids[position])
        assert prediction.model_version == version
