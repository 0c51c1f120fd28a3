"""Few-shot examples against a real Label Studio 1.23.2: the pool is its annotations, read by ``eval``'s rule.

A project of 12 notes on four topics (``tests.fakes.topics``); notes 1-8 annotated with their topic, note 1
twice (the later annotation, which is the ground truth, says its real topic), 9-12 not annotated.  A worker
process and the commands run with FEW_SHOT_EXAMPLES=3 and FEW_SHOT_STRATEGY=similar; the fake model answers
only from the examples it is given (``answer_from_examples``).
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest

from tests.conftest import delete_prefix
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
        yield {"project": project.id, "ids": ids, "marker": marker, "env": env}
    finally:
        worker.stop()
        delete_prefix(prefix)


def llm_backend(setup: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    command = [LLM_BACKEND, *args, "--project", str(setup["project"])]
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


def test_eval_predict_shows_each_annotated_note_its_nearest_ground_truth_never_its_own(notes_project, fake_llm):
    fake_llm.reply = answer_from_examples
    truth = {f"{note.text} [{notes_project['marker']}]": note.topic for note in NOTES[:8]}

    result = llm_backend(notes_project, "eval", "--predict", "--json")

    asked = calls_of(fake_llm, notes_project["marker"])
    assert sorted(asked) == list(ANNOTATED)
    right = 0
    for position, messages in asked.items():
        shown = examples_in(messages[-1]["content"])
        assert len(shown) == 3
        own = f"{NOTES[position - 1].text} [{notes_project['marker']}]"
        assert all(given in truth and given != own for given, _answer in shown)
        # each example carries its ground truth as Label Studio holds it: for note 1, the later annotation
        assert all(json.loads(answer) == {"topic": truth[given]} for given, answer in shown)
        right += answer_from_examples(messages) == {"topic": NOTES[position - 1].topic}
    run = json.loads(result.stdout)
    accuracy = run["scores"][0]["controls"]["topic"]["metrics"]["accuracy"]
    assert run["scores"][0]["coverage"]["scored"] == 8 and accuracy == pytest.approx(right / 8)


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
