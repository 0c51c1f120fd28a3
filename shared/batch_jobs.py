"""A batch job through the provider's Batch API (``BATCH_API``): half the price, answers within 24 h.

The job's tasks are asked exactly as the live path would ask them (the same messages and output mode),
but in JSONL files the provider answers at its own pace.  Then the answers become predictions in the
ledger, and the job's chunks run as for any job: a task whose prediction waits in the ledger is pushed
without an LLM call (bulk import, model version, exactly once), and every other task (a line that
failed, a batch that expired or was cancelled at the provider, a task the batch never held) is predicted
live.  So every task ends predicted or failed with a reason, and the LLM is asked once per task.

1. ``begin`` (the dispatch message): decides whether the job goes this way (``BATCH_API=on``, or ``auto``
   with at least ``BATCH_API_MIN_TASKS`` requests to make; ``openai`` and ``azure`` only), writes and
   uploads the files (tasks in Label Studio already, with a waiting prediction, failed, or whose answer is
   in the LLM cache need no line) and starts one batch per file, recording each in the job.
2. ``poll`` (a chain of messages with a countdown, no worker busy in between): looks at the batches,
   collects each finished one, and once all are collected the job's chunks are dispatched.  The chain
   survives a worker's death or a Redis restart: a poll overdue by ``BATCH_CLAIM_SECONDS`` is sent again
   by the workers' watchdog (``shared.adapters.jobs`` keeps one chain per job).
3. ``cancel_batches`` (``jobs cancel``): cancels the provider's batches too.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from shared.adapters.batch_api import BatchApi, BatchState
from shared.adapters.jobs import ACTIVE_STATES, COLLECTED, POLLING, SUBMITTING, Jobs, JobState
from shared.adapters.ledger import Ledger
from shared.adapters.llm import LLMAnswer, answer_from_completion
from shared.domain.batch_requests import (
    ENDPOINTS,
    FINAL_STATES,
    custom_id,
    group_lines,
    poll_delay,
    read_answer_lines,
    request_line,
)
from shared.domain.config import Settings
from shared.domain.errors import InvalidInput, LLMError
from shared.domain.estimation.pricing import TokenUsage
from shared.domain.prompts.long_texts import split_task
from shared.domain.routing import WayIn
from shared.domain.types import data_digest
from shared.predictor import Predictor
from shared.projects import PredictionContext, Projects
from shared.routing import route

log = logging.getLogger(__name__)

# not a setting: it only has to outlast collecting one batch's answers; a collector that died delays that batch
# this much, once (the next poll collects it)
COLLECT_LOCK_SECONDS = 600


def live_only(ctx: PredictionContext) -> bool:
    """Whether this context's jobs never go through the Batch API (so their chunks may run as they are added)."""
    return ctx.config.batch_api == "off" or ctx.config.llm.provider not in ENDPOINTS


@dataclass(frozen=True)
class PollOutcome:
    """What a poll leads to: the next poll in ``next_in`` seconds, the chunks (``dispatch``), or nothing."""

    next_in: float | None = None
    dispatch: bool = False
    batches: dict[str, dict[str, Any]] | None = None


