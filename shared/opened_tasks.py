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

"No prediction" is an error entry: Label Studio 1.23 stores nothing for it, shows the annotator nothing
and logs the message.  What remains: Label Studio stores the answer after the backend replied; if it
dropped the answer (its own timeout), a job that reaches the task after the grace finds it missing and
pushes the kept result (no LLM call) — a task no job reaches stays without a prediction of this version.
"""

from __future__ import annotations

import time
import uuid
from typing import cast

from shared.adapters.jobs import ClaimKeeper, Jobs, Ledger
from shared.domain.errors import TaskError
from shared.domain.types import Prediction, Task
from shared.predictor import Predictor
from shared.projects import PredictionContext

POLL_SECONDS = 0.2


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
        ledger = self.jobs.ledger(ctx.project, ctx.model_version)
        owner = f"opened-{uuid.uuid4().hex}"
        deadline = time.monotonic() + self.wait_seconds
        wanted = False
        while True:
            taken = self._take(ledger, task_id, ctx.model_version)
            if taken is not None:
                return taken
            claimed, _ = ledger.claim([task_id], owner, self.claim_seconds)
            if claimed:
                with ClaimKeeper(ledger, claimed, owner, self.claim_seconds):
                    taken = self._take(ledger, task_id, ctx.model_version)  # a worker may have just finished
                    if taken is not None:
                        return taken
                    outcome = self.predictor.outcome(ctx, task)
                    return outcome if isinstance(outcome, TaskError) else self.offer(ctx, task_id, outcome)
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
            self.offer(ctx, task_id, prediction)
            if ctx.project is not None and isinstance(task_id := task.get("id"), int)
            else prediction
            for task, prediction in zip(tasks, predictions, strict=True)
        ]

    def offer(self, ctx: PredictionContext, task_id: int, prediction: Prediction) -> Prediction | TaskError:
        """Give Label Studio a prediction made here (or found in the cache), unless a job has put one there."""
        if self.jobs.ledger(ctx.project, ctx.model_version).hand_over_new(task_id, dict(prediction)):
            return prediction
        return self._already_there(task_id, ctx.model_version)

    @staticmethod
    def _take(ledger: Ledger, task_id: int, version: str) -> Prediction | TaskError | None:
        """The worker's waiting prediction, handed to Label Studio; an error entry when one is there already;
        None when there is nothing yet."""
        state, prediction = ledger.hand_over(task_id)
        if state == "taken":
            return cast(Prediction, prediction)
        if state in ("pushed", "pushing"):
            return OpenedTasks._already_there(task_id, version)
        return None

    @staticmethod
    def _already_there(task_id: int, version: str) -> TaskError:
        return TaskError(f"task {task_id}: a batch job has put its prediction of {version} there")
