"""The pusher's cost model: calls sized and timed from what Label Studio's last calls cost."""

from __future__ import annotations

import pytest

from shared.domain.push_cost import TIMEOUT_FACTOR, PushCost


def cost(**overrides) -> PushCost:
    values = {"target": 10.0, "min_batch": 100, "max_batch": 5000, "timeout_floor": 60.0, "timeout_cap": 900.0}
    return PushCost(**(values | overrides))


def test_before_any_call_the_largest_batch_and_the_floor():
    model = cost()
    assert model.model() is None
    assert model.batch_size() == 5000
    assert model.read_timeout(5000) == 60.0


def test_a_cost_per_prediction_sizes_calls_to_the_target():
    """Label Studio with its memory-efficient import flag: a call costs about 1 ms per prediction."""
    model = cost()
    for size in (5000, 3000, 1000, 4000):
        model.observe(size, 0.05 + 0.001 * size)
    fixed, per_prediction = model.model()
    assert fixed == pytest.approx(0.05) and per_prediction == pytest.approx(0.001)
    assert model.batch_size() == 5000, "5,000 predictions take 5 s, within the 10 s target"
    slow = cost(target=2.0)
    for size in (5000, 3000, 1000, 4000):
        slow.observe(size, 0.05 + 0.001 * size)
    assert slow.batch_size() == int((2.0 - 0.05) / 0.001)


def test_a_fixed_cost_over_the_target_keeps_calls_large():
    """Label Studio's default import recounts the whole project: 24 s per call whatever its size. Smaller calls
    would cost as much each, so the batch stays at its largest."""
    model = cost()
    for size in (5000, 2500, 5000, 1200):
        model.observe(size, 24.0 + 0.0001 * size)
    assert model.model()[0] == pytest.approx(24.0)
    assert model.batch_size() == 5000


def test_calls_of_one_size_count_all_cost_per_prediction_until_sizes_differ():
    model = cost()
    model.observe(5000, 20.0)
    model.observe(5000, 20.0)
    assert model.model() == (0.0, pytest.approx(20.0 / 5000))
    assert model.batch_size() == 2500, "half the size to learn what the fixed part is"
    model.observe(2500, 19.0)
    assert model.model()[0] > 10.0
    assert model.batch_size() == 5000


def test_the_read_timeout_follows_the_cost_as_the_project_grows():
    """The calls of the 100,000-task run: 4, 8, 14, 24, 28, 50 s per 5,000. Each call's timeout is four times
    the cost expected of it, never below what the last call took: no call here would have timed out."""
    model = cost()
    durations = [4.0, 8.0, 14.0, 24.0, 28.0, 50.0]
    timeouts = []
    for seconds in durations:
        timeouts.append(model.read_timeout(5000))
        model.observe(5000, seconds)
    assert timeouts[0] == 60.0
    assert all(timeout > seconds for timeout, seconds in zip(timeouts, durations, strict=True))
    assert timeouts == [60.0, 60.0, 60.0, 60.0, 4 * 24.0, 4 * 28.0]
    assert model.read_timeout(5000) == TIMEOUT_FACTOR * 50.0, "the last call, though the mean is less"


def test_the_read_timeout_stays_within_floor_and_cap():
    model = cost(timeout_floor=0.5, timeout_cap=120.0)
    model.observe(100, 0.01)
    assert model.read_timeout(100) == 0.5
    model.observe(5000, 400.0)
    assert model.read_timeout(5000) == 120.0
