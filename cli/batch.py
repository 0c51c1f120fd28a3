"""``llm-backend batch`` and ``llm-backend jobs``: batch runs from scripts and cron, without the UI."""

from __future__ import annotations

import sys
import time

from shared.adapters.jobs import Jobs, JobState, JobStatus, is_job_id
from shared.dispatch import cancel_job, start_job
from shared.domain.config import Settings
from shared.domain.errors import BackendError
from shared.domain.estimate_report import ProjectEstimate, confirmation_reason, render_estimate
from shared.domain.types import task_ids
from shared.estimation import Estimator
from shared.project_tasks import open_project, require_prompt, tasks_to_predict
from shared.services import Services


def fail(message: str) -> int:
    print(f"llm-backend: {message}", file=sys.stderr)
    return 2


def run_batch(settings: Settings, project: int, only_unlabeled: bool, wait: bool, assume_yes: bool = False) -> int:
    """Print the estimate, ask above ``BATCH_CONFIRM_USD``, start the job, and follow it with ``wait``."""
    backend = Services.build(settings)
    try:
        opened = open_project(backend, project)
        ctx = opened.ctx
        require_prompt(ctx)
        selection = tasks_to_predict(opened, only_unlabeled)
        if not selection.tasks:
            print(
                f"nothing to predict: {selection.seen} tasks, all labeled or holding a prediction of "
                f"{ctx.model_version}"
            )
            return 0
        estimate = Estimator(backend).estimate(opened, selection)
        print(render_estimate(estimate), flush=True)
        if not confirmed(estimate, settings.batch_confirm_usd, assume_yes):
            return 1
        job_id = start_job(backend, ctx, task_ids(selection.tasks))
    except BackendError as exc:
        return fail(str(exc))
    print(
        f"job {job_id}: {len(selection.tasks)} of {selection.seen} tasks, model version {ctx.model_version}", flush=True
    )
    if not wait:
        return 0
    status = follow(backend.jobs, job_id)
    if status is None:
        return fail(f"job {job_id} is gone: its records expired or were deleted while it ran")
    print(summary(status))
    return 0 if status.state == JobState.DONE else 1


def confirmed(estimate: ProjectEstimate, threshold_usd: float | None, assume_yes: bool) -> bool:
    """Whether to start: yes below the threshold or with ``--yes``; else the answer read from stdin (a
    script may pipe ``y``), and no when there is none to read."""
    reason = confirmation_reason(estimate, threshold_usd)
    if reason is None or assume_yes:
        return True
    try:
        answer = input(f"{reason}. Start the job? [y/N] ")
    except EOFError:
        print(f"\nllm-backend: not started: {reason}; pass --yes to start it anyway", file=sys.stderr)
        return False
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("not started", file=sys.stderr)
    return False


def follow(jobs: Jobs, job_id: str, poll: float = 1.0) -> JobStatus | None:
    """A progress bar fed by the job's status until the job is finished (None once its records are gone)."""
    from tqdm import tqdm

    status = jobs.status(job_id)
    if status is None:
        return None
    with tqdm(total=status.total, unit="task", desc=f"job {job_id[:8]}", dynamic_ncols=True) as bar:
        while True:
            status = jobs.status(job_id)
            if status is None:
                return None
            settled = status.pushed + status.failed
            bar.update(settled - bar.n)
            bar.set_postfix(done=status.done, failed=status.failed, pushed=status.pushed, state=status.state)
            if status.state.finished:
                return status
            time.sleep(poll)


def summary(status: JobStatus) -> str:
    elapsed = (status.finished_at or time.time()) - status.created_at
    cost = "unknown (no price for this model: see LLM_PRICES)" if status.cost_usd is None else f"${status.cost_usd:.4f}"
    if status.mode == "batch_api" and status.live_cost_usd is not None:
        cost += f" at the Batch API price (${status.live_cost_usd:.4f} live)"
    lines = [
        f"job {status.id}  project {status.project}  {status.state}  mode {status.mode}",
        f"  model {status.model}  version {status.model_version}",
        f"  tasks {status.total}: done {status.done}, failed {status.failed}, pushed {status.pushed}",
        f"  tokens in {status.tokens_in}, out {status.tokens_out}, cached {status.tokens_cached} of those in; "
        f"estimated cost {cost}",
        f"  elapsed {elapsed:.1f} s",
    ]
    for batch in status.batches:
        counts = ", ".join(f"{name} {count}" for name, count in batch.get("counts", {}).items())
        lines.append(f"  batch {batch['id']}: {batch.get('status')} ({counts})")
    lines += [f"  error (task {error['task']}): {error['error']}" for error in status.errors[:10]]
    return "\n".join(lines)


def list_jobs(settings: Settings, project: int | None) -> int:
    jobs = Services.build(settings).jobs
    rows = jobs.recent(str(project) if project else None)
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
    status = Services.build(settings).jobs.status(job_id) if is_job_id(job_id) else None
    if status is None:
        return fail(f"no job {job_id}")
    print(summary(status))
    return 0


def cancel(settings: Settings, job_id: str) -> int:
    status = cancel_job(Services.build(settings), job_id) if is_job_id(job_id) else None
    if status is None:
        return fail(f"no job {job_id}")
    print(f"job {job_id}: {status.state}")
    return 0
