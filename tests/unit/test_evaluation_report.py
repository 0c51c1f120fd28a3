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

from shared.domain.evaluation.excerpts import EXCERPT_CHARS, task_excerpt
from shared.domain.evaluation.run import EvaluationRun, RunState, VersionScore
from shared.domain.evaluation.scorers import Confusion
from shared.domain.evaluation.scoring import TaskToScore, score
from shared.domain.labeling.spec import parse_labeling_config
from shared.reports.confusion_svg import confusion_svg
from shared.reports.data_manager import project_url, task_url
from shared.reports.evaluation_html import render_html
from shared.reports.evaluation_text import render_text, table

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


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
HOSTILE_CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text"><Choice value="Positive"/>
    <Choice value="&lt;img src=x onerror=alert(2)&gt;"/></Choices>
</View>
"""
HOSTILE_LABEL = "<img src=x onerror=alert(2)>"
SAFE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "p", "a", "code", "small", "strong",
    "em", "span", "div", "section", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "svg", "g", "rect", "text",
    "line",
}  # fmt: skip


def scored_run(versions: dict[str, dict[int, tuple[str, float]]], interface=INTERFACE, **overrides) -> EvaluationRun:
    """A run over tasks 1-4 (ground truth as in the module's example, or as ``truth`` says), each version's answers
    and scores given per task, with the excerpts its tasks would have."""
    truth = overrides.pop("truth", {1: "Positive", 2: "Positive", 3: "Negative", 4: "Neutral"})
    scored = [
        (
            name,
            score(interface, [TaskToScore(i, choice(truth[i]), choice(a), score=s) for i, (a, s) in answers.items()]),
        )
        for name, answers in versions.items()
    ]
    fields = {"id": "run2", "project": "12", "created_at": 1_700_000_000.0, "versions": list(versions)}
    built = EvaluationRun(**(fields | {"state": RunState.DONE, "label_studio_url": LS} | overrides))
    built.keep_scores(scored, overrides.pop("excerpts", {i: f"the text of task {i} " * 20 for i in truth}))
    return built


SCORED = {1: ("Positive", 0.9), 2: ("Negative", 0.8), 3: ("Negative", 0.95), 4: ("Positive", 0.4)}


def test_text_report_lists_each_disagreement_with_both_answers_its_score_and_text() -> None:
    text = render_text(scored_run({"v1": SCORED}))

    assert "task 2  http://ls.example:8080/projects/12/data?task=2\n" in text
    assert "        expected Positive, predicted Negative (score 0.800)  'the text of task 2 the text of task 2" in text
    assert "expected Neutral, predicted Positive (score 0.400)" in text
    excerpt = re.search(r"\(score 0\.400\)  '([^']*)'", text).group(1)
    assert len(excerpt) == 70 and excerpt.endswith("…")


def test_text_report_shows_the_reliability_table_ece_and_review_thresholds() -> None:
    text = render_text(scored_run({"v1": SCORED}))

    # buckets: 0.4 wrong; 0.8 wrong; 0.9 and 0.95 right -> ECE (0.4 + 0.8 + 0.1 + 0.05) / 4
    assert "calibration of the score: ECE 0.338 (4 items with a score)" in text
    assert re.search(r"0\.4-0\.5\s+1\s+0\.400\s+0\.000", text)
    assert re.search(r"0\.9-1\.0\s+2\s+0\.925\s+1\.000", text)
    assert "precision 0.9: score >= 0.900 (100.0% right), covers 50.0% (2 of 4 items)" in text


def test_html_report_lists_disagreements_with_text_answers_score_and_link_and_draws_the_reliability() -> None:
    page = render_html(scored_run({"v1": SCORED}))
    parsed = _Collector()
    parsed.feed(page)

    rows = re.findall(r"<tr><td><a href=\"([^\"]+)\">task (\d+)</a></td><td>([^<]*)</td><td>(\w+)</td><td>(\w+)</td>"
                      r"<td>([\d.]+)</td></tr>", page)  # fmt: skip
    assert [row[1:2] + row[3:] for row in rows] == [
        ("2", "Positive", "Negative", "0.800"),
        ("4", "Neutral", "Positive", "0.400"),
    ]
    assert rows[0][0] == "http://ls.example:8080/projects/12/data?task=2"
    assert rows[0][2] == "the text of task 2 " * 20
    assert parsed.svgs == 2  # the confusion matrix and the reliability chart
    assert "ECE 0.338 over 4 items with a score" in page
    assert "<td>≥ 0.900</td><td>100.0%</td><td>2</td><td>50.0%</td>" in page


def test_reliability_chart_draws_a_bar_per_filled_bucket_as_high_as_its_accuracy() -> None:
    from shared.reports.reliability_svg import PLOT, reliability_svg

    calibration = scored_run({"v1": SCORED}).scores[0].evaluation.controls["sentiment"].calibration
    root = SafeXML.fromstring(reliability_svg(calibration, "sentiment <v1>"))

    namespace = "{http://www.w3.org/2000/svg}"
    bars = root.findall(f"{namespace}g")
    assert [bar.find(f"{namespace}title").text for bar in bars] == [
        "scores 0.4-0.5: 1 item, mean score 0.400, accuracy 0.000",
        "scores 0.8-0.9: 1 item, mean score 0.800, accuracy 0.000",
        "scores 0.9-1.0: 2 items, mean score 0.925, accuracy 1.000",
    ]
    assert float(bars[2].find(f"{namespace}rect").get("height")) == PLOT  # accuracy 1: the full height
    assert float(bars[0].find(f"{namespace}rect").get("height")) == 0
    assert root.get("aria-label") == "sentiment <v1>"


def test_html_comparison_shows_both_versions_side_by_side_and_the_tasks_that_changed() -> None:
    after = SCORED | {1: ("Negative", 0.7), 2: ("Positive", 0.85)}
    page = render_html(scored_run({"v1": SCORED, "v2": after}))

    assert page.count('<div class="versions"><div><h2>Version <code>v1</code>') == 1
    assert "<h2>Tasks that changed</h2>" in page
    assert "<p>1 broken, 1 fixed, 0 answered differently.</p>" in page
    broken = re.search(r'<tr class="broken">(.*?)</tr>', page).group(1)
    assert 'href="http://ls.example:8080/projects/12/data?task=1"' in broken
    assert "<td>Positive</td><td>Positive</td><td>Negative <small>(0.700)</small></td>" in broken
    fixed = re.search(r'<tr class="fixed">(.*?)</tr>', page).group(1)
    assert "task 2" in fixed and "<td>Positive</td><td>Negative <small>(0.800)</small></td><td>Positive</td>" in fixed
    text = render_text(scored_run({"v1": SCORED, "v2": after}))
    assert "  sentiment: 1 fixed, 1 broken, 0 answered differently; first 2:" in text
    assert "    broken task 1  http://ls.example:8080/projects/12/data?task=1" in text
    assert "      expected Positive: before Positive, after Negative (score 0.700)" in text


def test_html_report_escapes_hostile_task_text_labels_versions_and_titles() -> None:
    interface = LabelInterface(HOSTILE_CONFIG)
    truth = {1: HOSTILE_LABEL, 2: "Positive"}
    versions = {
        f"v1{HOSTILE}": {1: ("Positive", 0.9), 2: (HOSTILE_LABEL, 0.3)},
        f"v2{HOSTILE}": {1: (HOSTILE_LABEL, 0.6), 2: (HOSTILE_LABEL, 0.7)},
    }
    run_ = scored_run(
        versions,
        interface,
        truth=truth,
        excerpts={1: HOSTILE, 2: f"{HOSTILE} and more"},
        title=HOSTILE,
        skipped_controls={f"c{HOSTILE}": HOSTILE},
        error=HOSTILE,
    )
    page = render_html(run_)

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: set[str] = set()
            self.attributes: set[str] = set()
            self.text = ""

        def handle_starttag(self, tag, attrs) -> None:
            self.tags.add(tag)
            self.attributes.update(name for name, _ in attrs)

        def handle_data(self, data) -> None:
            self.text += data

    parsed = Tags()
    parsed.feed(page)
    assert parsed.tags <= SAFE_TAGS, parsed.tags - SAFE_TAGS
    assert not any(name.startswith("on") for name in parsed.attributes)
    assert "src" not in parsed.attributes  # nothing to load: the page opens offline
    assert HOSTILE in parsed.text and HOSTILE_LABEL in parsed.text  # shown as text, escaped
    assert page.count("<script") == 0 and page.count("<img") == 0
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<link" not in page and "url(" not in page and "@import" not in page


def test_a_task_excerpt_is_the_text_the_model_reads_on_one_line_and_bounded() -> None:
    spec = parse_labeling_config(CONFIG, "prompt")

    assert task_excerpt(spec, {"text": "A  short\n\nreview."}) == "A short review."
    long = task_excerpt(spec, {"text": "word " * 100})
    assert len(long) == EXCERPT_CHARS and long.endswith("…")
    assert task_excerpt(spec, {"other": "no text field"}) == ""
