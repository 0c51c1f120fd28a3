"""``llm-backend jobs``: list, show, pause, resume and cancel batch jobs.

Listing and showing read the job records in Redis and nothing else, so they import nothing of the prediction
pipeline (a call takes a quarter of the time); pausing, resuming and cancelling send messages and may cancel a
provider's batch, so they build the services.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cli.console import fail
from shared.adapters.jobs import Jobs, JobStatus, is_job_id
from shared.adapters.store import Store
from shared.domain.config import Settings
from shared.domain.errors import BackendError

if TYPE_CHECKING:
    from shared.services import Services


def _jobs(settings: Settings) -> Jobs:
    return Jobs.from_settings(settings, Store.from_settings(settings))


def summary(status: JobStatus) -> str:
    elapsed = (status.finished_at or time.time()) - status.created_at
    cost = "unknown (no price for this model: see LLM_PRICES)" if status.cost_usd is None else f"${status.cost_usd:.4f}"
    if status.mode == "batch_api" and status.live_cost_usd is not None:
        cost += f" at the Batch API price (${status.live_cost_usd:.4f} live)"
    lines = [
        f"job {status.id}  project {status.project}  {status.state}  mode {status.mode}  priority {status.priority}"
        + (f"  budget ${status.max_usd:.4f}" if status.max_usd else ""),
        f"  model {status.model}  version {status.model_version}",
        f"  tasks {status.total}: done {status.done}, failed {status.failed}, pushed {status.pushed}",
        f"  tokens in {status.tokens_in}, out {status.tokens_out}, cached {status.tokens_cached} of those in; "
        f"estimated cost {cost}",
        f"  elapsed {elapsed:.1f} s",
        *([f"  why: {status.message}"] if status.message else []),
    ]
    for batch in status.batches:
        counts = ", ".join(f"{name} {count}" for name, count in batch.get("counts", {}).items())
        lines.append(f"  batch {batch['id']}: {batch.get('status')} ({counts})")
    lines += [f"  error (task {error['task']}): {error['error']}" for error in status.errors[:10]]
    return "\n".join(lines)


def list_jobs(settings: Settings, project: int | None) -> int:
    rows = _jobs(settings).recent(str(project) if project else None)
    if not rows:
        print("no jobs")
    for status in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status.created_at))
        print(
            f"{status.id}  {created}  project {status.project}  {status.state:<9}  "
            f"{status.pushed}/{status.total} pushed, {status.failed} failed"
        )
    return 0


def show_job(settings: Settings, job_id: str) -> int:
    status = _jobs(settings).status(job_id) if is_job_id(job_id) else None
    if status is None:
        return fail(f"no job {job_id}")
    print(summary(status))
    return 0


def cancel(settings: Settings, job_id: str) -> int:
    from shared.dispatch import cancel_job

    return control(job_id, lambda services: cancel_job(services, job_id), settings)


def pause(settings: Settings, job_id: str) -> int:
    from shared.dispatch import pause_job

    return control(job_id, lambda services: pause_job(services, job_id), settings)


def resume(settings: Settings, job_id: str, max_usd: float | None) -> int:
    from shared.dispatch import resume_job

    return control(job_id, lambda services: resume_job(services, job_id, max_usd), settings)


def control(job_id: str, action: Callable[[Services], JobStatus | None], settings: Settings) -> int:
    """Cancel, pause or resume a job; print its state afterwards (and why it is paused)."""
    from shared.services import Services

    try:
        status = action(Services.build(settings)) if is_job_id(job_id) else None
    except BackendError as exc:
        return fail(str(exc))
    if status is None:
        return fail(f"no job {job_id}")
    print(f"job {job_id}: {status.state}" + (f" ({status.message})" if status.message else ""))
    return 0
