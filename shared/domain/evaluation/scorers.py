"""How a prediction agrees with the ground truth on one labeling control, one scorer per control type.

A scorer sees the tasks one at a time (the region values of its control on both sides) and keeps
counts, not the tasks, so a 100,000-task project scores in little memory.  A value it cannot read (a
span without offsets, a rating that is not a number) counts as no answer rather than stopping the run.

A task where neither side answers the control is no item for it: a conditional or optional control left
blank on both sides agrees by saying nothing, and counting it would inflate accuracy.  A task where one
side is blank is an item, with the blank side as ``(none)``.

Each disagreement keeps both answers as short text (``show``) and the prediction's score, for the reports;
each item's outcome is returned to the caller, which tallies it by score (``calibration``).

Ratios whose denominator is zero are ``None`` (undefined), never 0 or 1: precision with no predicted
label, recall with no true label.  F1 is ``2·tp / (2·tp + fp + fn)``, defined whenever the label occurs
on either side.  Macro F1 averages the labels that occur on either side (as scikit-learn does).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, NamedTuple

from shared.domain.evaluation.calibration import Calibration
from shared.domain.labeling.sdk_tags import SdkControl

NONE = "(none)"
SHOWN_CHARS = 120  # an answer as a report shows it: a long text or many spans are cut
SHOWN_PARTS = 5  # spans, paths or labels listed before "… (N in all)"


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


@dataclass
class Counts:
    """True positives, false positives and false negatives of one label under one matching rule."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def add(self, other: Counts) -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn

    def as_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counts:
        return cls(tp=data["tp"], fp=data["fp"], fn=data["fn"])


@dataclass
class Confusion:
    """Single-choice answers: ``rows[i][j]`` tasks had ground truth ``labels[i]`` and prediction ``labels[j]``."""

    labels: list[str]
    rows: list[list[int]]

    def as_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Confusion:
        return cls(labels=list(data["labels"]), rows=[list(row) for row in data["rows"]])


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def listed(parts: list[str]) -> str:
    """Parts joined with ``; ``, the first ``SHOWN_PARTS`` of them when there are more; ``(none)`` for none."""
    if not parts:
        return NONE
    more = f"; … ({len(parts)} in all)" if len(parts) > SHOWN_PARTS else ""
    return shorten("; ".join(parts[:SHOWN_PARTS]) + more)


