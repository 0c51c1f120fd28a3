"""The one-task ``/predict`` Label Studio sends when a task is opened: the same exactly-once ledger as the workers.

Label Studio stores what this call answers as a prediction of the backend's version.  If a batch
job of that version is predicting the task at the same time, answering in full would cost a second
LLM call and leave two predictions.  So the answer goes through the job's ledger:

- Label Studio has the task's prediction already (a worker pushed it): no prediction;
- a worker holds the task's stored result: it is handed to Label Studio (the worker will not push it);
- a worker is predicting it: wait up to ``OPENED_TASK_WAIT`` for its result, then as above; past that,
  no prediction (the job pushes it);
- nobody: predict it here and record it as handed to Label Studio, so a job that reaches the task
  later neither calls the LLM nor pushes (it checks Label Studio for it after ``HANDOVER_GRACE``).

Every prediction in the ledger carries the digest of the data it was made from, and is handed over only
to a request that sent the same data: a caller that names a task id with other data gets a prediction of
its own data, recorded nowhere, and learns nothing of the task's.  What it records for a task id with
its own data is never pushed: a job predicts the data Label Studio holds and drops what the ledger made
from other data (``worker/chunks.py``).

"No prediction" is an error entry: Label Studio 1.23 stores nothing for it, shows the annotator nothing
and logs the message.  What remains: Label Studio stores the answer after the backend replied; if it
dropped the answer (its own timeout), a job that reaches the task after the grace finds it missing and
pushes the kept result (no LLM call) — a task no job reaches stays without a prediction of this version.
"""

from __future__ import annotations

import time
import uuid
from typing import cast

from shared.adapters.jobs import Jobs
from shared.adapters.ledger import Ledger
from shared.domain.errors import TaskError
from shared.domain.types import Prediction, Task, data_digest
from shared.predictor import Predictor
from shared.projects import PredictionContext

POLL_SECONDS = 0.2  # not a setting: how often a waiting request looks for the job's answer (OPENED_TASK_WAIT bounds it)


class OpenedTasks:
    def __init__(self, jobs: Jobs, predictor: Predictor, claim_seconds: int, wait_seconds: float) -> None:
        self.jobs = jobs
        self.predictor = predictor
        self.claim_seconds = claim_seconds
        self.wait_seconds = wait_seconds

    def answers(self, ctx: PredictionContext, tasks: list[Task]) -> list[Prediction | TaskError]:
        """One answer per task, concurrently as ``Predictor.outcomes`` does."""
        return self.predictor.concurrently(lambda task: self.answer(ctx, task), tasks)

    def answer(self, ctx: PredictionContext, task: Task) -> Prediction | TaskError:
        task_id = task.get("id")
        if ctx.project is None or not isinstance(task_id, int):  # no job can hold it: nothing to share
            return self.predictor.outcome(ctx, task)
        digest = data_digest(task.get("data") or {})
        ledger = self.jobs.ledger(ctx.project, ctx.model_version)
        owner = f"opened-{uuid.uuid4().hex}"
        deadline = time.monotonic() + self.wait_seconds
        wanted = False
        while True:
            taken = self._from_ledger(ctx, ledger, task, task_id, digest)
            if taken is not None:
                return taken
            claims = ledger.claim([task_id], owner, self.claim_seconds)
            if claims.held:
                with claims:
                    taken = self._from_ledger(ctx, ledger, task, task_id, digest)  # a worker may have just finished
                    if taken is not None:
                        return taken
                    outcome = self.predictor.outcome(ctx, task)
                    return outcome if isinstance(outcome, TaskError) else self.offer(ctx, task, task_id, outcome)
            if time.monotonic() >= deadline:
                return TaskError(f"task {task_id}: a batch job is predicting it and will push the prediction")
            if not wanted:  # a worker predicts it: its pusher leaves the prediction for this request to take
                ledger.want(task_id, deadline - time.monotonic() + POLL_SECONDS)
                wanted = True
            time.sleep(POLL_SECONDS)

    def offer_each(
        self, ctx: PredictionContext, tasks: list[Task], predictions: list[Prediction]
    ) -> list[Prediction | TaskError]:
        """``offer`` for each task that a job could also hold (the others' predictions go as they are)."""
        return [
            self.offer(ctx, task, task_id, prediction)
            if ctx.project is not None and isinstance(task_id := task.get("id"), int)
            else prediction
            for task, prediction in zip(tasks, predictions, strict=True)
        ]

    def offer(self, ctx: PredictionContext, task: Task, task_id: int, prediction: Prediction) -> Prediction | TaskError:
        """Give Label Studio a prediction made here (or found in the cache) from the task data it sent, unless a
        job has put one of the same data there.  A job's prediction of other data stays the job's: this one
        is answered unrecorded (the job checks Label Studio before it pushes its own).  ``task_id`` is the task's
        own id, which the caller has checked is an int: only such a task can be a job's."""
        ledger = self.jobs.ledger(ctx.project, ctx.model_version)
        recorded = ledger.hand_over_new(task_id, prediction, data_digest(task.get("data") or {}))
        if recorded == "there":
            return self._already_there(task_id, ctx.model_version)
        return prediction

    def _from_ledger(
        self, ctx: PredictionContext, ledger: Ledger, task: Task, task_id: int, digest: str
    ) -> Prediction | TaskError | None:
        """The answer the ledger decides: a worker's waiting prediction of this data, handed to Label Studio; an
        error entry when one is there already; when the ledger's was made from other data, a prediction of the
        caller's data made here and recorded nowhere; None when there is nothing yet."""
        state, prediction = ledger.hand_over(task_id, digest)
        if state == "taken":
            return cast(Prediction, prediction)
        if state == "other":
            return self.predictor.outcome(ctx, task)
        if state in ("pushed", "pushing"):
            return self._already_there(task_id, ctx.model_version)
        return None

    @staticmethod
    def _already_there(task_id: object, version: str) -> TaskError:
        return TaskError(f"task {task_id}: a batch job has put its prediction of {version} there")
