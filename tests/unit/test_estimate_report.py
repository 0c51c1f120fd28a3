"""A project's estimate as text and JSON, the BATCH_CONFIRM_USD rule, and the task sample it rests on."""

from __future__ import annotations

import json

import pytest

from shared.domain.estimation.estimate import estimate_run
from shared.estimation import evenly_spaced
from shared.reports.estimate_report import ProjectEstimate, confirmation_reason, duration_text, render_estimate, usd


def estimate(price: tuple[float, float] | None = (0.15, 0.60), tasks: int = 1_000, **overrides) -> ProjectEstimate:
    run = estimate_run(
        tasks=tasks - 10,
        input_tokens=[500],
        output_tokens=50,
        price=price,
        latency_seconds=2.0,
        cache_hits=90,
        workers=2,
        concurrency=10,
        batch_price_factor=0.5,
    )
    fields = {
        "project": 7,
        "model": "gpt-4o-mini",
        "model_version": "gpt-4o-mini-abc",
        "tasks_seen": 1_200,
        "tasks": tasks,
        "failing": 10,
        "run": run,
        "sampled": 1_000,
        "encoding": "o200k_base",
        "exact_encoding": True,
        "calibration": 1.25,
        "calibration_requests": 40,
        "input_tokens_per_request": 500.0,
        "output_tokens_per_request": 50,
        "output_source": "40 cached answers of this prompt",
        "latency_seconds": 2.0,
        "latency_source": "observed mean",
        "workers": 2,
        "workers_source": "live",
        "concurrency": 10,
        "price": price,
        "batch_price_factor": 0.5,
    }
    return ProjectEstimate(**(fields | overrides))


def test_text_names_every_figure_and_where_it_came_from() -> None:
    text = render_estimate(estimate())

    # 990 tasks to request, 90 cached: 900 requests of 500 in and 50 out; 600 requests/min at 2 s, 20 in flight.
    assert "estimate for project 7: model gpt-4o-mini, version gpt-4o-mini-abc" in text
    assert "tasks to predict: 1000 of 1200 (200 labeled or holding this version)" in text
    assert "expected to fail without a call: 10 (their request cannot be built)" in text
    assert "expected cache hits: 90; requests: 900" in text
    assert "input tokens: 450,000 (500 a request; 1000 prompts built and counted with o200k_base; " in text
    assert "calibrated x1.250 on 40 answered requests of this prompt)" in text
    assert "output tokens: 45,000 (50 a request, from 40 cached answers of this prompt)" in text
    assert "cost: $0.0945 (at $0.15 / $0.6 per million tokens in / out); $0.0473 at a Batch API price (50%)" in text
    assert "duration: 1 min 30 s, bound by concurrency (2 worker slots (live) x 10 calls at 2.00 s" in text
    assert "requests a minute: concurrency 600/min, rpm none, tpm none)" in text


def test_text_says_when_the_tasks_were_scaled_from_a_sample_of_the_first_pages() -> None:
    text = render_estimate(estimate(sampled_from=1_000, tasks_seen=100_000, tasks=99_000))
    assert (
        "tasks to predict: about 99000 of 100000 (1000 labeled or holding this version), from a sample of the first "
        "1000 tasks (the job's status counts them exactly)"
    ) in text
    assert "about" not in render_estimate(estimate())


def test_text_says_when_nothing_calibrates_or_prices_the_run() -> None:
    text = render_estimate(estimate(price=None, calibration=1.0, calibration_requests=0, exact_encoding=False))

    assert "not calibrated: no answered request of this prompt in the cache yet" in text
    assert "o200k_base, a stand-in for this model's tokenizer" in text
    assert "cost: unknown: no price for gpt-4o-mini (add it to LLM_PRICES)" in text


def test_json_holds_the_run_and_its_sources() -> None:
    data = json.loads(json.dumps(estimate().as_dict()))

    assert data["run"]["requests"] == 900 and data["run"]["cost_usd"] == pytest.approx(0.0945)
    assert data["tasks"] == 1000 and data["workers_source"] == "live" and data["price"] == [0.15, 0.6]


@pytest.mark.parametrize(
    ("threshold", "price", "asks"),
    [
        (None, (0.15, 0.60), None),  # unset: never asks
        (1.0, (0.15, 0.60), None),  # $0.0945 is below $1
        (0.05, (0.15, 0.60), "the estimated cost $0.0945 is above BATCH_CONFIRM_USD $0.05"),
        (0.0, (0.15, 0.60), "the estimated cost $0.0945 is above BATCH_CONFIRM_USD $0"),
        (0.00001, (0.15, 0.60), "the estimated cost $0.0945 is above BATCH_CONFIRM_USD $0.00001"),
        (10.0, None, "the cost is unknown (no price for gpt-4o-mini) and BATCH_CONFIRM_USD is $10"),
    ],
)
def test_confirmation_above_the_threshold_or_when_the_cost_is_unknown(threshold, price, asks) -> None:
    assert confirmation_reason(estimate(price=price), threshold) == asks


def test_nothing_to_request_needs_no_confirmation() -> None:
    cached = estimate_run(
        tasks=5, input_tokens=[], output_tokens=1, price=(1, 1), latency_seconds=1, cache_hits=5, batch_price_factor=0.5
    )
    assert confirmation_reason(estimate(run=cached), 0.0) is None


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (59, "59 s"), (90, "1 min 30 s"), (7380, "2 h 3 min")])
def test_durations_read_naturally(seconds, text) -> None:
    assert duration_text(seconds) == text


@pytest.mark.parametrize(("amount", "text"), [(1234.5, "$1,234.50"), (0.0945, "$0.0945"), (0.0000553, "$0.000055")])
def test_amounts_keep_the_digits_that_matter(amount, text) -> None:
    assert usd(amount) == text


def test_evenly_spaced_samples_evenly_and_keeps_small_lists_whole() -> None:
    tasks = [{"id": i, "data": {}} for i in range(10)]

    assert [task["id"] for task in evenly_spaced(tasks, 4)] == [0, 2, 5, 7]
    assert evenly_spaced(tasks, 10) == tasks and evenly_spaced(tasks, 50) == tasks
    assert evenly_spaced([], 3) == []