@dataclass(frozen=True)
class Disagreement:
    """One task where the prediction differs: both answers as a report shows them, and the score that went with
    the prediction (None: it had none).  A run stored before answers were kept has only the task id."""

    task_id: int
    expected: str | None = None
    predicted: str | None = None
    score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ControlScore:
    """Every figure for one control.  ``per_label`` maps a matching rule (``match`` for choices, ``exact``
    and ``overlap`` for spans) to each label's counts; ``details`` lists the disagreements in task order and
    ``calibration`` how far the scores of this control's items can be trusted."""

    control: str
    kind: str
    items: int
    metrics: dict[str, float | None]
    per_label: dict[str, dict[str, Counts]] = field(default_factory=dict)
    confusion: Confusion | None = None
    details: list[Disagreement] = field(default_factory=list)
    calibration: Calibration | None = None

    @property
    def disagreements(self) -> list[int]:
        """The disagreeing task ids, in task order."""
        return [detail.task_id for detail in self.details]

    def as_dict(self) -> dict[str, Any]:
        return {
            "control": self.control,
            "kind": self.kind,
            "items": self.items,
            "metrics": dict(self.metrics),
            "per_label": {
                rule: {label: counts.as_dict() for label, counts in labels.items()}
                for rule, labels in self.per_label.items()
            },
            "confusion": self.confusion.as_dict() if self.confusion else None,
            "disagreements": self.disagreements,
            "disagreement_details": [detail.as_dict() for detail in self.details],
            "calibration": self.calibration.as_dict() if self.calibration else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControlScore:
        return cls(
            control=data["control"],
            kind=data["kind"],
            items=data["items"],
            metrics=dict(data["metrics"]),
            per_label={
                rule: {label: Counts.from_dict(counts) for label, counts in labels.items()}
                for rule, labels in data["per_label"].items()
            },
            confusion=Confusion.from_dict(data["confusion"]) if data.get("confusion") else None,
            details=[Disagreement(**detail) for detail in data["disagreement_details"]]
            if "disagreement_details" in data
            else [Disagreement(task_id) for task_id in data["disagreements"]],
            calibration=Calibration.from_dict(data["calibration"]) if data.get("calibration") else None,
        )


class Scorer(ABC):
    """Counts items and disagreements; subclasses read their values, compare one task and show an answer."""

    kind: ClassVar[str]

    def __init__(self, control: SdkControl) -> None:
        self.control = control
        self.items = 0
        self.details: list[Disagreement] = []

    def add(
        self, task_id: int, truth: list[dict[str, Any]], predicted: list[dict[str, Any]], score: float | None = None
    ) -> bool | None:
        """One task: the ``value`` dicts of this control's regions in the ground truth and the prediction, and
        the prediction's score.  True when they agree, False when not, None when the task is no item."""
        truth_answer, predicted_answer = self.read(truth), self.read(predicted)
        if truth_answer is None and predicted_answer is None:
            return None
        self.items += 1
        if self.compare(truth_answer, predicted_answer):
            return True
        expected = NONE if truth_answer is None else self.show(truth_answer)
        guessed = NONE if predicted_answer is None else self.show(predicted_answer)
        self.details.append(Disagreement(task_id, expected, guessed, score))
        return False

    @abstractmethod
    def read(self, values: list[dict[str, Any]]) -> Any:
        """The control's answer in a task, or None when it has none."""

    @abstractmethod
    def compare(self, truth: Any, predicted: Any) -> bool:
        """Count one item; True when the answers agree exactly."""

    @abstractmethod
    def metrics(self) -> dict[str, float | None]:
        """The headline figures, by metric name."""

    @abstractmethod
    def show(self, answer: Any) -> str:
        """An answer ``read`` returned, as a short text for a report."""

    def result(self) -> ControlScore:
        return ControlScore(self.control.name, self.kind, self.items, self.metrics(), details=self.details)

    def ordered(self, labels: Iterable[str]) -> list[str]:
        """Labels as the config lists them, then any it does not (first seen first)."""
        known = {label: index for index, label in enumerate(self.control.labels or [])}
        order = sorted(enumerate(labels), key=lambda item: (known.get(item[1], len(known)), item[0]))
        return [label for _, label in order]

    def in_config_order(self, per_label: dict[str, Counts]) -> dict[str, Counts]:
        return {label: per_label[label] for label in self.ordered(per_label)}


def _f1_summary(per_label: dict[str, Counts]) -> tuple[float | None, float | None]:
    """Macro F1 (mean over labels) and micro F1 (from the summed counts)."""
    scores = [counts.f1 for counts in per_label.values() if counts.f1 is not None]
    total = Counts()
    for counts in per_label.values():
        total.add(counts)
    return ratio(sum(scores), len(scores)), total.f1


def _labels_of(values: list[dict[str, Any]], key: str) -> list[str]:
    return [label for value in values for label in value.get(key) or []]


def _confusion(config_labels: list[str], pairs: Counter[tuple[str, str]]) -> Confusion:
    """The matrix of (truth, prediction) pairs: the config's labels, then any other seen, then ``(none)``."""
    seen = [label for pair in pairs for label in pair]
    labels = list(dict.fromkeys([*config_labels, *seen]))
    labels = [label for label in labels if label != NONE] + [NONE]
    return Confusion(labels, [[pairs[truth, predicted] for predicted in labels] for truth in labels])


class SingleChoiceScorer(Scorer):
    """Choices with one answer: accuracy, per-label precision/recall/F1 and a confusion matrix."""

    kind = "choices"

    def __init__(self, control: SdkControl) -> None:
        super().__init__(control)
        self.correct = 0
        self.per_label: dict[str, Counts] = {}
        self.pairs: Counter[tuple[str, str]] = Counter()

    def read(self, values: list[dict[str, Any]]) -> str | None:
        labels = _labels_of(values, "choices")
        return labels[0] if labels else None

    def _count(self, label: str) -> Counts:
        return self.per_label.setdefault(label, Counts())

    def compare(self, truth: str | None, predicted: str | None) -> bool:
        self.pairs[truth or NONE, predicted or NONE] += 1
        if truth == predicted:
            self.correct += 1
            if truth is not None:  # never None here: add() skips a task blank on both sides
                self._count(truth).tp += 1
            return True
        if predicted is not None:
            self._count(predicted).fp += 1
        if truth is not None:
            self._count(truth).fn += 1
        return False

    def metrics(self) -> dict[str, float | None]:
        macro, micro = _f1_summary(self.per_label)
        return {"accuracy": ratio(self.correct, self.items), "macro_f1": macro, "micro_f1": micro}

    def show(self, answer: str) -> str:
        return shorten(answer)

    def result(self) -> ControlScore:
        score = super().result()
        score.per_label = {"match": self.in_config_order(self.per_label)}
        score.confusion = _confusion(self.control.labels or [], self.pairs)
        return score


class MultiChoiceScorer(Scorer):
    """Choices with ``choice="multiple"``: exact-set accuracy and per-label precision/recall/F1; and the
    confusion matrix when every answer on both sides held at most one label (a config that allows several
    where the team picks one)."""

    kind = "multichoice"

    def __init__(self, control: SdkControl) -> None:
        super().__init__(control)
        self.exact = 0
        self.per_label: dict[str, Counts] = {}
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.single = True

    def read(self, values: list[dict[str, Any]]) -> frozenset[str] | None:
        return frozenset(_labels_of(values, "choices")) or None

    def compare(self, truth: frozenset[str] | None, predicted: frozenset[str] | None) -> bool:
        truth, predicted = truth or frozenset(), predicted or frozenset()
        if len(truth) <= 1 and len(predicted) <= 1:
            self.pairs[min(truth, default=NONE), min(predicted, default=NONE)] += 1
        else:
            self.single = False
        for label in truth | predicted:
            counts = self.per_label.setdefault(label, Counts())
            if label in truth and label in predicted:
                counts.tp += 1
            elif label in predicted:
                counts.fp += 1
            else:
                counts.fn += 1
        self.exact += truth == predicted
        return truth == predicted

    def metrics(self) -> dict[str, float | None]:
        macro, micro = _f1_summary(self.per_label)
        return {"exact_set_accuracy": ratio(self.exact, self.items), "macro_f1": macro, "micro_f1": micro}

    def show(self, answer: frozenset[str]) -> str:
        return listed(self.ordered(sorted(answer)))

    def result(self) -> ControlScore:
        score = super().result()
        score.per_label = {"match": self.in_config_order(self.per_label)}
        if self.single and self.items:
            score.confusion = _confusion(self.control.labels or [], self.pairs)
        return score


class ScoredSpan(NamedTuple):
    """A labeled stretch of text as scoring compares it, read from a region (``spans.Span`` is a quote placed in a
    text, before it becomes one): positions are ``(offset,)`` for Labels on Text and ``(paragraph, offset)``
    for ParagraphLabels, so the same comparisons order both."""

    begin: tuple[float, ...]
    end: tuple[float, ...]
    label: str


def _overlaps(first: ScoredSpan, second: ScoredSpan) -> bool:
    return first.begin < second.end and second.begin < first.end


class _FreeSpans:
    """The true spans free to match, by their rank in end order: a Fenwick tree of counts, so adding one,
    taking one and finding the first free at or after a rank each cost log n."""

    def __init__(self, size: int) -> None:
        self.counts = [0] * (size + 1)
        self.top = 1 << size.bit_length()

    def add(self, rank: int, change: int) -> None:
        position = rank + 1
        while position < len(self.counts):
            self.counts[position] += change
            position += position & -position

    def _before(self, rank: int) -> int:
        total, position = 0, rank
        while position > 0:
            total += self.counts[position]
            position -= position & -position
        return total

    def first_from(self, rank: int) -> int | None:
        """The lowest free rank at or after ``rank``, or None."""
        wanted = self._before(rank) + 1  # the free ones before it, and then this one
        position, step = 0, self.top
        while step:
            if position + step < len(self.counts) and self.counts[position + step] < wanted:
                position += step
                wanted -= self.counts[position]
            step >>= 1
        return position if position < len(self.counts) - 1 else None


def _overlap_matches(truth: list[ScoredSpan], predicted: list[ScoredSpan]) -> int:
    """The most predicted spans that can each take a different overlapping true span (a maximum bipartite
    matching): a true span is matched at most once, and a wide prediction must not take the one true span a
    narrower prediction needed.

    Predicted spans are taken by increasing end, each matched to the free overlapping true span that ends
    first.  That is a maximum matching: if a best matching gives this prediction p another span t' and gives
    the chosen t to a later prediction p', swapping keeps its size, since p' also overlaps t' (t' begins before
    p ends, so before p' ends; p' begins before t ends, so before t' ends).  With the true spans ranked by end,
    each step costs log n (augmenting paths, quadratic and recursive, failed on thousands of nested spans)."""
    by_end = sorted(range(len(truth)), key=lambda index: truth[index].end)
    ends = [truth[index].end for index in by_end]
    rank_of = {index: rank for rank, index in enumerate(by_end)}
    by_begin = sorted(range(len(truth)), key=lambda index: truth[index].begin)
    free = _FreeSpans(len(truth))
    begun = 0  # the true spans in by_begin[:begun] begin before the current prediction ends
    matched = 0
    for span in sorted(predicted, key=lambda span: span.end):
        while begun < len(by_begin) and truth[by_begin[begun]].begin < span.end:
            free.add(rank_of[by_begin[begun]], 1)
            begun += 1
        rank = free.first_from(bisect.bisect_right(ends, span.begin))  # the first free one ending after it begins
        if rank is not None:
            free.add(rank, -1)
            matched += 1
    return matched


class SpanScorer(Scorer):
    """Labels and ParagraphLabels: per-label precision/recall/F1 for exact spans (same start, end and label)
    and for overlapping ones (any shared character with the same label)."""

    kind = "spans"
    RULES = ("exact", "overlap")

    def __init__(self, control: SdkControl) -> None:
        super().__init__(control)
        self.label_key = control.tag.lower()
        self.per_label: dict[str, dict[str, Counts]] = {rule: {} for rule in self.RULES}

    @staticmethod
    def _position(value: dict[str, Any], key: str) -> tuple[float, ...] | None:
        offset = value.get(f"{key}Offset")
        try:
            return (float(value[key]),) if offset is None else (int(value[key]), int(offset))
        except (KeyError, TypeError, ValueError):
            return None

    def read(self, values: list[dict[str, Any]]) -> list[ScoredSpan] | None:
        spans: list[ScoredSpan] = []
        for value in values:
            begin, end = self._position(value, "start"), self._position(value, "end")
            if begin is not None and end is not None:
                spans.extend(ScoredSpan(begin, end, label) for label in value.get(self.label_key) or [])
        return spans or None

    def _count(self, rule: str, label: str, matched: int, truth: int, predicted: int) -> None:
        self.per_label[rule].setdefault(label, Counts()).add(Counts(matched, predicted - matched, truth - matched))

    def compare(self, truth: list[ScoredSpan] | None, predicted: list[ScoredSpan] | None) -> bool:
        truth, predicted = truth or [], predicted or []
        truth_counts, predicted_counts = Counter(truth), Counter(predicted)
        for label in dict.fromkeys(span.label for span in [*truth, *predicted]):
            true_spans = [span for span in truth if span.label == label]
            predicted_spans = [span for span in predicted if span.label == label]
            exact = sum(min(count, predicted_counts[span]) for span, count in Counter(true_spans).items())
            self._count("exact", label, exact, len(true_spans), len(predicted_spans))
            overlap = _overlap_matches(true_spans, predicted_spans)
            self._count("overlap", label, overlap, len(true_spans), len(predicted_spans))
        return truth_counts == predicted_counts

    @staticmethod
    def _at(position: tuple[float, ...]) -> str:
        return ":".join(f"{number:g}" for number in position)

    def show(self, answer: list[ScoredSpan]) -> str:
        spans = sorted(answer)
        return listed([f"{span.label} {self._at(span.begin)}-{self._at(span.end)}" for span in spans])

    def metrics(self) -> dict[str, float | None]:
        figures: dict[str, float | None] = {}
        for rule in self.RULES:
            total = Counts()
            for counts in self.per_label[rule].values():
                total.add(counts)
            macro, _ = _f1_summary(self.per_label[rule])
            figures |= {
                f"{rule}_precision": total.precision,
                f"{rule}_recall": total.recall,
                f"{rule}_f1": total.f1,
                f"{rule}_macro_f1": macro,
            }
        return figures

    def result(self) -> ControlScore:
        score = super().result()
        score.per_label = {rule: self.in_config_order(labels) for rule, labels in self.per_label.items()}
        return score


class TaxonomyScorer(Scorer):
    """Taxonomy: exact accuracy of the chosen paths, and accuracy at each depth (the paths cut to that many
    levels must agree; a task counts at a depth when either side reaches it)."""

    kind = "taxonomy"

    def __init__(self, control: SdkControl) -> None:
        super().__init__(control)
        self.exact = 0
        self.level_items: Counter[int] = Counter()
        self.level_correct: Counter[int] = Counter()

    def read(self, values: list[dict[str, Any]]) -> frozenset[tuple[str, ...]] | None:
        return frozenset(tuple(path) for value in values for path in value.get("taxonomy") or [] if path) or None

    def compare(self, truth: frozenset[tuple[str, ...]] | None, predicted: frozenset[tuple[str, ...]] | None) -> bool:
        truth, predicted = truth or frozenset(), predicted or frozenset()
        depth = max(len(path) for path in truth | predicted)
        for level in range(1, depth + 1):
            truth_cut = {path[:level] for path in truth if len(path) >= level}
            predicted_cut = {path[:level] for path in predicted if len(path) >= level}
            self.level_items[level] += 1
            self.level_correct[level] += truth_cut == predicted_cut
        self.exact += truth == predicted
        return truth == predicted

    def show(self, answer: frozenset[tuple[str, ...]]) -> str:
        return listed([" / ".join(path) for path in sorted(answer)])

    def metrics(self) -> dict[str, float | None]:
        figures = {"path_accuracy": ratio(self.exact, self.items)}
        for level in sorted(self.level_items):
            figures[f"level_{level}_accuracy"] = ratio(self.level_correct[level], self.level_items[level])
        return figures


class NumericScorer(Scorer):
    """Rating and Number: exact-match accuracy over every item, mean absolute error over the items where
    both sides gave a value (a missing value has no distance)."""

    kind = "numeric"

    def __init__(self, control: SdkControl) -> None:
        super().__init__(control)
        self.value_key = control.tag.lower()
        self.exact = 0
        self.compared = 0
        self.absolute_error = 0.0

    def read(self, values: list[dict[str, Any]]) -> float | None:
        found = [value.get(self.value_key) for value in values]
        numbers = [float(item) for item in found if isinstance(item, int | float) and not isinstance(item, bool)]
        return numbers[0] if numbers else None

    def compare(self, truth: float | None, predicted: float | None) -> bool:
        if truth is not None and predicted is not None:
            self.compared += 1
            self.absolute_error += abs(truth - predicted)
        self.exact += truth == predicted
        return truth == predicted

    def show(self, answer: float) -> str:
        return f"{answer:g}"

    def metrics(self) -> dict[str, float | None]:
        return {"accuracy": ratio(self.exact, self.items), "mae": ratio(self.absolute_error, self.compared)}


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def answer_tokens(text: str) -> list[str]:
    """SQuAD's answer normalisation: lower case, no punctuation or symbols, no English articles."""
    text = "".join(" " if unicodedata.category(char)[0] in "PS" else char for char in text.lower())
    return _ARTICLES.sub(" ", text).split()


def token_f1(truth: str, predicted: str) -> float:
    """SQuAD's token F1: the overlap of the two bags of answer tokens (1.0 when both are empty)."""
    truth_tokens, predicted_tokens = answer_tokens(truth), answer_tokens(predicted)
    if not truth_tokens or not predicted_tokens:
        return float(truth_tokens == predicted_tokens)
    shared = sum((Counter(truth_tokens) & Counter(predicted_tokens)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted_tokens), shared / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


class TextScorer(Scorer):
    """TextArea: exact match after collapsing whitespace, and SQuAD-style token F1.  A TextArea's several
    texts are read as one answer."""

    kind = "text"

    def __init__(self, control: SdkControl) -> None:
        super().__init__(control)
        self.exact = 0
        self.f1_total = 0.0

    def read(self, values: list[dict[str, Any]]) -> str | None:
        text = " ".join(" ".join(value.get("text") or []) for value in values)
        return " ".join(text.split()) or None

    def compare(self, truth: str | None, predicted: str | None) -> bool:
        self.f1_total += token_f1(truth or "", predicted or "")
        self.exact += truth == predicted
        return truth == predicted

    def show(self, answer: str) -> str:
        return shorten(answer)

    def metrics(self) -> dict[str, float | None]:
        return {"exact_match": ratio(self.exact, self.items), "token_f1": ratio(self.f1_total, self.items)}


def _choices_scorer(control: SdkControl) -> Scorer:
    return MultiChoiceScorer(control) if control.attr.get("choice") == "multiple" else SingleChoiceScorer(control)


SCORERS: dict[str, Callable[[SdkControl], Scorer]] = {
    "Choices": _choices_scorer,
    "Labels": SpanScorer,
    "ParagraphLabels": SpanScorer,
    "Taxonomy": TaxonomyScorer,
    "Rating": NumericScorer,
    "Number": NumericScorer,
    "TextArea": TextScorer,
}


def scorer_for(control: SdkControl) -> Scorer | None:
    """The scorer for a control tag, or None for a type this module does not score."""
    make = SCORERS.get(control.tag)
    return make(control) if make else None
