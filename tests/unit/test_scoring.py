"""Scoring predictions against ground truth: every figure below was worked out by hand from the example."""

from __future__ import annotations

import json

import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.domain.evaluation.ground_truth import ground_truth_result, select_ground_truth
from shared.domain.evaluation.scorers import NONE, token_f1
from shared.domain.evaluation.scoring import COVERAGE, Evaluation, TaskToScore, compare, score

CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text" editable="true" rows="3"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>
  </Choices>
  <Choices name="topics" toName="text" choice="multiple">
    <Choice value="Sports"/><Choice value="Politics"/><Choice value="Tech"/>
  </Choices>
  <Labels name="ner" toName="text">
    <Label value="PER"/><Label value="ORG"/><Label value="LOC"/>
  </Labels>
  <Taxonomy name="category" toName="text">
    <Choice value="Animals">
      <Choice value="Mammals"><Choice value="Dog"/><Choice value="Cat"/></Choice>
      <Choice value="Birds"/>
    </Choice>
    <Choice value="Plants"/>
  </Taxonomy>
  <Rating name="quality" toName="text" maxRating="5"/>
  <Number name="year" toName="text" min="1900" max="2100"/>
  <TextArea name="summary" toName="text"/>
  <DateTime name="published" toName="text" only="date"/>
</View>
"""

PARAGRAPH_CONFIG = """
<View>
  <Paragraphs name="dialogue" value="$dialogue" layout="dialogue"/>
  <ParagraphLabels name="speech" toName="dialogue">
    <Label value="Question"/><Label value="Answer"/>
  </ParagraphLabels>
</View>
"""

INTERFACE = LabelInterface(CONFIG)


def region(control: str, interface: LabelInterface = INTERFACE, **value) -> dict:
    """A result region as the SDK builds it (and as our backend stores predictions)."""
    return json.loads(interface.get_control(control).label(**value).to_json())


def stored_span(control: str, start: int, end: int, label: str, text: str, kind: str = "labels") -> dict:
    """A span region as Label Studio stores an annotator's work (with the text and an origin)."""
    return {
        "id": f"gt-{start}-{end}",
        "from_name": control,
        "to_name": "text",
        "type": kind,
        "origin": "manual",
        "value": {"start": start, "end": end, "text": text, kind: [label]},
    }


def scored(tasks: list[TaskToScore], controls: list[str], interface: LabelInterface = INTERFACE):
    evaluation = score(interface, tasks, controls)
    return [evaluation.controls[name] for name in controls]


