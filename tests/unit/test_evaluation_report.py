"""Evaluation runs as records, text, HTML and SVG, and Data Manager links: worked out from a six-task example.

Ground truth vs prediction for ``sentiment``: task 1 Positive/Positive, 2 Positive/Negative, 3 Negative/Negative,
4 Neutral/Positive; task 5 has no ground truth and task 6's prediction failed.  So 4 items, accuracy 0.5,
disagreements 2 and 4; Positive tp 1 fp 1 fn 1, Negative tp 1 fp 1, Neutral fn 1.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import defusedxml.ElementTree as SafeXML
import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.domain.confusion_svg import confusion_svg
from shared.domain.data_manager import project_url, task_url
from shared.domain.evaluation_html import render_html
from shared.domain.evaluation_run import EvaluationRun, RunState, VersionScore
from shared.domain.evaluation_text import render_text, table
from shared.domain.scorers import Confusion
from shared.domain.scoring import TaskToScore, score

CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text"/>
  <Choices name="sentiment" toName="text"><Choice value="Positive"/><Choice value="Negative"/>
    <Choice value="Neutral"/></Choices>
</View>
"""
INTERFACE = LabelInterface(CONFIG)
LS = "http://ls.example:8080/"


def choice(label: str) -> list[dict]:
    return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def evaluation(predicted: dict[int, str]):
    truth = {1: "Positive", 2: "Positive", 3: "Negative", 4: "Neutral"}
    tasks = [TaskToScore(i, choice(truth[i]), choice(predicted[i])) for i in (1, 2, 3, 4)]
    tasks += [TaskToScore(5, None, choice("Positive")), TaskToScore(6, choice("Negative"), None, failed=True)]
    return score(INTERFACE, tasks, ["sentiment"])


BEFORE = {1: "Positive", 2: "Negative", 3: "Negative", 4: "Positive"}
AFTER = {1: "Positive", 2: "Positive", 3: "Negative", 4: "Positive"}


def run(*versions: tuple[str, dict[int, str]], **overrides) -> EvaluationRun:
    fields = {
        "id": "run1",
        "project": "12",
        "created_at": 1_700_000_000.0,
        "versions": [name for name, _ in versions],
        "state": RunState.DONE,
        "title": "Reviews <beta>",
        "label_studio_url": LS,
        "scores": [VersionScore.of(name, evaluation(answers)) for name, answers in versions],
        "skipped_controls": {"prompt": "it holds the prompt"},
    }
    return EvaluationRun(**(fields | overrides))


def test_data_manager_links_open_one_task_in_the_project() -> None:
    assert project_url(LS, 12) == "http://ls.example:8080/projects/12/data"
    assert task_url(LS, 12, 345) == "http://ls.example:8080/projects/12/data?task=345"


def test_version_score_keeps_the_first_disagreements_and_counts_them_all() -> None:
    kept = VersionScore.of("v1", evaluation(BEFORE), keep=1)

    assert kept.evaluation.controls["sentiment"].disagreements == [2]
    assert kept.disagreements == {"sentiment": 2}
    assert kept.headline() == {"sentiment": {"accuracy": 0.5}}


def test_a_run_survives_json_and_compares_its_two_versions() -> None:
    original = run(("v1", BEFORE), ("v2", AFTER), job_id="job9", predicted_version="v2")

    restored = EvaluationRun.from_dict(json.loads(json.dumps(original.as_dict())))

    assert restored.as_dict() == original.as_dict()
    deltas = {(d["control"], d["metric"]): d for d in original.as_dict()["comparison"]["deltas"]}
    assert deltas["sentiment", "accuracy"]["before"] == 0.5
    assert deltas["sentiment", "accuracy"]["after"] == 0.75
    assert deltas["sentiment", "accuracy"]["delta"] == pytest.approx(0.25)
    assert original.as_dict()["comparison"]["same_tasks"] is True
    assert run(("v1", BEFORE)).comparison is None
    summary = original.summary()
    assert summary["scores"]["v2"]["controls"] == {"sentiment": {"accuracy": 0.75}}
    assert summary["scores"]["v1"]["coverage"] == {
        "tasks": 6,
        "scored": 4,
        "without_ground_truth": 1,
        "failed": 1,
        "without_prediction": 0,
    }


