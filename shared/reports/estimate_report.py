"""A batch run's estimate for one project, with where each figure came from, as text and as JSON; and the
rule that decides whether ``llm-backend batch`` asks before starting (``BATCH_CONFIRM_USD``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from shared.domain.estimation.estimate import RunEstimate
from shared.domain.estimation.pricing import Price


@dataclass(frozen=True)
class ProjectEstimate:
    """``run`` holds the figures; the rest says what they rest on.

    ``tasks`` is what the batch would send (of ``tasks_seen``); ``failing`` of them are expected to fail
    without a call (their request cannot be built), so ``run`` covers the others.  ``sampled`` tasks had
    their requests built and counted; input tokens are scaled by ``calibration``, the ratio of what the provider
    reported to what we count, over ``calibration_requests`` earlier requests of this prompt; the other
    ``*_source`` fields name where output tokens, latency and workers came from.  With ``sampled_from``, only
    that many of the project's ``tasks_seen`` were read, and ``tasks`` is scaled up from them.
    """

    project: int
    model: str
    model_version: str
    tasks_seen: int
    tasks: int
    failing: int
    run: RunEstimate
    sampled: int
    encoding: str
    exact_encoding: bool
    calibration: float
    calibration_requests: int
    input_tokens_per_request: float
    output_tokens_per_request: int
    output_source: str
    latency_seconds: float
    latency_source: str
    workers: int
    workers_source: str
    concurrency: int
    price: Price | None
    batch_price_factor: float | None
    sampled_from: int | None = None  # the tasks read when ``tasks`` was scaled from the project's first ones

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def usd(amount: float) -> str:
    """Cents for large amounts, enough digits for small ones (a test run costs fractions of a cent)."""
    return f"${amount:,.2f}" if amount >= 10 else f"${amount:.4f}" if amount >= 0.01 else f"${amount:.6f}"


def _as_set(amount: float) -> str:
    """A setting's amount as it was written: 0.00001 rather than 1e-05."""
    return "$" + f"{amount:f}".rstrip("0").rstrip(".")


def _cost(estimate: ProjectEstimate) -> str:
    run = estimate.run
    if run.cost_usd is None or estimate.price is None:
        return f"unknown: no price for {estimate.model} (add it to LLM_PRICES)"
    text = f"{usd(run.cost_usd)} (at ${estimate.price[0]:g} / ${estimate.price[1]:g} per million tokens in / out)"
    if run.batch_cost_usd is not None and estimate.batch_price_factor is not None:
        text += f"; {usd(run.batch_cost_usd)} at a Batch API price ({estimate.batch_price_factor:.0%})"
    return text


def _input(estimate: ProjectEstimate) -> str:
    counted = f"{estimate.encoding}" + ("" if estimate.exact_encoding else ", a stand-in for this model's tokenizer")
    if estimate.calibration_requests:
        calibration = (
            f"calibrated x{estimate.calibration:.3f} on {estimate.calibration_requests} answered requests "
            "of this prompt"
        )
    else:
        calibration = "not calibrated: no answered request of this prompt in the cache yet"
    return (
        f"{estimate.run.input_tokens:,} ({estimate.input_tokens_per_request:,.0f} a request; "
        f"{estimate.sampled} prompts built and counted with {counted}; {calibration})"
    )


def _pace(estimate: ProjectEstimate) -> str:
    run = estimate.run
    ceilings = run.requests_per_minute
    shown = ", ".join(f"{name} {'none' if value is None else f'{value:,.0f}/min'}" for name, value in ceilings.items())
    return (
        f"{duration_text(run.duration_seconds)}"
        + (f", bound by {run.binding_limit}" if run.binding_limit else "")
        + f" ({estimate.workers} worker slots ({estimate.workers_source}) x {estimate.concurrency} calls "
        f"at {estimate.latency_seconds:.2f} s ({estimate.latency_source}); requests a minute: {shown})"
    )


def render_estimate(estimate: ProjectEstimate) -> str:
    run = estimate.run
    skipped = estimate.tasks_seen - estimate.tasks
    tasks = f"{estimate.tasks} of {estimate.tasks_seen} ({skipped} labeled or holding this version)"
    if estimate.sampled_from is not None:
        tasks = (
            f"about {tasks}, from a sample of the first {estimate.sampled_from} tasks "
            "(the job's status counts them exactly)"
        )
    lines = [
        f"estimate for project {estimate.project}: model {estimate.model}, version {estimate.model_version}",
        f"  tasks to predict: {tasks}",
        f"  expected cache hits: {run.cache_hits}; requests: {run.requests}",
        f"  input tokens: {_input(estimate)}",
        f"  output tokens: {run.output_tokens:,} ({estimate.output_tokens_per_request} a request, "
        f"from {estimate.output_source})",
        f"  cost: {_cost(estimate)}",
        f"  duration: {_pace(estimate)}",
    ]
    if estimate.failing:
        lines.insert(2, f"  expected to fail without a call: {estimate.failing} (their request cannot be built)")
    return "\n".join(lines)


def confirmation_reason(estimate: ProjectEstimate, threshold_usd: float | None) -> str | None:
    """Why a batch should be confirmed before it starts, or None (``cost_confirmation``)."""
    if estimate.run.requests == 0:
        return None
    return cost_confirmation(estimate.run.cost_usd, estimate.model, threshold_usd)


def cost_confirmation(cost: float | None, models: str, threshold_usd: float | None) -> str | None:
    """Why spending an estimated ``cost`` (None: unknown, no price for ``models``) should be confirmed, or None.
    An unknown cost is confirmed too when a threshold is set: the threshold exists to prevent a surprise bill."""
    if threshold_usd is None:
        return None
    if cost is None:
        return f"the cost is unknown (no price for {models}) and BATCH_CONFIRM_USD is {_as_set(threshold_usd)}"
    if cost > threshold_usd:
        return f"the estimated cost {usd(cost)} is above BATCH_CONFIRM_USD {_as_set(threshold_usd)}"
    return None