def test_single_choice_accuracy_per_label_f1_confusion_and_disagreements() -> None:
    def task(task_id, truth, predicted):
        truth_regions = [region("sentiment", label=truth)] if truth else [region("quality", rating=3)]
        predicted_regions = [region("sentiment", label=predicted)] if predicted else [region("quality", rating=3)]
        return TaskToScore(task_id, truth_regions, predicted_regions)

    tasks = [
        task(1, "Positive", "Positive"),
        task(2, "Positive", "Negative"),
        task(3, "Negative", "Negative"),
        task(4, "Neutral", None),  # the model left the control blank
        task(5, None, "Positive"),  # the annotator left it blank, the model did not
        task(6, None, None),  # blank on both sides: no item
    ]
    [sentiment] = scored(tasks, ["sentiment"])

    assert sentiment.kind == "choices"
    assert sentiment.items == 5
    assert sentiment.metrics["accuracy"] == pytest.approx(2 / 5)
    labels = sentiment.per_label["match"]
    assert list(labels) == ["Positive", "Negative", "Neutral"]  # config order
    # Positive: tp task 1, fp task 5, fn task 2
    assert (labels["Positive"].tp, labels["Positive"].fp, labels["Positive"].fn) == (1, 1, 1)
    assert labels["Positive"].precision == pytest.approx(0.5)
    assert labels["Positive"].recall == pytest.approx(0.5)
    assert labels["Positive"].f1 == pytest.approx(0.5)
    # Negative: tp task 3, fp task 2
    assert labels["Negative"].precision == pytest.approx(0.5)
    assert labels["Negative"].recall == pytest.approx(1.0)
    assert labels["Negative"].f1 == pytest.approx(2 / 3)
    # Neutral: only missed (task 4): precision is undefined, not 0
    assert labels["Neutral"].precision is None
    assert labels["Neutral"].recall == 0.0
    assert labels["Neutral"].f1 == 0.0
    assert sentiment.metrics["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    # micro: tp 2 (tasks 1, 3), fp 2 (tasks 2, 5), fn 2 (tasks 2, 4) -> 4 / (4 + 2 + 2)
    assert sentiment.metrics["micro_f1"] == pytest.approx(1 / 2)
    assert sentiment.confusion.labels == ["Positive", "Negative", "Neutral", NONE]
    assert sentiment.confusion.rows == [  # rows: ground truth, columns: prediction
        [1, 1, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 0, 1],
        [1, 0, 0, 0],
    ]
    assert sentiment.disagreements == [2, 4, 5]


def test_multi_choice_exact_set_accuracy_and_per_label_f1() -> None:
    def task(task_id, truth, predicted):
        regions = lambda labels: [region("topics", label=labels)] if labels else []  # noqa: E731
        return TaskToScore(task_id, regions(truth), regions(predicted))

    tasks = [
        task(1, ["Sports", "Tech"], ["Tech", "Sports"]),
        task(2, ["Sports"], ["Sports", "Politics"]),
        task(3, ["Politics", "Tech"], ["Tech"]),
        task(4, ["Tech"], []),
    ]
    [topics] = scored(tasks, ["topics"])

    assert topics.kind == "multichoice"
    assert topics.items == 4
    assert topics.metrics["exact_set_accuracy"] == pytest.approx(1 / 4)
    labels = topics.per_label["match"]
    assert labels["Sports"].f1 == pytest.approx(1.0)  # tp 2
    assert labels["Tech"].precision == pytest.approx(1.0)  # tp 2, fn 1 (task 4)
    assert labels["Tech"].recall == pytest.approx(2 / 3)
    assert labels["Tech"].f1 == pytest.approx(0.8)
    assert (labels["Politics"].tp, labels["Politics"].fp, labels["Politics"].fn) == (0, 1, 1)
    assert labels["Politics"].f1 == 0.0
    assert topics.metrics["macro_f1"] == pytest.approx((1 + 0.8 + 0) / 3)
    # micro: tp 4, fp 1, fn 2 -> 8 / 11
    assert topics.metrics["micro_f1"] == pytest.approx(8 / 11)
    assert topics.confusion is None
    assert topics.disagreements == [2, 3, 4]


def test_a_control_with_no_predictions_at_all() -> None:
    tasks = [
        TaskToScore(
            1, [region("sentiment", label="Positive"), region("quality", rating=4)], [region("year", number=2001)]
        ),
        TaskToScore(2, [region("sentiment", label="Negative")], [region("year", number=2001)]),
    ]
    sentiment, quality = scored(tasks, ["sentiment", "quality"])

    assert sentiment.items == 2
    assert sentiment.metrics == {"accuracy": 0.0, "macro_f1": 0.0, "micro_f1": 0.0}
    assert sentiment.per_label["match"]["Positive"].precision is None  # nothing predicted: undefined
    assert sentiment.per_label["match"]["Positive"].recall == 0.0
    assert sentiment.confusion.rows[0] == [0, 0, 0, 1]  # Positive -> (none)
    assert sentiment.confusion.rows[1] == [0, 0, 0, 1]  # Negative -> (none)
    assert sentiment.disagreements == [1, 2]
    assert quality.items == 1
    assert quality.metrics == {"accuracy": 0.0, "mae": None}  # no predicted value: no distance


def test_empty_sets_score_nothing_and_say_so() -> None:
    # Both sides answer nothing for these controls: no items, every ratio undefined.
    tasks = [TaskToScore(1, [], []), TaskToScore(2, [region("year", number=2000)], [region("year", number=2000)])]
    ner, topics, summary = scored(tasks, ["ner", "topics", "summary"])

    assert ner.items == topics.items == summary.items == 0
    assert all(value is None for value in [*ner.metrics.values(), *topics.metrics.values(), *summary.metrics.values()])
    assert ner.per_label == {"exact": {}, "overlap": {}}
    assert ner.disagreements == []


TEXT = "Alice Smith met Bob at Acme Corp in Paris."


def at(fragment: str, text: str = TEXT) -> tuple[int, int]:
    start = text.index(fragment)
    return start, start + len(fragment)


def test_spans_exact_and_overlap_with_nested_spans_and_a_span_matched_twice() -> None:
    def truth(*spans):
        return [stored_span("ner", start, end, label, "…") for (start, end), label in spans]

    def predicted(*spans):
        return [region("ner", label=label, start=start, end=end) for (start, end), label in spans]

    tasks = [
        # Task 1: two exact PER; ORG cut short ("Acme" of "Acme Corp"); LOC at the wrong place.
        TaskToScore(
            1,
            truth((at("Alice Smith"), "PER"), (at("Bob"), "PER"), (at("Acme Corp"), "ORG"), (at("Paris"), "LOC")),
            predicted((at("Alice Smith"), "PER"), (at("Bob"), "PER"), (at("Acme"), "ORG"), (at("Alice"), "LOC")),
        ),
        # Task 2: one true span predicted in two pieces: it is matched once, the second piece is a false positive.
        TaskToScore(2, truth(((0, 10), "LOC")), predicted(((0, 4), "LOC"), ((5, 10), "LOC"))),
        # Task 3: nested truth (LOC inside ORG); the ORG prediction is shorter, the nested LOC exact.
        TaskToScore(3, truth(((0, 24), "ORG"), ((18, 24), "LOC")), predicted(((4, 24), "ORG"), ((18, 24), "LOC"))),
        # Task 4: [3, 6) overlaps both true spans, [0, 2) only the first: the best matching pairs both.
        TaskToScore(4, truth(((0, 5), "PER"), ((4, 10), "PER")), predicted(((3, 6), "PER"), ((0, 2), "PER"))),
        # Task 5: full agreement.
        TaskToScore(5, truth(((0, 3), "PER")), predicted(((0, 3), "PER"))),
    ]
    [ner] = scored(tasks, ["ner"])

    assert ner.kind == "spans"
    assert ner.items == 5
    exact, overlap = ner.per_label["exact"], ner.per_label["overlap"]
    # exact: PER tp 3 (tasks 1, 1, 5), fp 2 and fn 2 (task 4)
    assert (exact["PER"].tp, exact["PER"].fp, exact["PER"].fn) == (3, 2, 2)
    assert exact["PER"].f1 == pytest.approx(0.6)
    # exact: ORG missed twice (tasks 1 and 3)
    assert (exact["ORG"].tp, exact["ORG"].fp, exact["ORG"].fn) == (0, 2, 2)
    # exact: LOC tp 1 (task 3), fp 1 + 2, fn 1 + 1
    assert (exact["LOC"].tp, exact["LOC"].fp, exact["LOC"].fn) == (1, 3, 2)
    assert exact["LOC"].precision == pytest.approx(1 / 4)
    assert exact["LOC"].recall == pytest.approx(1 / 3)
    assert exact["LOC"].f1 == pytest.approx(2 / 7)
    # micro exact: tp 4, fp 7, fn 6
    assert ner.metrics["exact_precision"] == pytest.approx(4 / 11)
    assert ner.metrics["exact_recall"] == pytest.approx(4 / 10)
    assert ner.metrics["exact_f1"] == pytest.approx(8 / 21)
    assert ner.metrics["exact_macro_f1"] == pytest.approx((0.6 + 0 + 2 / 7) / 3)
    # overlap: PER tp 5 (task 4 pairs both), ORG tp 2, LOC tp 2 fp 2 fn 1
    assert (overlap["PER"].tp, overlap["PER"].fp, overlap["PER"].fn) == (5, 0, 0)
    assert (overlap["ORG"].tp, overlap["ORG"].fp, overlap["ORG"].fn) == (2, 0, 0)
    assert (overlap["LOC"].tp, overlap["LOC"].fp, overlap["LOC"].fn) == (2, 2, 1)
    assert overlap["LOC"].f1 == pytest.approx(4 / 7)
    # micro overlap: tp 9, fp 2, fn 1
    assert ner.metrics["overlap_precision"] == pytest.approx(9 / 11)
    assert ner.metrics["overlap_recall"] == pytest.approx(9 / 10)
    assert ner.metrics["overlap_f1"] == pytest.approx(18 / 21)
    assert ner.metrics["overlap_macro_f1"] == pytest.approx((1 + 1 + 4 / 7) / 3)
    assert ner.disagreements == [1, 2, 3, 4]


def test_paragraph_spans_compare_paragraph_then_offset_and_touching_is_not_overlapping() -> None:
    interface = LabelInterface(PARAGRAPH_CONFIG)

    def span(label, start, start_offset, end, end_offset):
        value = {"start": start, "end": end, "startOffset": start_offset, "endOffset": end_offset}
        return region("speech", interface, label=label, **value)

    truth = [span("Question", "0", 0, "0", 12), span("Answer", "1", 0, "2", 7)]
    predicted = [
        span("Question", "0", 0, "0", 12),  # exact
        span("Answer", "2", 0, "2", 7),  # inside the true answer, which starts a paragraph earlier
        span("Answer", "0", 12, "1", 0),  # ends where the true answer starts: no shared character
    ]
    [speech] = scored([TaskToScore(7, truth, predicted)], ["speech"], interface)

    # exact: Question tp 1; Answer fp 2, fn 1 -> tp 1, fp 2, fn 1
    assert speech.metrics["exact_f1"] == pytest.approx(2 / 5)
    # overlap: Question tp 1; Answer tp 1, fp 1 -> tp 2, fp 1, fn 0
    assert speech.metrics["overlap_precision"] == pytest.approx(2 / 3)
    assert speech.metrics["overlap_recall"] == pytest.approx(1.0)
    assert speech.metrics["overlap_f1"] == pytest.approx(4 / 5)


def test_taxonomy_path_accuracy_and_per_level_accuracy_at_different_depths() -> None:
    def task(task_id, truth, predicted):
        return TaskToScore(task_id, [region("category", taxonomy=truth)], [region("category", taxonomy=predicted)])

    tasks = [
        task(1, [["Animals", "Mammals", "Dog"]], [["Animals", "Mammals", "Dog"]]),
        task(2, [["Animals", "Mammals", "Dog"]], [["Animals", "Mammals"]]),  # stops a level short
        task(3, [["Animals", "Birds"]], [["Animals", "Mammals", "Cat"]]),  # right family, wrong branch
        task(4, [["Plants"]], [["Animals"]]),
    ]
    [category] = scored(tasks, ["category"])

    assert category.kind == "taxonomy"
    assert category.metrics == pytest.approx(
        {
            "path_accuracy": 1 / 4,
            "level_1_accuracy": 3 / 4,  # all four reach level 1; task 4 differs
            "level_2_accuracy": 2 / 3,  # tasks 1-3 reach level 2; task 3 differs
            "level_3_accuracy": 1 / 3,  # tasks 1-3 reach level 3 on one side; only task 1 agrees
        }
    )
    assert category.disagreements == [2, 3, 4]


def test_rating_off_by_two_and_number_accuracy_and_mean_absolute_error() -> None:
    tasks = [
        TaskToScore(
            1,
            [region("quality", rating=5), region("year", number=1999)],
            [region("quality", rating=3), region("year", number=1999.0)],
        ),
        TaskToScore(
            2,
            [region("quality", rating=4), region("year", number=2005)],
            [region("quality", rating=4), region("year", number=2001.5)],
        ),
        TaskToScore(3, [region("quality", rating=2)], []),  # no predicted rating: wrong, but no distance
    ]
    quality, year = scored(tasks, ["quality", "year"])

    assert quality.kind == year.kind == "numeric"
    assert quality.items == 3
    assert quality.metrics["accuracy"] == pytest.approx(1 / 3)
    assert quality.metrics["mae"] == pytest.approx((2 + 0) / 2)
    assert quality.disagreements == [1, 3]
    assert year.metrics["accuracy"] == pytest.approx(1 / 2)
    assert year.metrics["mae"] == pytest.approx((0 + 3.5) / 2)
    assert year.disagreements == [2]


def test_an_unreadable_value_counts_as_no_answer() -> None:
    broken = {"from_name": "year", "to_name": "text", "type": "number", "value": {"number": "n/a"}}
    broken_span = {"from_name": "ner", "to_name": "text", "type": "labels", "value": {"labels": ["PER"]}}
    tasks = [TaskToScore(1, [region("year", number=2000)], [broken, broken_span])]
    year, ner = scored(tasks, ["year", "ner"])

    assert year.metrics == {"accuracy": 0.0, "mae": None}
    assert ner.items == 0


def test_textarea_exact_match_after_whitespace_and_squad_token_f1() -> None:
    def task(task_id, truth, predicted):
        predicted_regions = [region("summary", text=predicted)] if predicted else []
        return TaskToScore(task_id, [region("summary", text=truth)], predicted_regions)

    tasks = [
        task(1, ["The cat sat on the mat."], ["the cat sat on mat"]),  # same tokens once normalised
        task(2, ["Hello, world!  Nice day."], ["hello world; bad day"]),  # 3 of 4 tokens shared
        task(3, ["  Same\n", "text "], ["Same text"]),  # whitespace only, across the TextArea's lines
        task(4, ["Paris"], None),
    ]
    [summary] = scored(tasks, ["summary"])

    assert summary.kind == "text"
    assert summary.metrics["exact_match"] == pytest.approx(1 / 4)
    assert summary.metrics["token_f1"] == pytest.approx((1 + 0.75 + 1 + 0) / 4)
    assert summary.disagreements == [1, 2, 4]


def test_token_f1_edges() -> None:
    assert token_f1("", "") == 1.0
    assert token_f1("...", "!!") == 1.0  # nothing but punctuation on both sides
    assert token_f1("Paris", "") == 0.0
    assert token_f1("New York", "Boston") == 0.0
    assert token_f1("a big dog", "big, big dog!") == pytest.approx(0.8)  # [big, dog] vs [big, big, dog]


def test_coverage_keeps_unscored_tasks_out_of_the_metrics() -> None:
    positive = [region("sentiment", label="Positive")]
    negative = [region("sentiment", label="Negative")]
    tasks = [
        TaskToScore(10, positive, positive),
        TaskToScore(11, None, negative),  # no ground truth
        TaskToScore(12, positive, None, failed=True),  # the caller saw the prediction fail
        TaskToScore(13, positive, None),  # not predicted (yet)
        TaskToScore(14, positive, negative),
    ]
    evaluation = score(INTERFACE, tasks, ["sentiment"])

    assert evaluation.coverage.tasks == 5
    assert evaluation.coverage.scored == 2
    assert evaluation.coverage.without_ground_truth == 1
    assert evaluation.coverage.failed == 1
    assert evaluation.coverage.without_prediction == 1
    assert evaluation.controls["sentiment"].items == 2
    assert evaluation.controls["sentiment"].metrics["accuracy"] == pytest.approx(0.5)
    assert evaluation.controls["sentiment"].disagreements == [14]


def test_default_controls_are_every_scored_type_and_named_controls_are_checked() -> None:
    evaluation = score(INTERFACE, [])
    assert list(evaluation.controls) == [
        "prompt",
        "sentiment",
        "topics",
        "ner",
        "category",
        "quality",
        "year",
        "summary",
    ]

    with pytest.raises(ValueError, match="'nope' is not in the labeling config"):
        score(INTERFACE, [], ["nope"])
    with pytest.raises(ValueError, match="'published' is a DateTime, which is not scored"):
        score(INTERFACE, [], ["published"])


def sentiment_tasks(answers: list[str]) -> list[TaskToScore]:
    truths = ["Positive", "Negative", "Positive", "Neutral", "Negative"]
    return [
        TaskToScore(task_id, [region("sentiment", label=truth)], [region("sentiment", label=answer)])
        for task_id, (truth, answer) in enumerate(zip(truths, answers, strict=True), start=1)
    ]


def test_the_flat_view_and_the_stored_form() -> None:
    evaluation = score(
        INTERFACE, sentiment_tasks(["Positive", "Positive", "Positive", "Neutral", "Negative"]), ["sentiment", "ner"]
    )
    flat = evaluation.flat()

    assert flat[("sentiment", "accuracy")] == pytest.approx(4 / 5)
    assert flat[("sentiment", "items")] == 5
    # Positive: tp 2, fp 1 -> 4 / 5; Negative: tp 1, fn 1 -> 2 / 3
    assert flat[("sentiment", "f1:Positive")] == pytest.approx(4 / 5)
    assert flat[("sentiment", "f1:Negative")] == pytest.approx(2 / 3)
    assert flat[(COVERAGE, "scored")] == 5
    assert flat[("ner", "items")] == 0
    assert ("ner", "exact_f1") not in flat  # undefined figures are left out, not reported as 0
    assert all(isinstance(value, int | float) for value in flat.values())

    stored = json.loads(json.dumps(evaluation.as_dict()))
    assert {"control": "sentiment", "metric": "accuracy", "value": pytest.approx(0.8)} in stored["scores"]
    assert stored["controls"]["sentiment"]["per_label"]["match"]["Negative"] == {
        "tp": 1,
        "fp": 0,
        "fn": 1,
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
    }
    assert Evaluation.from_dict(stored).as_dict() == stored


def test_comparing_two_versions_on_the_same_tasks() -> None:
    before = score(
        INTERFACE, sentiment_tasks(["Positive", "Positive", "Positive", "Neutral", "Positive"]), ["sentiment"]
    )
    after = score(
        INTERFACE, sentiment_tasks(["Positive", "Negative", "Positive", "Neutral", "Negative"]), ["sentiment"]
    )
    comparison = compare(before, after)
    deltas = {(delta.control, delta.metric): delta for delta in comparison.deltas}

    assert comparison.same_tasks
    accuracy = deltas["sentiment", "accuracy"]
    assert (accuracy.before, accuracy.after) == (pytest.approx(3 / 5), pytest.approx(5 / 5))
    assert accuracy.delta == pytest.approx(2 / 5)
    # "before" never said Negative and got both wrong (f1 0); "after" got both.
    assert deltas["sentiment", "f1:Negative"].before == 0.0
    assert deltas["sentiment", "f1:Negative"].delta == pytest.approx(1.0)
    stored = json.loads(json.dumps(comparison.as_dict()))
    assert {"control": "sentiment", "metric": "items", "before": 5, "after": 5, "delta": 0} in stored["deltas"]

    fewer = score(
        INTERFACE, sentiment_tasks(["Positive", "Negative", "Positive", "Neutral", "Negative"])[:3], ["sentiment"]
    )
    assert not compare(before, fewer).same_tasks


def test_a_metric_only_one_version_has_has_no_delta() -> None:
    before = score(INTERFACE, [TaskToScore(1, [], [])], ["ner"])
    after = score(INTERFACE, [TaskToScore(1, [], [region("ner", label="PER", start=0, end=5)])], ["ner"])
    deltas = {(delta.control, delta.metric): delta for delta in compare(before, after).deltas}

    assert deltas["ner", "exact_precision"].before is None
    assert deltas["ner", "exact_precision"].after == 0.0
    assert deltas["ner", "exact_precision"].delta is None


# --- ground truth -----------------------------------------------------------------------------------


def annotation(annotation_id: int, updated: str, ground_truth: bool = False, cancelled: bool = False) -> dict:
    return {
        "id": annotation_id,
        "result": [region("sentiment", label="Positive")],
        "ground_truth": ground_truth,
        "was_cancelled": cancelled,
        "created_at": "2024-05-01T09:00:00.000000Z",
        "updated_at": updated,
    }


def test_the_annotation_marked_ground_truth_wins_even_when_older() -> None:
    marked = annotation(1, "2024-05-01T10:00:00.000000Z", ground_truth=True)
    newer = annotation(2, "2024-05-02T10:00:00.000000Z")
    assert select_ground_truth([newer, marked]) is marked


def test_else_the_latest_annotation_that_was_not_cancelled() -> None:
    old = annotation(1, "2024-05-01T10:00:00Z")
    latest = annotation(2, "2024-05-03T08:00:00.250000Z")
    skipped = annotation(3, "2024-05-04T10:00:00Z", cancelled=True)
    marked_but_skipped = annotation(4, "2024-05-05T10:00:00Z", ground_truth=True, cancelled=True)
    assert select_ground_truth([old, skipped, latest, marked_but_skipped]) is latest


def test_same_time_falls_back_to_the_later_id_and_missing_times_to_created_at() -> None:
    first, second = annotation(5, "2024-05-01T10:00:00Z"), annotation(6, "2024-05-01T10:00:00Z")
    assert select_ground_truth([second, first]) is second
    undated = {"id": 7, "result": [], "created_at": "2024-06-01T00:00:00+00:00"}
    assert select_ground_truth([first, undated]) is undated


def test_no_usable_annotation_means_no_ground_truth() -> None:
    assert select_ground_truth([]) is None
    assert select_ground_truth([annotation(1, "2024-05-01T10:00:00Z", cancelled=True)]) is None
    assert ground_truth_result([annotation(1, "2024-05-01T10:00:00Z", cancelled=True)]) is None


def test_ground_truth_result_is_the_chosen_regions_and_an_empty_one_still_counts() -> None:
    chosen = annotation(1, "2024-05-01T10:00:00Z")
    assert ground_truth_result([chosen]) == chosen["result"]
    assert ground_truth_result([{"id": 2, "result": [], "updated_at": "2024-05-01T10:00:00Z"}]) == []
