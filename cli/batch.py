"""``llm-backend batch`` and ``llm-backend jobs``: batch runs from scripts and cron, without the UI."""

from __future__ import annotations

import sys
import time

from shared.adapters.jobs import Jobs, JobState, JobStatus
from shared.dispatch import cancel_job, start_job
from shared.domain.config import Settings
from shared.services import Services

PAGE_SIZE = 500


def _fail(message: str) -> int:
    print(f"llm-backend: {message}", file=sys.stderr)
    return 2


def run_batch(settings: Settings, project: int, only_unlabeled: bool, wait: bool) -> int:
    backend = Services.build(settings)
    setup = backend.store.load_setup(str(project))
    access, problem = backend.projects.label_studio(setup)
    if access is None:
        return _fail(problem or "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (or connect the backend first)")
    label_studio = backend.label_studio(access)
    ctx = backend.projects.context(str(project), label_studio.label_config(project), None)
    if ctx.prompt is None:
        return _fail(ctx.prompt_error or "no prompt")

    predicted = label_studio.predicted_tasks(project, ctx.model_version)
    tasks, seen = [], 0
    for fields in label_studio.tasks(project, page_size=PAGE_SIZE):
        seen += 1
        if only_unlabeled and (fields.get("is_labeled") or fields.get("total_annotations")):
            continue
        if fields["id"] not in predicted:
            tasks.append({"id": fields["id"], "data": fields.get("data") or {}})
    if not tasks:
        print(f"nothing to predict: {seen} tasks, all labeled or holding a prediction of {ctx.model_version}")
        return 0
    job_id = start_job(backend, ctx, tasks)
    print(f"job {job_id}: {len(tasks)} of {seen} tasks, model version {ctx.model_version}", flush=True)
    if not wait:
        return 0
    status = follow(backend.jobs, job_id)
    print(summary(status))
    return 0 if status.state == JobState.DONE else 1


def follow(jobs: Jobs, job_id: str, poll: float = 1.0) -> JobStatus:
    """A progress bar fed by the job's status until the job is finished."""
    from tqdm import tqdm

    status = jobs.status(job_id)
    with tqdm(total=status.total, unit="task", desc=f"job {job_id[:8]}", dynamic_ncols=True) as bar:
        while True:
            status = jobs.status(job_id)
            settled = status.pushed + status.failed
            bar.update(settled - bar.n)
            bar.set_postfix(done=status.done, failed=status.failed, pushed=status.pushed, state=status.state)
            if status.state.finished:
                return status
            time.sleep(poll)


def summary(status: JobStatus) -> str:
    elapsed = (status.finished_at or time.time()) - status.created_at
    cost = "unknown (no price for this model: see LLM_PRICES)" if status.cost_usd is None else f"${status.cost_usd:.4f}"
    lines = [
        f"job {status.id}  project {status.project}  {status.state}",
        f"  model {status.model}  version {status.model_version}",
        f"  tasks {status.total}: done {status.done}, failed {status.failed}, pushed {status.pushed}",
        f"  tokens in {status.tokens_in}, out {status.tokens_out}; estimated cost {cost}",
        f"  elapsed {elapsed:.1f} s",
    ]
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
    status = Services.build(settings).jobs.status(job_id)
    if status is None:
        return _fail(f"no job {job_id}")
    print(summary(status))
    return 0


def cancel(settings: Settings, job_id: str) -> int:
    status = cancel_job(Services.build(settings), job_id)
    if status is None:
        return _fail(f"no job {job_id}")
    print(f"job {job_id}: {status.state}")
    return 0
