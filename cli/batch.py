"""``llm-backend batch`` and ``llm-backend jobs``: batch runs from scripts and cron, without the UI."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from shared.adapters.jobs import Jobs, JobState, JobStatus, is_job_id
from shared.dispatch import cancel_job, feed_job, open_job, pause_job, resume_job
from shared.domain.config import Settings
from shared.domain.errors import BackendError
from shared.domain.routing import WayIn
from shared.domain.types import task_ids
from shared.estimation import SAMPLE, Estimator
from shared.project_tasks import PageSelection, TaskSelection, open_project, pages_to_predict
from shared.projects import PredictionContext
from shared.reports.estimate_report import ProjectEstimate, confirmation_reason, render_estimate
from shared.routing import route
from shared.services import Services


def fail(message: str) -> int:
    print(f"llm-backend: {message}", file=sys.stderr)
    return 2


def run_batch(
    settings: Settings,
    project: int,
    only_unlabeled: bool,
    wait: bool,
    assume_yes: bool = False,
    priority: int | None = None,
    max_usd: float | None = None,
) -> int:
    """Print the estimate (from the first pages of a large project), ask above ``BATCH_CONFIRM_USD``, then start
    the job at once and add the project's tasks to it page by page as they are read, following it with ``wait``.
    ``priority`` and ``max_usd`` override the project's priority and ``BATCH_MAX_USD`` for this job."""
    backend = Services.build(settings)
    try:
        opened = open_project(backend, project)
        ctx = opened.ctx
        route(ctx, WayIn.BATCH_COMMAND).raise_if_refused()
        pages = pages_to_predict(opened, only_unlabeled)
        sample, head = read_sample(pages)
        if sample.seen >= head.project_total and not sample.tasks:
            print(
                f"nothing to predict: {sample.seen} tasks, all labeled or holding a prediction of {ctx.model_version}"
            )
            return 0
        estimate = Estimator(backend).estimate(opened, sample, project_total=head.project_total)
        print(render_estimate(estimate), flush=True)
        if not confirmed(estimate, settings.batch_confirm_usd, assume_yes):
            return 1
        job_id = open_job(backend, ctx, priority, max_usd)
    except BackendError as exc:
        return fail(str(exc))
    print(f"job {job_id}: started, model version {ctx.model_version}; its tasks follow as they are read", flush=True)
    feeder = JobFeeder(backend, ctx, job_id, itertools.chain(head.pages, pages))
    if not wait:
        return feeder.feed()
    feeder.start()
    status = follow(backend.jobs, job_id)
    feeder.join()
    if feeder.failure is not None:
        return feeder.failure
    if status is None:
        return fail(f"job {job_id} is gone: its records expired or were deleted while it ran")
    print(summary(status))
    return 0 if status.state == JobState.DONE else 1


@dataclass
class SampleHead:
    """The pages read for the estimate (they go into the job first) and the project's task count then."""

    pages: list[PageSelection]
    project_total: int


def read_sample(pages: Iterator[PageSelection], size: int = SAMPLE) -> tuple[TaskSelection, SampleHead]:
    """The first pages, up to ``size`` tasks: what the estimate is made from."""
    sample, head = TaskSelection([], 0), SampleHead([], 0)
    for page in pages:
        sample.add(page)
        head.pages.append(page)
        head.project_total = page.total
        if sample.seen >= size:
            break
    head.project_total = max(head.project_total, sample.seen)
    return sample, head


class JobFeeder(threading.Thread):
    """Adds the project's pages to the job (``feed_job``), beside the progress bar when the command waits."""

    def __init__(self, services: Services, ctx: PredictionContext, job_id: str, pages: Iterable[PageSelection]):
        super().__init__(name=f"feed-{job_id[:8]}")
        self.services, self.ctx, self.job_id, self.pages = services, ctx, job_id, pages
        self.seen = 0
        self.failure: int | None = None  # the command's exit code when reading the pages failed

    def _ids(self) -> Iterator[list[int]]:
        for page in self.pages:
            self.seen += page.seen
            yield task_ids(page.tasks)

    def run(self) -> None:
        self.feed()

    def feed(self) -> int:
        """Add every page; the command's exit code."""
        try:
            added = feed_job(self.services, self.ctx, self.job_id, self._ids())
        except BackendError as exc:
            self.failure = fail(f"job {self.job_id} failed: reading the project's tasks: {exc}")
            return self.failure
        print(f"job {self.job_id}: {added} of {self.seen} tasks, model version {self.ctx.model_version}", flush=True)
        return 0


def confirmed(estimate: ProjectEstimate, threshold_usd: float | None, assume_yes: bool) -> bool:
    """Whether to start: yes below the threshold or with ``--yes``; else the answer read from stdin (a
    script may pipe ``y``), and no when there is none to read."""
    return asked(confirmation_reason(estimate, threshold_usd), assume_yes, "Start the job?")


def asked(reason: str | None, assume_yes: bool, question: str) -> bool:
    """Yes without a ``reason`` to ask or with ``--yes``; else the answer read from stdin, and no when there is
    none to read (no terminal)."""
    if reason is None or assume_yes:
        return True
    try:
        answer = input(f"{reason}. {question} [y/N] ")
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
            if status.total != bar.total:  # the job's tasks are still being added
                bar.total = status.total
                bar.refresh()
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
    return control(job_id, lambda services: cancel_job(services, job_id), settings)


def pause(settings: Settings, job_id: str) -> int:
    return control(job_id, lambda services: pause_job(services, job_id), settings)


def resume(settings: Settings, job_id: str, max_usd: float | None) -> int:
    return control(job_id, lambda services: resume_job(services, job_id, max_usd), settings)


def control(job_id: str, action: Callable[[Services], JobStatus | None], settings: Settings) -> int:
    """Cancel, pause or resume a job; print its state afterwards (and why it is paused)."""
    try:
        status = action(Services.build(settings)) if is_job_id(job_id) else None
    except BackendError as exc:
        return fail(str(exc))
    if status is None:
        return fail(f"no job {job_id}")
    print(f"job {job_id}: {status.state}" + (f" ({status.message})" if status.message else ""))
    return 0