def test_text_report_shows_coverage_metrics_labels_confusion_and_linked_disagreements() -> None:
    text = render_text(run(("v1", BEFORE)), disagreements=5)

    assert 'evaluation run1 of project 12 "Reviews <beta>": done' in text
    assert "tasks 6: scored 4, without ground truth 1, without a prediction 0, prediction failed 1" in text
    assert "accuracy 0.500  macro_f1 0.389  micro_f1 0.500" in text  # macro: (0.5 + 0.667 + 0) / 3
    assert re.search(r"Positive\s+0\.500\s+0\.500\s+0\.500\s+1\s+1\s+1", text)
    assert re.search(r"Neutral\s+-\s+0\.000\s+0\.000\s+0\s+0\s+1", text)  # precision undefined: never predicted
    assert re.search(r"Positive\s+1\s+1\s+0\s+0", text)  # confusion row: Positive as Positive, Negative
    assert "disagreements: 2 tasks; first 2:" in text
    assert "task 2  http://ls.example:8080/projects/12/data?task=2" in text
    assert "task 4  http://ls.example:8080/projects/12/data?task=4" in text
    assert "not scored: prompt (it holds the prompt)" in text


def test_text_report_of_a_comparison_lists_the_changes() -> None:
    text = render_text(run(("v1", BEFORE), ("v2", AFTER)))

    assert "comparison: v1 (before) -> v2 (after), on the same tasks" in text
    assert re.search(r"sentiment\s+accuracy\s+0\.500\s+0\.750\s+\+0\.250", text)
    assert re.search(r"\(coverage\)\s+scored\s+4\s+4\s+\+0\n", text)
    assert "(coverage)  tasks" not in text  # only the scored count of the coverage figures


def test_text_report_says_when_no_task_holds_the_version() -> None:
    empty = score(INTERFACE, [TaskToScore(1, choice("Positive"), None)], ["sentiment"])
    text = render_text(run(("v1", BEFORE), scores=[VersionScore.of("v1", empty)]))

    assert "no task holds a prediction of this version" in text


def test_table_pads_columns() -> None:
    assert table([["a", "bb"], ["ccc", "d"]], indent=1) == [" a    bb", " ccc   d"]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.svgs = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "a":
            self.links.append(dict(attrs)["href"])
        self.svgs += tag == "svg"

    def handle_data(self, data) -> None:
        self.text.append(data)


def test_html_report_is_escaped_and_has_the_matrix_as_a_picture_and_task_links() -> None:
    page = render_html(run(("v1", BEFORE), ("v2", AFTER)))
    parsed = _Collector()
    parsed.feed(page)

    assert page.startswith("<!DOCTYPE html>")
    assert "Reviews &lt;beta&gt;" in page and "Reviews <beta>" not in page
    assert parsed.svgs == 2  # one confusion matrix per version
    assert "http://ls.example:8080/projects/12/data?task=2" in parsed.links
    assert "http://ls.example:8080/projects/12/data" in parsed.links
    assert '<span class="better">+0.250</span>' in page
    assert "tasks 6: scored 4" in "".join(parsed.text)


def test_confusion_svg_draws_one_cell_per_pair_shaded_by_its_share_of_the_row() -> None:
    confusion = Confusion(["A<&>", "B", "(none)"], [[3, 1, 0], [0, 2, 0], [0, 0, 0]])

    svg = confusion_svg(confusion, "sentiment")
    root = SafeXML.fromstring(svg)

    namespace = "{http://www.w3.org/2000/svg}"
    cells = root.findall(f"{namespace}g")
    assert len(cells) == 9
    first = cells[0]
    assert first.find(f"{namespace}title").text == "ground truth A<&>, predicted A<&>: 3 tasks (75% of the row)"
    assert first.find(f"{namespace}text").text == "3"
    fills = [cell.find(f"{namespace}rect").get("fill") for cell in cells]
    assert fills[0] == "#50a06e"  # green at 75%: 255 - (255 - 22) × 0.75 = 80 = 0x50, …
    assert fills[1] == "#f1c9c9"  # red at 25%
    assert fills[4] == "#16803d"  # B row: all correct, full green
    assert fills[2] == "#ffffff" and fills[8] == "#ffffff"  # empty cells stay white
    assert "A&lt;&amp;&gt;" in svg
