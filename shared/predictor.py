"""One task in, one Label Studio prediction out: the path shared by the API and the workers.

A ``PredictionContext`` (``shared.projects``) says what every task of a request has in common;
``predict`` handles one task and ``outcomes`` several, concurrently but at most ``LLM_CONCURRENCY`` at
once per process; whatever goes wrong with one task (an exception of any kind) fails that task alone.
"""

from __future__ import annotations

import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor

from shared.adapters import deadline
from shared.adapters.images import image_url_for_model
from shared.adapters.jobs import Jobs
from shared.adapters.label_studio import LabelStudioGateway, LabelStudioGateways
from shared.adapters.llm import LLM
from shared.adapters.netguard import AddressPolicy
from shared.adapters.store import Store
from shared.domain.config import Settings
from shared.domain.errors import TaskError
from shared.domain.prompts import build_messages, render_prompt
from shared.domain.regions import build_regions
from shared.domain.types import Prediction, Task
from shared.domain.untrusted import lone_surrogate_message, lone_surrogate_path
from shared.logs import log_context
from shared.projects import PredictionContext

log = logging.getLogger(__name__)


class Predictor:
    def __init__(
        self, settings: Settings, store: Store, jobs: Jobs, llm: LLM, label_studio: LabelStudioGateways
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.llm = llm
        self.label_studio = label_studio
        self.policy = AddressPolicy.from_settings(settings)
        self._pool = ThreadPoolExecutor(max_workers=settings.llm_concurrency, thread_name_prefix="llm")

    def close(self) -> None:
        """Wait for the calls in flight and stop the pool's threads."""
        self._pool.shutdown(wait=True)

    def gateway(self, ctx: PredictionContext) -> LabelStudioGateway | None:
        return self.label_studio(ctx.access) if ctx.access else None

    def messages_for(self, ctx: PredictionContext, data: dict) -> list[dict]:
        if ctx.prompt is None:
            raise TaskError(ctx.prompt_error or "no prompt")
        bad_text = lone_surrogate_path(data, "data")
        if bad_text:
            raise TaskError(f"task {lone_surrogate_message(bad_text)}")
        text = render_prompt(ctx.spec, ctx.config.prompt, ctx.prompt, data)
        image_url = None
        if ctx.spec.source.tag == "Image":
            image_url = image_url_for_model(
                data.get(ctx.spec.source_field),
                self.gateway(ctx),
                self.settings.max_image_bytes,
                self.policy,
                ctx.access_problem,
            )
        return build_messages(text, image_url)

    def predict(self, ctx: PredictionContext, task: Task) -> Prediction:
        """A prediction for one task, as Label Studio stores it; raises TaskError when it cannot be made."""
        messages = self.messages_for(ctx, task.get("data") or {})
        answer = self.llm.complete(ctx.config.llm, messages, interactive=ctx.interactive)
        if not answer.cached:
            self._record_usage(ctx, answer.prompt_tokens, answer.completion_tokens)
        return self.prediction(ctx, answer.texts)

    def _record_usage(self, ctx: PredictionContext, tokens_in: int, tokens_out: int) -> None:
        if ctx.project:
            self.store.add_usage(ctx.project, ctx.config.llm.model, tokens_in, tokens_out)
        if ctx.job_id:
            self.jobs.add_usage(ctx.job_id, tokens_in, tokens_out)

    def prediction(self, ctx: PredictionContext, answers: list[str]) -> Prediction:
        regions, score = build_regions(ctx.spec, ctx.prompt, answers, self.settings.choice_match_threshold)
        return {"result": regions, "score": score, "model_version": ctx.model_version}

    def empty(self, ctx: PredictionContext) -> Prediction:
        return {"result": [], "score": 0.0, "model_version": ctx.model_version}

    def outcome(self, ctx: PredictionContext, task: Task) -> Prediction | TaskError:
        """A prediction, or the TaskError that stopped it: one task's failure never escapes.

        Not only our own errors: an exception of any kind (a provider body that breaks a parser, text that
        cannot be encoded) fails this task with its type named, and the request's or chunk's other tasks go on.
        """
        with log_context(job_id=ctx.job_id, task_id=task.get("id")):
            try:
                return self.predict(ctx, task)
            except TaskError as exc:
                log.warning("task %s: %s", task.get("id"), exc)
                return deadline.overdue(exc)
            except Exception as exc:
                log.exception("task %s: unexpected error", task.get("id"))
                return deadline.overdue(TaskError(f"unexpected error: {type(exc).__name__}: {exc}"[:500]))

    def outcomes(self, ctx: PredictionContext, tasks: list[Task]) -> list[Prediction | TaskError]:
        """``outcome`` for each task, at most LLM_CONCURRENCY at once in this process."""
        if len(tasks) == 1:
            return [self.outcome(ctx, tasks[0])]
        # Each task runs in a copy of the caller's context, so a request's deadline reaches the pool's threads.
        contexts = [contextvars.copy_context() for _ in tasks]
        return list(self._pool.map(lambda run, task: run.run(self.outcome, ctx, task), contexts, tasks))

    def cached_predictions(self, ctx: PredictionContext, tasks: list[Task]) -> list[Prediction] | None:
        """All predictions from the LLM cache, or None as soon as one task would need a call.

        Decides whether a batch can be answered at once; images are not fetched for this check.
        """
        if ctx.prompt is None or ctx.spec.source.tag == "Image":
            return None
        results: list[Prediction] = []
        for task in tasks:
            try:
                messages = self.messages_for(ctx, task["data"])
            except TaskError:
                return None
            answer = self.llm.cached(ctx.config.llm, messages)
            if answer is None:
                return None
            results.append(self.prediction(ctx, answer.texts))
        return results
