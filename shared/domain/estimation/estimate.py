"""What a run over a project's tasks will cost and how long it will take, before it starts.

Tasks whose answer is already cached cost nothing and take no time; every other task is one request.
Cost is the price entry applied to the expected tokens (at the live price, and at a batch discount when
asked: the provider's Batch API bills a fraction of it, within its own completion window).

Duration is steady-state throughput under the tightest of three ceilings, in requests per minute:

- concurrency: ``workers × LLM_CONCURRENCY`` requests in flight, each taking the observed mean latency;
- ``LLM_RPM``: the shared request budget;
- ``LLM_TPM``: the shared token budget over the tokens of one request (input and output).

A limit of 0 is no limit.  The batch reserve left for interactive requests (``LLM_INTERACTIVE_SHARE``)
is a standing level in the bucket, not a share of the refill, so it does not slow a long run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from shared.domain.estimation.pricing import Price, cost_usd


@dataclass(frozen=True)
class RunEstimate:
    """The expected requests, tokens, cost and duration of a run; ``binding_limit`` names the ceiling
    (``concurrency``, ``rpm`` or ``tpm``) that sets the pace, ``requests_per_minute`` each one's value
    (None where there is no such limit)."""

    tasks: int
    cache_hits: int
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    batch_cost_usd: float | None
    duration_seconds: float
    binding_limit: str | None
    requests_per_minute: dict[str, float | None]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(**figures: float) -> None:
    for name, value in figures.items():
        if value < 0:
            raise ValueError(f"{name} cannot be negative (got {value})")


def estimate_run(
    *,
    tasks: int,
    input_tokens: Sequence[int],
    output_tokens: float,
    price: Price | None,
    latency_seconds: float,
    cache_hits: int = 0,
    rpm: int = 0,
    tpm: int = 0,
    workers: int = 1,
    concurrency: int = 1,
    batch_price_factor: float | None = None,
) -> RunEstimate:
    """Estimate a run of ``tasks`` tasks.

    ``input_tokens`` are the per-task prompt token figures (all tasks or a sample: their mean is used),
    ``output_tokens`` the expected output tokens per request, ``price`` the model's entry in the price
    table (USD per million input and output tokens; None: no cost), ``batch_price_factor`` the fraction of
    the live price a batch pays (0.5 for OpenAI's Batch API).
    """
    _check(tasks=tasks, output_tokens=output_tokens, cache_hits=cache_hits, rpm=rpm, tpm=tpm)
    if latency_seconds <= 0 or workers < 1 or concurrency < 1:
        raise ValueError("latency_seconds must be positive, and workers and concurrency at least 1")
    requests = tasks - min(cache_hits, tasks)
    if requests and not input_tokens:
        raise ValueError("no input token figures: count the prompt tokens of at least one task")
    mean_input = sum(input_tokens) / len(input_tokens) if input_tokens else 0.0
    total_input, total_output = round(requests * mean_input), round(requests * output_tokens)
    cost = cost_usd(price, total_input, total_output) if price else None
    batch_cost = round(cost * batch_price_factor, 6) if cost is not None and batch_price_factor is not None else None

    ceilings: dict[str, float | None] = {
        "concurrency": workers * concurrency * 60.0 / latency_seconds,
        "rpm": float(rpm) if rpm else None,
        "tpm": tpm / (mean_input + output_tokens) if tpm and mean_input + output_tokens > 0 else None,
    }
    limits = {name: value for name, value in ceilings.items() if value is not None}
    tightest = min(limits, key=limits.__getitem__)
    binding: str | None = None
    duration = 0.0
    if requests:  # a single request still takes one latency
        binding, duration = tightest, max(requests / limits[tightest] * 60.0, latency_seconds)
    return RunEstimate(
        tasks=tasks,
        cache_hits=tasks - requests,
        requests=requests,
        input_tokens=total_input,
        output_tokens=total_output,
        cost_usd=cost,
        batch_cost_usd=batch_cost,
        duration_seconds=duration,
        binding_limit=binding,
        requests_per_minute=ceilings,
    )
