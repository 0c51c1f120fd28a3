"""How far a prediction's score can be trusted, per control: reliability buckets, ECE and review thresholds.

Each item a control scores (see ``scorers``) is one ``(score, right or wrong)`` pair, the score being the
prediction's (or its regions', see ``scoring``).  From those pairs:

- the **reliability table**: the items in ``BUCKETS`` equal score ranges (``[0, 0.1)`` … ``[0.9, 1]``), with
  their mean score and their accuracy.  A calibrated score has accuracy close to its mean score in every bucket;
- the **expected calibration error** (ECE): the buckets' ``|accuracy - mean score|``, weighted by their share of
  the items.  0 is perfectly calibrated; 0.2 says a score is on average 20 points off what it promises;
- for each target precision (``DEFAULT_PRECISIONS``), the **threshold**: the lowest score ``t`` such that the
  items scored ``>= t`` are at least that precise, with their share of the items.  A team accepts the
  predictions at or above it and reviews the rest (Label Studio's Data Manager sorts by prediction score).

The tally keeps counts per score (rounded to ``SCORE_PLACES`` places, as the backend writes scores), not the
items, so a 100,000-task project is calibrated in little memory.  Items without a score are counted apart.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

BUCKETS = 10
DEFAULT_PRECISIONS = (0.9, 0.95, 0.99)
SCORE_PLACES = 4
_EPSILON = 1e-9  # float slack: a bucket edge such as 0.3 * 10, a precision such as 19 / 20 >= 0.95


@dataclass(frozen=True)
class Bucket:
    """The items scored in ``[low, high)`` (the last bucket includes 1.0)."""

    low: float
    high: float
    items: int
    mean_score: float | None
    accuracy: float | None


@dataclass(frozen=True)
class Threshold:
    """For a ``target`` precision: ``score`` is the lowest score reaching it (None: no score does), ``precision``
    what the items at or above it reach, ``items`` how many they are and ``share`` their share of the items."""

    target: float
    score: float | None
    precision: float | None
    items: int
    share: float | None


@dataclass(frozen=True)
class Calibration:
    """The calibration of one control: ``items`` had a score, ``unscored`` had none (a prediction without one)."""

    items: int
    unscored: int
    ece: float | None
    buckets: list[Bucket]
    thresholds: list[Threshold]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            items=data["items"],
            unscored=data["unscored"],
            ece=data["ece"],
            buckets=[Bucket(**bucket) for bucket in data["buckets"]],
            thresholds=[Threshold(**threshold) for threshold in data["thresholds"]],
        )


def bucket_of(score: float) -> int:
    return min(int(score * BUCKETS + _EPSILON), BUCKETS - 1)


class ScoreTally:
    """Right and wrong items per score, for one control."""

    def __init__(self) -> None:
        self.right: Counter[float] = Counter()
        self.wrong: Counter[float] = Counter()
        self.unscored = 0

    def add(self, score: float | None, correct: bool) -> None:
        if score is None:
            self.unscored += 1
            return
        key = round(min(max(float(score), 0.0), 1.0), SCORE_PLACES)
        (self.right if correct else self.wrong)[key] += 1

    def _buckets(self) -> list[Bucket]:
        items, right, total = [0] * BUCKETS, [0] * BUCKETS, [0.0] * BUCKETS
        for score in self.right.keys() | self.wrong.keys():
            index, count = bucket_of(score), self.right[score] + self.wrong[score]
            items[index] += count
            right[index] += self.right[score]
            total[index] += score * count
        return [
            Bucket(
                low=index / BUCKETS,
                high=(index + 1) / BUCKETS,
                items=items[index],
                mean_score=total[index] / items[index] if items[index] else None,
                accuracy=right[index] / items[index] if items[index] else None,
            )
            for index in range(BUCKETS)
        ]

    def _threshold(self, target: float, count: int) -> Threshold:
        """Walk the scores from the highest down, keeping the lowest one whose items at or above reach ``target``."""
        best = Threshold(target, None, None, 0, None)
        right = wrong = 0
        for score in sorted(self.right.keys() | self.wrong.keys(), reverse=True):
            right, wrong = right + self.right[score], wrong + self.wrong[score]
            precision = right / (right + wrong)
            if precision >= target - _EPSILON:
                best = Threshold(target, score, precision, right + wrong, (right + wrong) / count)
        return best

    def calibration(self, targets: tuple[float, ...] = DEFAULT_PRECISIONS) -> Calibration:
        buckets = self._buckets()
        count = sum(bucket.items for bucket in buckets)
        ece = (
            sum(
                bucket.items / count * abs(bucket.accuracy - bucket.mean_score)
                for bucket in buckets
                if bucket.accuracy is not None and bucket.mean_score is not None
            )
            if count
            else None
        )
        thresholds = [self._threshold(target, count) for target in targets]
        return Calibration(count, self.unscored, ece, buckets, thresholds)
