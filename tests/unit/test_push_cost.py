"""The pusher's cost model: calls sized and timed from what Label Studio's last calls cost.

Two regimes of Label Studio 1.23.2, as measured at 100,000 tasks (bench/README.md, scenario 7): with its
memory-efficient import flag a call costs about 2 ms a prediction and little else; without it each call recounts
the whole project, 7 s at first and 87 s at 70,000 predictions, whatever the call's size."""

from __future__ import annotations

import pytest

from shared.domain.estimation.push_cost import TIMEOUT_FACTOR, PushCost


def cost(**overrides) -> PushCost:
    values = {"target": 10.0, "min_batch": 100, "max_batch": 5000, "timeout_floor": 60.0, "timeout_cap": 900.0}
    return PushCost(**(values | overrides))


def with_flag(size: int, project: int) -> float:
    """Seconds of a call with the flag: per prediction only, whatever the project holds."""
    return 0.3 + 0.002 * size


def without_flag(size: int, project: int) -> float:
    """Seconds of a call without the flag: the project recounted (``project`` predictions before the call)."""
    return 6.0 + 0.0011 * project + 0.0005 * size


def run(model: PushCost, costs, calls: int) -> list[tuple[int, float, float]]:
    """``calls`` calls sized by the model, as the pusher makes them: (size, read timeout, seconds) each."""
    made, project = [], 0
    for _ in range(calls):
        size = model.batch_size()
        timeout, seconds = model.read_timeout(size), costs(size, project)
        model.observe(size, seconds)
        made.append((size, timeout, seconds))
        project += size
    return made


def test_before_any_call_the_largest_batch_and_the_floor():
    model = cost()
    assert model.model() is None
    assert model.batch_size() == 5000
    assert model.read_timeout(5000) == 60.0


def test_with_the_flag_the_cost_is_per_prediction_and_calls_are_sized_to_the_target():
    model = cost()
    for size in (5000, 3000, 1000, 4000):
        model.observe(size, with_flag(size, 0))
    fitted = model.model()
    assert fitted.per_call == pytest.approx(0.3) and fitted.per_prediction == pytest.approx(0.002)
    assert model.batch_size() == 4850, "(10 s - 0.3 s) / 2 ms: the target is within reach"
    assert model.estimate(4850) == pytest.approx(10.0)


def test_with_the_flag_calls_sized_by_the_model_settle_at_the_target():
    calls = run(cost(), with_flag, 12)
    assert calls[0][0] == 5000
    assert all(size == pytest.approx(4850, rel=0.01) for size, _, _ in calls[1:]), "(10 s - 0.3 s) / 2 ms"
    assert all(seconds == pytest.approx(10.0, rel=0.01) for _, _, seconds in calls[1:])


def test_without_the_flag_the_per_call_part_is_told_from_the_size_and_grows_with_the_project():
    """Calls of several sizes on a growing project: the fit finds the project's part, not a cost per prediction
    (ignoring the growth, a 1,000 call made early and a 5,000 one made late would look like 6 ms a prediction)."""
    model, project = cost(), 0
    for size in (1000, 5000, 2000, 5000, 3000):
        model.observe(size, without_flag(size, project))
        project += size
    fitted = model.model()
    assert fitted.per_prediction == pytest.approx(0.0005)
    assert fitted.per_call == pytest.approx(6.0 + 0.0011 * project), "what a call costs the project as it is now"
    assert model.estimate(5000) == pytest.approx(without_flag(5000, project))
    assert model.batch_size() == 5000, "the per-call part alone is over the target: only larger calls help"


def test_without_the_flag_a_call_is_never_small_when_the_per_call_part_is_near_the_target():
    """The run that made a 100-prediction call after a 5,000 one of 36 s: with the per-call part just under the
    target, 'what fits in the target' is a handful, each call as dear as a full one.  A call is now at least as
    large as the per-call part's worth of predictions."""
    model = cost()
    for size in (5000, 1000, 3000):
        model.observe(size, 9.0 + 0.002 * size)  # 9 s a call, under the 10 s target, 2 ms a prediction
    assert (10.0 - 9.0) / 0.002 == 500, "all the target leaves room for"
    assert model.batch_size() == 4500, "9 s / 2 ms: the per-call part is at most half of the call"


