"""``llm-backend batch`` and ``llm-backend jobs``: batch runs from scripts and cron, without the UI."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cli.console import fail
from cli.jobs import summary
from shared.adapters.jobs import Jobs, JobState, JobStatus
from shared.dispatch import feed_job, open_job
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
