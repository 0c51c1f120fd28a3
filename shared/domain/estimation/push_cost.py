"""What one ``import/predictions`` call costs Label Studio, learned per project from the calls made.

Label Studio's cost of a call is a part per call that grows with the project (by default it recounts every task
of the project after each import, whatever the call's size: docs/operating.md) plus a part per prediction sent
(with its flag ``fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short`` only the latter
remains).  ``PushCost`` fits

    seconds = per_call + growth × predictions sent before + per_prediction × size

to the last calls (the project grows by what is pushed; the intercept covers what it held before) and derives
from it

- the next call's size: as many predictions as fit in ``target`` seconds, but never so few that the per-call part
  is more than half of the call (``AMORTIZE``): when the per-call part alone takes about ``target``, a call of 100
  costs nearly as much as one of 5,000, and only larger calls make a prediction cheaper; when it takes longer than
  ``target``, the most allowed (a machine whose load swings makes the per-prediction slope noisy: it never shrinks
  calls the target cannot be met with anyway);
- its read timeout: ``TIMEOUT_FACTOR`` times what the call should cost (never less than the last call took, as
  the project only grows), between the operator's floor and cap: a call that outgrows the last ones by a factor
  of four still ends with Label Studio's answer instead of an unknown outcome.

While the calls' sizes are alike the two parts cannot be told apart: a cost that grows with the project while the
size stays is the per-call part (the size stays); otherwise the next call differs enough to tell them apart at the
next fit: the target's worth if the cost were all per prediction, but (over the target) four times larger when the
calls were below the largest (``GROW``: a first call of 208 predictions that took 57 s is followed by one of 832,
not of 36) and at most halved when they were the largest (``PROBE``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TIMEOUT_FACTOR = 4.0
SAMPLES = 12  # calls remembered: enough to span the sizes a job's last calls take, recent enough to follow growth
DISTINCT_SIZES = 0.2  # the calls' sizes must spread this much (relative) before the per-call part can be told apart
AMORTIZE = 1.0  # a call is at least this many times its per-call part's worth of predictions (the part ≤ half)
GROWTH = 0.2  # a cost that rose this much (relative) over the remembered calls grows with the project
GROW = 4  # sizes alike and over the target: calls well below the largest are followed by one this much larger,
PROBE = 0.5  # calls of about the largest by one at least this share of them


@dataclass(frozen=True)
class CostModel:
    """A call's cost for the project as it is now: ``per_call + per_prediction × size`` seconds.

    ``per_prediction`` is None while the calls' sizes were too alike to tell it from the per-call part; then
    ``per_call`` is what a call of ``size`` (the calls' mean size) costs, and ``grows`` says whether that cost rose
    with the project."""

    per_call: float
    per_prediction: float | None
    size: int
    grows: bool


@dataclass
class PushCost:
    target: float  # seconds one call should take
    min_batch: int
    max_batch: int
    timeout_floor: float
    timeout_cap: float
    _calls: deque[tuple[int, float, int]] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    _sent: int = 0

    def observe(self, size: int, seconds: float) -> None:
        """A call of ``size`` predictions got Label Studio's answer after ``seconds`` (or its read timeout did:
        then the call costs at least that, and the next one's timeout is ``TIMEOUT_FACTOR`` times longer)."""
        if size > 0:
            self._calls.append((size, max(0.0, seconds), self._sent))
            self._sent += size

    @property
    def last_seconds(self) -> float:
        return self._calls[-1][1] if self._calls else 0.0

    def model(self) -> CostModel | None:
        """The fit over the remembered calls (least squares), or None before any call.  A slope that comes out
        negative (noise, or Label Studio warming up) is left out and the rest fitted again."""
        if not self._calls:
            return None
        sizes = [float(size) for size, _, _ in self._calls]
        befores = [float(before) for _, _, before in self._calls]
        times = [seconds for _, seconds, _ in self._calls]
        mean_size = sum(sizes) / len(sizes)
        sizes_apart = max(sizes) - min(sizes) >= DISTINCT_SIZES * mean_size
        columns = {"size": sizes} if sizes_apart else {}
        if max(befores) > min(befores):
            columns["growth"] = befores
        while True:
            fitted = _least_squares(list(columns.values()), times)
            slopes = dict(zip(columns, fitted[1:], strict=True))
            negative = [name for name, slope in slopes.items() if slope < 0]
            if not negative:
                break
            del columns[negative[0]]
        growth = slopes.get("growth", 0.0)
        per_call = max(0.0, fitted[0] + growth * self._sent)
        grows = growth * (max(befores) - min(befores)) >= GROWTH * sum(times) / len(times)
        return CostModel(per_call, slopes.get("size"), round(mean_size), grows)

    def estimate(self, size: int) -> float | None:
        """Seconds a call of ``size`` predictions should take now (None before any call)."""
        fitted = self.model()
        if fitted is None:
            return None
        if fitted.per_prediction is None:  # unknown split: the dearer reading for a larger call
            return fitted.per_call * max(1.0, size / fitted.size)
        return fitted.per_call + fitted.per_prediction * size

    def batch_size(self) -> int:
        """Predictions to send in the next call."""
        fitted = self.model()
        if fitted is None:
            return self.max_batch
        if fitted.per_prediction is None:
            if fitted.grows or fitted.per_call <= 0:  # the size stayed and the cost grew: it is the per-call part
                return self.max_batch
            wanted = fitted.size * self.target / fitted.per_call  # all of it per prediction: the target's worth
            if wanted < fitted.size and fitted.size < (1 - DISTINCT_SIZES) * self.max_batch:
                return self._within(GROW * fitted.size)  # cheaper a prediction, should the per-call part dominate
            return self._within(max(wanted, PROBE * fitted.size))
        if fitted.per_prediction <= 0 or fitted.per_call >= self.target:  # the target is out of reach: only larger
            return self.max_batch  # calls make a prediction cheaper (and a noisy slope never shrinks them)
        within_target = (self.target - fitted.per_call) / fitted.per_prediction
        amortized = AMORTIZE * fitted.per_call / fitted.per_prediction
        return self._within(max(within_target, amortized))

    def _within(self, size: float) -> int:
        return max(self.min_batch, min(self.max_batch, round(size)))

    def read_timeout(self, size: int) -> float:
        """How long to wait for Label Studio's answer to a call of ``size`` predictions."""
        expected = max(self.estimate(size) or 0.0, self.last_seconds)
        return min(self.timeout_cap, max(self.timeout_floor, TIMEOUT_FACTOR * expected))


def _least_squares(columns: list[list[float]], ys: list[float]) -> list[float]:
    """Intercept and slopes of ``ys`` over ``columns`` (ordinary least squares, columns centred on their means);
    a slope whose column is collinear with the others comes out 0."""
    count = len(ys)
    mean_y = sum(ys) / count
    means = [sum(column) / count for column in columns]
    centred = [[value - mean for value in column] for column, mean in zip(columns, means, strict=True)]
    # the normal equations, solved by Gaussian elimination with partial pivoting
    rows = [
        [sum(a * b for a, b in zip(left, right, strict=True)) for right in centred]
        + [sum(a * (y - mean_y) for a, y in zip(left, ys, strict=True))]
        for left in centred
    ]
    width = len(columns)
    for pivot in range(width):
        best = max(range(pivot, width), key=lambda row: abs(rows[row][pivot]))
        rows[pivot], rows[best] = rows[best], rows[pivot]
        scale = abs(rows[pivot][pivot])
        if scale <= 1e-6 * max(1.0, max(abs(value) for value in rows[pivot][:width])):
            rows[pivot] = [0.0] * (width + 1)  # collinear: this slope stays 0
            continue
        for row in range(width):
            if row != pivot:
                factor = rows[row][pivot] / rows[pivot][pivot]
                rows[row] = [a - factor * b for a, b in zip(rows[row], rows[pivot], strict=True)]
    slopes = [rows[i][width] / rows[i][i] if rows[i][i] else 0.0 for i in range(width)]
    return [mean_y - sum(slope * mean for slope, mean in zip(slopes, means, strict=True)), *slopes]
