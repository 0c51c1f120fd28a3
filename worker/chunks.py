"""One chunk of a batch job: predict its tasks concurrently and push them into Label Studio, once.

Celery delivers a chunk at least once (``acks_late``, redelivery after a lost worker); this module
makes the effect exactly once per (project, task, model version):

1. tasks the ledger says are in Label Studio already are done;
2. the others are claimed (a short-lived Redis lock, kept alive while we work), so a second delivery
   of the same chunk running at the same time leaves them alone and comes back later;
3. a prediction made earlier but not pushed is reused, so the LLM is asked once per task;
4. pushes are bracketed by ``begin_push``/``end_push``: a task left "pushing" — by a crashed worker, or
   handed to Label Studio as the answer to a task opened in the labeling screen — is checked against
   Label Studio (once ``HANDOVER_GRACE`` seconds have passed) before being pushed again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.jobs import ClaimKeeper, Jobs, JobState, Ledger
from shared.adapters.label_studio import LabelStudioGateway
from shared.batch_jobs import WAITING_FOR_BATCHES
from shared.domain.backoff import backoff
from shared.domain.config import Settings
from shared.domain.errors import LabelStudioError, LLMError, TaskError
from shared.predictor import Predictor
from shared.projects import PredictionContext, Projects

log = logging.getLogger(__name__)


@dataclass
class ChunkOutcome:
    """What a run of a chunk achieved; ``retry_in`` is set when some of its tasks are still open."""

    predicted: int = 0
    pushed: int = 0
    failed: int = 0
    waiting: list[Any] = field(default_factory=list)
    retry_in: float | None = None


class ChunkRunner:
    def __init__(self, settings: Settings, projects: Projects, predictor: Predictor, jobs: Jobs) -> None:
        self.settings = settings
        self.projects = projects
        self.predictor = predictor
        self.jobs = jobs

    def run(self, job_id: str, index: int, attempt: int, owner: str) -> ChunkOutcome:
        snapshot = self.jobs.snapshot(job_id)
        tasks = self.jobs.chunk_tasks(job_id, index) if snapshot else None
        if tasks is None:  # the job expired, or this chunk finished before and this is a late redelivery
            log.info("job %s chunk %s: nothing left to do", job_id, index)
            return ChunkOutcome()
        if self.jobs.state(job_id) == JobState.CANCELLED:
            log.info("job %s chunk %s: the job was cancelled", job_id, index)
            self.jobs.finish_chunk(job_id, index)
            return ChunkOutcome()
        if self.jobs.batch_phase(job_id) in WAITING_FOR_BATCHES:  # sent early (a rescue): the poll sends it again
            log.info("job %s chunk %s: waits for the job's Batch API answers", job_id, index)
            return ChunkOutcome()
        self.jobs.mark_running(job_id)
        ctx = self.projects.from_snapshot(snapshot, job_id)
        ledger = self.jobs.ledger(ctx.project, ctx.model_version)
        last_attempt = attempt + 1 >= self.settings.batch_max_attempts
        outcome = ChunkOutcome()

        ids = [task["id"] for task in tasks]
        in_label_studio = [task_id for task_id, pushed in zip(ids, ledger.pushed(ids), strict=True) if pushed]
        self.jobs.add(job_id, "done", in_label_studio)
        self.jobs.add(job_id, "pushed", in_label_studio)
        already = set(in_label_studio)
        open_ids = [task_id for task_id in ids if task_id not in already]
        failed_here = self.jobs.members(job_id, "failed", open_ids)
        open_ids = [task_id for task_id, failed in zip(open_ids, failed_here, strict=True) if not failed]

        claim_seconds = self.settings.batch_claim_seconds
        claimed, busy = ledger.claim(open_ids, owner, claim_seconds)
        outcome.waiting.extend(busy)
        with ClaimKeeper(ledger, claimed, owner, claim_seconds):
            ready = ledger.results(claimed)
            by_id = {task["id"]: task for task in tasks}
            to_predict = [by_id[task_id] for task_id in claimed if str(task_id) not in ready]
            for task, result in zip(to_predict, self.predictor.outcomes(ctx, to_predict), strict=True):
                if isinstance(result, TaskError):
                    if isinstance(result, LLMError) and result.retryable and not last_attempt:
                        outcome.waiting.append(task["id"])
                    else:
                        self._fail(job_id, task["id"], str(result), outcome)
                    continue
                ledger.keep_result(task["id"], result)
                ready[str(task["id"])] = result
                outcome.predicted += 1
            self.jobs.add(job_id, "done", list(ready))
            self._push(ctx, ledger, job_id, ready, last_attempt, outcome)

        if outcome.waiting:
            outcome.retry_in = backoff(attempt, cap=self.settings.batch_retry_max_delay)
            log.info(
                "job %s chunk %s: %d tasks open, again in %.1f s", job_id, index, len(outcome.waiting), outcome.retry_in
            )
        else:
            self.jobs.finish_chunk(job_id, index)
        return outcome

    def abandon(self, job_id: str, index: int, message: str) -> None:
        """Give up on a chunk that keeps crashing: its open tasks fail with ``message``, the job goes on."""
        tasks = self.jobs.chunk_tasks(job_id, index) or []
        ids = [task["id"] for task in tasks]
        done = self.jobs.members(job_id, "done", ids)
        failed = self.jobs.members(job_id, "failed", ids)
        for task_id, is_done, is_failed in zip(ids, done, failed, strict=True):
            if not (is_done or is_failed):
                self._fail(job_id, task_id, message, ChunkOutcome())
        self.jobs.finish_chunk(job_id, index)

    def _fail(self, job_id: str, task_id: Any, message: str, outcome: ChunkOutcome) -> None:
        self.jobs.add(job_id, "failed", [task_id])
        self.jobs.record_error(job_id, task_id, message)
        outcome.failed += 1

    def _push(
        self,
        ctx: PredictionContext,
        ledger: Ledger,
        job_id: str,
        ready: dict[str, dict],
        last_attempt: bool,
        outcome: ChunkOutcome,
    ) -> None:
        if not ready:
            return
        label_studio = self.predictor.gateway(ctx)
        if label_studio is None or ctx.project is None:
            reason = ctx.access_problem or (
                "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, or connect the backend from Label Studio"
            )
            for task_id in ready:
                self._fail(job_id, task_id, f"no Label Studio to push to: {reason}", outcome)
            return
        try:
            being_stored, overdue = ledger.on_their_way(list(ready))
            for task_id in being_stored:  # a worker or Label Studio is storing it right now: look again later
                del ready[task_id]
                outcome.waiting.append(int(task_id))
            for task_id in overdue:
                if label_studio.has_prediction(int(task_id), ctx.model_version):
                    del ready[task_id]
                    self._pushed(ledger, job_id, [task_id], outcome)
                else:  # it never landed: push it below, without asking the LLM again
                    ledger.unmark_push([task_id])
            marked = set(ledger.begin_push(list(ready)))
            outcome.waiting.extend(int(task_id) for task_id in ready if task_id not in marked)  # handed over
            ready = {task_id: prediction for task_id, prediction in ready.items() if task_id in marked}
            if not ready:
                return
            predictions = [{"task": int(task_id), **prediction} for task_id, prediction in ready.items()]
            try:
                label_studio.push_predictions(int(ctx.project), predictions)
                self._pushed(ledger, job_id, list(ready), outcome)
            except LabelStudioError as exc:
                if exc.retryable:
                    raise
                log.warning("job %s: bulk push refused (%s); pushing one by one", job_id, exc)
                self._push_one_by_one(label_studio, ledger, job_id, predictions, outcome)
        except LabelStudioError as exc:
            # Retryable: the predictions stay in the ledger, so a later run pushes them without new LLM calls.
            if last_attempt:
                for task_id in ready:
                    self._fail(job_id, task_id, f"push to Label Studio failed: {exc}", outcome)
            else:
                outcome.waiting.extend(ready)

    def _push_one_by_one(
        self,
        label_studio: LabelStudioGateway,
        ledger: Ledger,
        job_id: str,
        predictions: list[dict],
        outcome: ChunkOutcome,
    ) -> None:
        for prediction in predictions:
            try:
                label_studio.push_prediction(prediction)
            except LabelStudioError as exc:
                if exc.retryable:
                    raise
                ledger.forget([prediction["task"]])
                self._fail(job_id, prediction["task"], f"Label Studio refused the prediction: {exc}", outcome)
                continue
            self._pushed(ledger, job_id, [prediction["task"]], outcome)

    def _pushed(self, ledger: Ledger, job_id: str, task_ids: list[Any], outcome: ChunkOutcome) -> None:
        ledger.end_push(task_ids)
        self.jobs.add(job_id, "pushed", task_ids)
        outcome.pushed += len(task_ids)
