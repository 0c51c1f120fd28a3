"""A run's cost and duration, worked out by hand: 1,000 tasks, 100 already cached, 500 input and 50 output
tokens a request (so 900 requests of 550 tokens), gpt-4o-mini at $0.15 / $0.60 per million."""

from __future__ import annotations

import json

import pytest

from shared.domain.estimation.estimate import estimate_run

GPT_4O_MINI = (0.15, 0.60)


def run(**overrides):
    figures = {
        "tasks": 1_000,
        "cache_hits": 100,
        "input_tokens": [400, 600],  # a sample of tasks: mean 500
        "output_tokens": 50,
        "price": GPT_4O_MINI,
        "latency_seconds": 2.0,
        "workers": 2,
        "concurrency": 10,
    }
    return estimate_run(**(figures | overrides))


def test_tokens_and_cost_live_and_batch() -> None:
    estimate = run(batch_price_factor=0.5)

    assert estimate.requests == 900
    assert estimate.cache_hits == 100
    assert estimate.input_tokens == 450_000
    assert estimate.output_tokens == 45_000
    # 450,000 × 0.15 / 1M + 45,000 × 0.60 / 1M = 0.0675 + 0.027
    assert estimate.cost_usd == pytest.approx(0.0945)
    assert estimate.batch_cost_usd == pytest.approx(0.04725)
    assert run().batch_cost_usd is None  # not asked


def test_concurrency_binds_without_rate_limits() -> None:
    estimate = run()
    # 2 workers × 10 in flight / 2 s = 10 requests a second = 600 a minute
    assert estimate.requests_per_minute == {"concurrency": pytest.approx(600.0), "rpm": None, "tpm": None}
    assert estimate.binding_limit == "concurrency"
    assert estimate.duration_seconds == pytest.approx(900 / 600 * 60)


def test_rpm_binds_when_it_is_the_tightest() -> None:
    estimate = run(rpm=300, tpm=1_000_000)  # tpm allows 1,000,000 / 550 ≈ 1,818 a minute
    assert estimate.binding_limit == "rpm"
    assert estimate.duration_seconds == pytest.approx(900 / 300 * 60)


def test_tpm_binds_on_input_and_output_tokens() -> None:
    estimate = run(rpm=300, tpm=110_000)  # 110,000 / (500 + 50) = 200 a minute
    assert estimate.requests_per_minute["tpm"] == pytest.approx(200.0)
    assert estimate.binding_limit == "tpm"
    assert estimate.duration_seconds == pytest.approx(900 / 200 * 60)


def test_a_single_request_still_takes_one_latency() -> None:
    estimate = run(tasks=1, cache_hits=0, concurrency=100, latency_seconds=5.0)
    assert estimate.duration_seconds == pytest.approx(5.0)


def test_everything_cached_costs_nothing_and_takes_no_time() -> None:
    estimate = run(cache_hits=1_000, input_tokens=[])
    assert (estimate.requests, estimate.cost_usd, estimate.duration_seconds) == (0, 0.0, 0.0)
    assert estimate.binding_limit is None
    assert run(cache_hits=5_000).cache_hits == 1_000  # never more hits than tasks


def test_a_model_without_a_price_has_no_cost() -> None:
    estimate = run(price=None, batch_price_factor=0.5)
    assert estimate.cost_usd is None
    assert estimate.batch_cost_usd is None


def test_the_stored_form_says_which_limit_binds() -> None:
    stored = json.loads(json.dumps(run(rpm=300).as_dict()))
    assert stored["binding_limit"] == "rpm"
    assert stored["requests_per_minute"] == {"concurrency": 600.0, "rpm": 300.0, "tpm": None}
    assert stored["duration_seconds"] == pytest.approx(180.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tasks": -1}, "tasks cannot be negative"),
        ({"rpm": -5}, "rpm cannot be negative"),
        ({"latency_seconds": 0}, "latency_seconds must be positive"),
        ({"concurrency": 0}, "concurrency at least 1"),
        ({"input_tokens": []}, "count the prompt tokens of at least one task"),
    ],
)
def test_impossible_figures_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(**overrides)
