"""Calibration of the prediction score, worked out by hand; the answers a disagreement keeps; the confusion of a
multiple Choices answered with one label; the tasks a comparison changed.

The hand-computed case: nine items (score, right or wrong) and one without a score.

    score  0.95 0.95 0.92 0.91 0.85 0.85 0.75 0.6  0.3  (none)
    right  yes  yes  yes  no   yes  yes  no   yes  no   yes

Buckets: [0.9, 1] 4 items, mean (0.95 + 0.95 + 0.92 + 0.91) / 4 = 0.9325, accuracy 3/4; [0.8, 0.9) 2 items, mean
0.85, accuracy 1; [0.7, 0.8) 1, 0.75, 0; [0.6, 0.7) 1, 0.6, 1 (0.6 is that bucket's lower edge); [0.3, 0.4) 1,
0.3, 0.  ECE = (4 × 0.1825 + 2 × 0.15 + 0.75 + 0.4 + 0.3) / 9 = 2.48 / 9.

Precision of the items at or above each score, from the top: 0.95 → 2/2, 0.92 → 3/3, 0.91 → 3/4, 0.85 → 5/6,
0.75 → 5/7, 0.6 → 6/8, 0.3 → 6/9.  So 0.9 is reached down to 0.92 (3 items, a third); 0.8 down to 0.85 (6, 2/3);
0.7 down to 0.6 (8 items: precision dips below 0.75 at 0.75 and recovers, and the lowest score counts).
"""

from __future__ import annotations

import json

import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.domain.evaluation.calibration import Calibration, ScoreTally
from shared.domain.evaluation.scorers import NONE, Disagreement
from shared.domain.evaluation.scoring import TaskToScore, score
from shared.domain.evaluation.task_changes import task_changes

ITEMS = [(0.95, True), (0.95, True), (0.92, True), (0.91, False), (0.85, True), (0.85, True)]
ITEMS += [(0.75, False), (0.6, True), (0.3, False), (None, True)]
CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text"><Choice value="Positive"/><Choice value="Negative"/></Choices>
  <Choices name="topics" toName="text" choice="multiple">
    <Choice value="Sports"/><Choice value="Politics"/><Choice value="Tech"/></Choices>
  <Labels name="ner" toName="text"><Label value="PER"/><Label value="LOC"/></Labels>
  <Taxonomy name="category" toName="text"><Choice value="Animals"><Choice value="Dog"/></Choice></Taxonomy>
  <Rating name="quality" toName="text"/>
  <TextArea name="summary" toName="text"/>