def test_without_the_flag_calls_sized_by_the_model_stay_large_and_never_time_out():
    calls = run(cost(), without_flag, 20)
    assert all(size == 5000 for size, _, _ in calls), "every call the largest: each costs the project"
    assert calls[-1][2] > 100, "the last calls take far longer than the 60 s floor"
    assert all(timeout >= 2 * seconds for _, timeout, seconds in calls), "a timeout well past each call's cost"


def test_calls_of_one_size_on_a_project_of_one_size_probe_a_smaller_call_to_tell_the_parts_apart():
    model = cost()
    model.observe(5000, 20.0)
    model.observe(5000, 20.0)
    fitted = model.model()
    assert (fitted.per_call, fitted.per_prediction) == (pytest.approx(20.0), None)
    assert model.batch_size() == 2500, "half the size (not the 2,500 the target would ask for if all per prediction)"
    model.observe(2500, 19.0)
    assert model.model().per_call > 10.0
    assert model.batch_size() == 5000


def test_a_small_first_call_over_the_target_is_followed_by_a_larger_one():
    """The 100,000-task run without the flag, on a loaded machine: the job's first call carried the 208 predictions
    made by then and took 57.6 s.  Read as all per prediction (0.28 s each) the next call would carry 36; it
    carries four times as many, and the fit that follows finds the per-call part."""
    model = cost()
    model.observe(208, without_flag(208, 0) * 9)
    assert model.batch_size() == 4 * 208
    model.observe(832, without_flag(832, 208) * 9)
    assert model.batch_size() == 5000


def test_a_per_call_part_over_the_target_keeps_calls_largest_however_noisy_the_slope():
    """The calls of the 100,000-task run without the flag on a machine whose load swung (2026-12-07): 5,000 a call
    at 110-229 s, costs falling as the load did.  The fit's per-prediction slope took up the swing (20 ms a
    prediction) and sized the next calls 3,828 then 3,197; the per-call part alone is far over the target, so the
    calls stay the largest."""
    model = cost()
    for size, seconds in [(292, 25.24), (1168, 39.38), (1272, 71.32)] + [
        (5000, seconds) for seconds in (109.88, 142.71, 143.84, 191.06, 229.35, 222.18, 155.13, 175.66)
    ]:
        model.observe(size, seconds)
    assert model.model().per_call > 10.0
    assert model.batch_size() == 5000


def test_the_read_timeout_follows_the_cost_as_the_project_grows():
    """Calls of 5,000 costing 4, 8, 14, 24, 28, 50 s as the project grows: each call's timeout is four times the
    cost expected of it (the growth carried forward), never below what the last call took: none times out."""
    model = cost()
    durations = [4.0, 8.0, 14.0, 24.0, 28.0, 50.0]
    timeouts = []
    for seconds in durations:
        timeouts.append(model.read_timeout(5000))
        assert model.batch_size() == 5000
        model.observe(5000, seconds)
    assert timeouts[0] == 60.0
    assert all(timeout >= 2 * seconds for timeout, seconds in zip(timeouts, durations, strict=True))
    assert model.read_timeout(5000) == pytest.approx(TIMEOUT_FACTOR * model.estimate(5000))
    assert model.estimate(5000) > 50.0, "the next call costs more than the last: the project grew"


def test_the_read_timeout_stays_within_floor_and_cap():
    model = cost(timeout_floor=0.5, timeout_cap=120.0)
    model.observe(100, 0.01)
    assert model.read_timeout(100) == 0.5
    model.observe(5000, 400.0)
    assert model.read_timeout(5000) == 120.0


def test_a_call_that_outlived_its_read_timeout_makes_the_next_wait_four_times_as_long():
    """A fresh worker's first call to a project that already costs 90 s a call (no flag, 60,000 predictions)
    times out at the 60 s floor; the pusher counts it as a call of at least 60 s, so the next one waits 240 s and
    gets Label Studio's answer instead of another unknown outcome and read-back."""
    model = cost()
    assert model.read_timeout(5000) == 60.0
    model.observe(5000, 60.0)  # what the pusher records of a call whose read timed out
    assert model.read_timeout(5000) == 4 * 60.0 > 90.0
