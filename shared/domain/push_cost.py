"""What one ``import/predictions`` call costs Label Studio, learned per project from the calls made.

Label Studio's cost of a call is a fixed part that grows with the project (by default it recounts every task of
the project after each import: 4 s at 10,000 predictions, 50 s at 70,000) plus a part per prediction sent (with
its flag ``fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short`` only the latter remains).
``PushCost`` fits ``seconds = fixed + per_prediction × size`` to the last calls and derives from it

- the next call's size: as many predictions as fit in ``target`` seconds, or the most allowed when the fixed
  part alone takes that long (then only larger calls make a prediction cheaper);
- its read timeout: ``TIMEOUT_FACTOR`` times what the call should cost (never less than the last call took, as
  the project only grows), between the operator's floor and cap: a call that outgrows the last ones by a factor
  of four still ends with Label Studio's answer instead of an unknown outcome.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TIMEOUT_FACTOR = 4.0
SAMPLES = 12  # calls remembered: enough to span the sizes a job's last calls take, recent enough to follow growth
DISTINCT_SIZES = 0.2  # the calls' sizes must spread this much (relative) before the fixed part can be told apart


@dataclass
class PushCost:
    target: float  # seconds one call should take
    min_batch: int
    max_batch: int
    timeout_floor: float
    timeout_cap: float
    _calls: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=SAMPLES))

    def observe(self, size: int, seconds: float) -> None:
        """A call of ``size`` predictions got Label Studio's answer after ``seconds``."""
        if size > 0:
            self._calls.append((size, max(0.0, seconds)))

    @property
    def last_seconds(self) -> float:
        return self._calls[-1][1] if self._calls else 0.0

    def model(self) -> tuple[float, float] | None:
        """``(fixed seconds, seconds per prediction)``, or None before any call.

        Least squares over the remembered calls; while their sizes are alike the fixed part cannot be told from
        the rest, and all of the cost is taken as per prediction (the next call, sized from that, differs)."""
        if not self._calls:
            return None
        sizes = [size for size, _ in self._calls]
        times = [seconds for _, seconds in self._calls]
        mean_size, mean_time = sum(sizes) / len(sizes), sum(times) / len(times)
        spread = sum((size - mean_size) ** 2 for size in sizes)
        if max(sizes) - min(sizes) < DISTINCT_SIZES * mean_size or spread == 0:
            return 0.0, mean_time / mean_size
        per_prediction = sum((s - mean_size) * (t - mean_time) for s, t in self._calls) / spread
        per_prediction = max(0.0, per_prediction)
        fixed = max(0.0, mean_time - per_prediction * mean_size)
        return fixed, per_prediction

    def estimate(self, size: int) -> float | None:
        """Seconds a call of ``size`` predictions should take (None before any call)."""
        fitted = self.model()
        return None if fitted is None else fitted[0] + fitted[1] * size

    def batch_size(self) -> int:
        """Predictions to send in the next call."""
        fitted = self.model()
        if fitted is None:
            return self.max_batch
        fixed, per_prediction = fitted
        if fixed >= self.target or per_prediction <= 0:
            return self.max_batch
        return max(self.min_batch, min(self.max_batch, int((self.target - fixed) / per_prediction)))

    def read_timeout(self, size: int) -> float:
        """How long to wait for Label Studio's answer to a call of ``size`` predictions."""
        expected = max(self.estimate(size) or 0.0, self.last_seconds)
        return min(self.timeout_cap, max(self.timeout_floor, TIMEOUT_FACTOR * expected))