</View>
"""
INTERFACE = LabelInterface(CONFIG)


def tally(items) -> ScoreTally:
    counts = ScoreTally()
    for value, right in items:
        counts.add(value, right)
    return counts


def test_calibration_numbers_on_a_hand_computed_case() -> None:
    calibration = tally(ITEMS).calibration((0.7, 0.8, 0.9))

    assert (calibration.items, calibration.unscored) == (9, 1)
    filled = [(b.low, b.high, b.items, b.mean_score, b.accuracy) for b in calibration.buckets if b.items]
    expected = [(0.3, 0.4, 1, 0.3, 0.0), (0.6, 0.7, 1, 0.6, 1.0), (0.7, 0.8, 1, 0.75, 0.0), (0.8, 0.9, 2, 0.85, 1.0)]
    expected.append((0.9, 1.0, 4, 0.9325, 0.75))
    assert [pytest.approx(row) for row in expected] == filled
    assert len(calibration.buckets) == 10 and calibration.buckets[0].mean_score is None
    assert calibration.ece == pytest.approx(2.48 / 9)
    seventy, eighty, ninety = calibration.thresholds
    assert (ninety.target, ninety.score, ninety.precision, ninety.items) == (0.9, 0.92, 1.0, 3)
    assert ninety.share == pytest.approx(1 / 3)
    assert (eighty.score, eighty.items) == (0.85, 6)
    assert eighty.precision == pytest.approx(5 / 6) and eighty.share == pytest.approx(6 / 9)
    assert (seventy.score, seventy.precision, seventy.items) == (0.6, 0.75, 8)


def test_a_target_no_score_reaches_and_a_control_without_scores() -> None:
    calibration = tally([(0.99, False), (0.5, True)]).calibration((0.9, 0.5))

    assert calibration.thresholds[0].score is None and calibration.thresholds[0].share is None
    assert calibration.thresholds[1].score == 0.5 and calibration.thresholds[1].share == 1.0
    assert calibration.ece == pytest.approx((0.99 + 0.5) / 2)  # 0.99 wrong: 0.99 off; 0.5 right: 0.5 off
    nothing = tally([(None, True), (None, False)]).calibration()
    assert (nothing.items, nothing.unscored, nothing.ece) == (0, 2, None)
    assert [t.score for t in nothing.thresholds] == [None, None, None]


def test_precision_exactly_at_the_target_reaches_it_despite_float_sums() -> None:
    items = [(0.9, True)] * 19 + [(0.9, False)]  # 19 / 20 = 0.95 exactly, as a float 0.95 or a hair below
    assert tally(items).calibration((0.95,)).thresholds[0].score == 0.9


def choice(label: str, score: float | None = None) -> list[dict]:
    found = {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
    return [found | ({"score": score} if score is not None else {})]


def test_scoring_calibrates_each_control_by_its_regions_score_else_the_predictions() -> None:
    topics = {"from_name": "topics", "to_name": "text", "type": "choices", "value": {"choices": ["Tech"]}}
    tasks = [
        TaskToScore(1, choice("Positive") + [topics], choice("Positive", 0.3) + [topics], score=0.8),
        TaskToScore(2, choice("Negative"), choice("Positive"), score=0.8),
        TaskToScore(3, choice("Negative"), choice("Negative")),  # a prediction without a score
    ]

    evaluation = score(INTERFACE, tasks, ["sentiment", "topics"], precisions=(0.5,))

    sentiment = evaluation.controls["sentiment"].calibration
    assert (sentiment.items, sentiment.unscored) == (2, 1)
    assert [(b.low, b.items) for b in sentiment.buckets if b.items] == [(0.3, 1), (0.8, 1)]  # the region's 0.3
    assert sentiment.ece == pytest.approx((0.7 + 0.8) / 2)
    assert sentiment.thresholds[0].score == 0.3  # 1 of 2 right at or above 0.3
    assert evaluation.controls["topics"].calibration.buckets[8].items == 1  # no region score: the prediction's
    assert evaluation.controls["sentiment"].details == [Disagreement(2, "Negative", "Positive", 0.8)]
    flat = evaluation.flat()
    assert flat["sentiment", "ece"] == pytest.approx(0.75)
    assert flat["sentiment", "threshold:0.5"] == 0.3 and flat["sentiment", "share:0.5"] == 1.0
    stored = json.loads(json.dumps(evaluation.as_dict()))
    assert stored["controls"]["sentiment"]["disagreements"] == [2]
    assert Calibration.from_dict(stored["controls"]["sentiment"]["calibration"]) == sentiment


def region(control: str, **value) -> dict:
    return json.loads(INTERFACE.get_control(control).label(**value).to_json())


def test_a_disagreement_keeps_both_answers_as_short_text() -> None:
    long_text = "word " * 100
    spans = [region("ner", label="PER", start=index * 2, end=index * 2 + 1) for index in range(7)]
    truth = [
        region("topics", label=["Tech", "Sports"]),
        region("ner", label="LOC", start=0, end=5),
        region("category", taxonomy=[["Animals", "Dog"]]),
        region("quality", rating=4),
        region("summary", text=[long_text]),
    ]
    predicted = [region("topics", label=["Politics"]), *spans, region("category", taxonomy=[["Animals"]])]
    evaluation = score(INTERFACE, [TaskToScore(9, truth, predicted, score=0.25)], None)

    controls = evaluation.controls.items()
    shown = {name: (c.details[0].expected, c.details[0].predicted) for name, c in controls if c.items}
    assert shown["topics"] == ("Sports; Tech", "Politics")  # in the config's order
    assert shown["ner"][0] == "LOC 0-5"
    assert shown["ner"][1] == "PER 0-1; PER 2-3; PER 4-5; PER 6-7; PER 8-9; … (7 in all)"
    assert shown["category"] == ("Animals / Dog", "Animals")
    assert shown["quality"] == ("4", NONE)
    expected_summary, predicted_summary = shown["summary"]
    assert len(expected_summary) == 120 and expected_summary.endswith("…") and predicted_summary == NONE
    assert evaluation.controls["quality"].details[0].score == 0.25


def test_multiple_choices_answered_with_one_label_each_get_a_confusion_matrix() -> None:
    def task(task_id, truth, predicted):
        regions = lambda labels: [region("topics", label=labels)] if labels else []  # noqa: E731
        return TaskToScore(task_id, regions(truth), regions(predicted))

    single = score(INTERFACE, [task(1, ["Tech"], ["Tech"]), task(2, ["Sports"], ["Tech"]), task(3, ["Tech"], [])])
    topics = single.controls["topics"]

    assert topics.confusion.labels == ["Sports", "Politics", "Tech", NONE]
    assert topics.confusion.rows == [[0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]]
    several = score(INTERFACE, [task(1, ["Tech"], ["Tech"]), task(2, ["Sports", "Tech"], ["Tech"])])
    assert several.controls["topics"].confusion is None


def test_tasks_a_comparison_changed_broken_first() -> None:
    truth = {1: "Positive", 2: "Negative", 3: "Negative", 4: "Positive"}
    before = {1: "Positive", 2: "Positive", 3: "Positive", 4: "Negative"}
    after = {1: "Negative", 2: "Negative", 3: "Positive", 4: "Negative"}

    def evaluation(answers, value):
        tasks = [TaskToScore(i, choice(truth[i]), choice(answers[i]), score=value) for i in truth]
        return score(INTERFACE, tasks, ["sentiment"])

    [(name, changes)] = task_changes(evaluation(before, 0.6), evaluation(after, 0.7), keep=10).items()

    assert name == "sentiment" and (changes.fixed, changes.broken, changes.changed) == (1, 1, 0)
    assert [(c.task_id, c.kind, c.before, c.after, c.before_score, c.after_score) for c in changes.tasks] == [
        (1, "broken", "Positive", "Negative", None, 0.7),
        (2, "fixed", "Positive", "Negative", 0.6, None),
    ]
    after[3] = "Negative"  # fixed too: two fixed, the first kept
    kept = task_changes(evaluation(before, 0.6), evaluation(after, 0.7), keep=1)["sentiment"]
    assert (kept.fixed, kept.broken) == (2, 1)
    assert [(c.task_id, c.kind) for c in kept.tasks] == [(1, "broken"), (2, "fixed")]