class BatchJobs:
    def __init__(self, settings: Settings, projects: Projects, predictor: Predictor, jobs: Jobs, api: BatchApi) -> None:
        self.settings = settings
        self.projects = projects
        self.predictor = predictor
        self.jobs = jobs
        self.api = api

    # --- 1. submitting ----------------------------------------------------------------------------
    def begin(self, job_id: str) -> bool:
        """Send the job through the Batch API if it should go that way; True when it did (or did before):
        its chunks then wait for the poll chain.  A redelivered dispatch resumes a submission cut short."""
        phase = self.jobs.batch_phase(job_id)
        if phase == POLLING:
            return True
        if phase == COLLECTED or self.jobs.state(job_id) not in ACTIVE_STATES:
            return False
        snapshot = self.jobs.snapshot(job_id)
        if snapshot is None:
            return False
        try:
            ctx = self.projects.from_snapshot(snapshot, job_id)
        except InvalidInput:  # settings refused since the job was queued: its chunks fail its tasks, saying why
            return False
        if live_only(ctx) or route(ctx, WayIn.JOB).refused:  # a refused job's chunks fail its tasks, saying why
            return False
        mode = ctx.config.batch_api
        requests = self._lines(ctx, job_id)
        if mode == "auto" and phase is None:
            head = list(itertools.islice(requests, self.settings.batch_api_min_tasks))
            if len(head) < self.settings.batch_api_min_tasks:
                return False  # a small job, or most of it cached or done: live is as good
            requests = itertools.chain(head, requests)
        first = next(requests, None)
        if first is None:
            return False
        output_mode, _line = first
        if self.jobs.mark_running(job_id) != JobState.RUNNING or not self.jobs.set_batch_phase(
            job_id, SUBMITTING, batch_output_mode=output_mode or ""
        ):
            return False  # cancelled before it started: nothing is submitted (its chunks finish it)
        lines = (line for _mode, line in itertools.chain([first], requests))
        self._submit(ctx, job_id, lines, resuming=phase == SUBMITTING)
        if not self.jobs.set_batch_phase(job_id, POLLING, poll_due=time.time() + self.settings.batch_api_poll_first):
            self.cancel_batches(job_id, ctx)  # cancelled while its files went up: what did start is cancelled too
            return False
        return True

    def give_up_submitting(self, job_id: str, reason: str) -> bool:
        """After ``BATCH_MAX_ATTEMPTS`` failed submissions: the batches started so far are polled, every other
        task goes the live way.  True when there is a batch to poll."""
        self.jobs.record_error(job_id, None, f"Batch API submission gave up ({reason}); the rest is predicted live")
        if not self.jobs.batches(job_id):
            self.jobs.set_batch_phase(job_id, COLLECTED)
            return False
        self.jobs.set_batch_phase(job_id, POLLING, poll_due=time.time() + self.settings.batch_api_poll_first)
        return True

    def _submit(self, ctx: PredictionContext, job_id: str, lines: Iterator[bytes], resuming: bool) -> None:
        """One batch per file; a file whose batch was started before (a redelivered dispatch) is not sent again."""
        options = ctx.config.llm
        started = {str(record.get("part")) for record in self.jobs.batches(job_id).values()}
        files = group_lines(lines, self.settings.batch_api_max_requests)
        for part, content in enumerate(files):
            if self.jobs.state(job_id) not in ACTIVE_STATES:
                return  # cancelled meanwhile: no more files go up
            metadata = {"llm_backend_job": job_id, "part": str(part)}
            if str(part) in started:
                continue
            try:
                state = (self.api.find(options, metadata) if resuming else None) or self.api.submit(
                    options, b"".join(content), metadata
                )
            except LLMError as exc:
                if exc.retryable:
                    raise  # the dispatch is sent again and resumes here
                # Refused for good (a file the provider will not take): its tasks go the live way.
                log.warning("job %s: batch file %d refused (%s); its tasks will be predicted live", job_id, part, exc)
                self.jobs.record_error(job_id, None, f"Batch API refused file {part}: {exc}; predicted live instead")
                continue
            self.jobs.record_batch(job_id, state.id, {**state.as_record(), "part": part, "requests": len(content)})
            log.info("job %s: batch %s started with %d requests", job_id, state.id, len(content))

    def _lines(self, ctx: PredictionContext, job_id: str) -> Iterator[tuple[str | None, bytes]]:
        """A request line for each task that needs the LLM, chunk by chunk, with the output mode it asks in."""
        ledger = self.jobs.ledger(ctx.project, ctx.model_version)
        url = ENDPOINTS[ctx.config.llm.provider]
        for index in range(self.jobs.chunk_count(job_id)):
            ids = self.jobs.chunk_task_ids(job_id, index) or []
            pushed, failed = ledger.pushed(ids), self.jobs.members(job_id, "failed", ids)
            open_ids = [
                task_id for task_id, in_ls, failed_ in zip(ids, pushed, failed, strict=True) if not (in_ls or failed_)
            ]
            held = self._held_by_label_studio(ctx, open_ids)
            waiting = ledger.kept({task_id: data_digest(data) for task_id, data in held.items()})
            for task_id, data in held.items():
                if str(task_id) in waiting:
                    continue
                if split_task(ctx.spec, data, self.settings.long_text_chars):
                    log.info("job %s task %s: a long text, asked in parts: predicted live", job_id, task_id)
                    continue
                try:
                    messages, output = self.predictor.request_for(ctx, data, task_id)
                    body, mode, cached = self.predictor.llm.batch_body(ctx.config.llm, messages, output)
                except Exception as exc:  # the live path meets it again and fails the task with its reason
                    log.info("job %s task %s: no batch line (%s)", job_id, task_id, exc)
                    continue
                if not cached:
                    yield mode, request_line(custom_id(task_id), url, body)

    # --- 2. polling and collecting ----------------------------------------------------------------
    def poll(self, job_id: str, seq: int) -> PollOutcome:
        delay = poll_delay(seq, self.settings.batch_api_poll_first, self.settings.batch_api_poll_max)
        if self.jobs.batch_phase(job_id) != POLLING or not self.jobs.take_poll(job_id, seq, delay):
            return PollOutcome()  # an old poll, sent again or come back late: the current chain goes on
        state = self.jobs.state(job_id)
        snapshot = self.jobs.snapshot(job_id)
        if state is None or snapshot is None:
            return PollOutcome()
        ctx = self.projects.from_snapshot(snapshot, job_id)
        if state == JobState.CANCELLED:
            self.cancel_batches(job_id, ctx)
            return PollOutcome(batches=self.jobs.batches(job_id))
        collected = self.jobs.collected(job_id)
        pending = False
        for batch_id, record in self.jobs.batches(job_id).items():
            if batch_id in collected:
                continue
            try:
                batch = self.api.retrieve(ctx.config.llm, batch_id)
                self.jobs.record_batch(job_id, batch_id, {**record, **batch.as_record()})
                if batch.status not in FINAL_STATES or not self._collect(ctx, job_id, batch, delay):
                    pending = True
            except LLMError as exc:  # the provider away for now: look again at the next poll
                log.warning("job %s: batch %s: %s", job_id, batch_id, exc)
                pending = True
        batches = self.jobs.batches(job_id)
        if pending:
            return PollOutcome(next_in=delay, batches=batches)
        self.jobs.set_batch_phase(job_id, COLLECTED)
        log.info("job %s: every batch collected; its chunks push the answers and predict the rest live", job_id)
        return PollOutcome(dispatch=True, batches=batches)

    def _collect(self, ctx: PredictionContext, job_id: str, batch: BatchState, delay: float) -> bool:
        """A finished batch's answers into the ledger as predictions; False when another poll is collecting it."""
        if not self.jobs.claim_collect(job_id, batch.id, COLLECT_LOCK_SECONDS):
            return False
        options = ctx.config.llm
        [mode] = self.jobs.batch_fields(job_id, "batch_output_mode")
        ledger = self.jobs.ledger(ctx.project, ctx.model_version)
        data = self._task_data(ctx, job_id)
        usage, answered, line_errors = TokenUsage(), 0, 0
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for number, line in enumerate(read_answer_lines(self.api.content(options, file_id))):
                if number % 200 == 199:
                    self.jobs.postpone_poll(job_id, delay)  # still at work: no watchdog sends the poll again
                if line.completion is None:
                    line_errors += 1
                    log.info("job %s task %s: batch line failed (%s); predicted live", job_id, line.task_id, line.error)
                    continue
                try:
                    answer = answer_from_completion(line.completion)
                except ValueError as exc:
                    log.warning(
                        "job %s task %s: unreadable batch answer (%s); predicted live", job_id, line.task_id, exc
                    )
                    continue
                answer = replace(answer, mode=mode or None)
                usage += TokenUsage(answer.prompt_tokens, answer.completion_tokens, answer.cached_tokens)
                answered += 1
                self.predictor.llm.count_answer(options, answer)
                if line.task_id in data:
                    self._keep(ctx, job_id, ledger, line.task_id, data[line.task_id], answer)
        self.jobs.mark_collected(job_id, batch.id)
        self.predictor.record_usage(ctx, usage, calls=answered, via_batch=True)
        log.info(
            "job %s: batch %s %s: %d answers kept, %d lines failed",
            job_id,
            batch.id,
            batch.status,
            answered,
            line_errors,
        )
        return True

    def _keep(
        self, ctx: PredictionContext, job_id: str, ledger: Ledger, task_id: str, data: dict[str, Any], answer: LLMAnswer
    ) -> None:
        try:
            prediction = self.predictor.prediction(ctx, data, answer, task_id)
        except Exception as exc:  # as live: the task fails alone, with its reason
            log.warning("job %s task %s: %s", job_id, task_id, exc)
            self.jobs.add(job_id, "failed", [task_id])
            self.jobs.record_error(job_id, int(task_id), f"unexpected error: {type(exc).__name__}: {exc}"[:500])
            return
        ledger.keep_answer(task_id, prediction, data_digest(data), queue=False)  # the job's chunk checks and queues it

    def _task_data(self, ctx: PredictionContext, job_id: str) -> dict[str, dict[str, Any]]:
        return {
            str(task_id): data
            for index in range(self.jobs.chunk_count(job_id))
            for task_id, data in self._held_by_label_studio(ctx, self.jobs.chunk_task_ids(job_id, index) or []).items()
        }

    def _held_by_label_studio(self, ctx: PredictionContext, task_ids: list[int]) -> dict[int, dict[str, Any]]:
        """These tasks' data as Label Studio holds it, by task id, in the order of ``task_ids`` (the request's data is
        never used); one the project does not hold is left out, for its chunk to fail with the reason."""
        gateway = self.predictor.gateway(ctx)
        if gateway is None or ctx.project is None or not task_ids:
            return {}
        held = gateway.task_data(int(ctx.project), task_ids)
        return {task_id: held[task_id] for task_id in task_ids if task_id in held}

    # --- 3. cancelling ----------------------------------------------------------------------------
    def cancel_batches(self, job_id: str, ctx: PredictionContext | None = None) -> None:
        """Cancel the job's batches that are still running at the provider (best effort: a failure is logged)."""
        if ctx is None:
            snapshot = self.jobs.snapshot(job_id)
            if snapshot is None:
                return
            ctx = self.projects.from_snapshot(snapshot, job_id)
        for batch_id, record in self.jobs.batches(job_id).items():
            if record.get("status") in FINAL_STATES or record.get("status") == "cancelling":
                continue
            try:
                batch = self.api.cancel(ctx.config.llm, batch_id)
            except LLMError as exc:
                log.warning("job %s: could not cancel batch %s: %s", job_id, batch_id, exc)
                continue
            self.jobs.record_batch(job_id, batch_id, {**record, **batch.as_record()})
            log.info("job %s: batch %s cancelled at the provider", job_id, batch_id)
