"""One task in, one Label Studio prediction out: the path shared by the API and the workers.

A ``PredictionContext`` (``shared.projects``) says what every task of a request has in common;
``predict`` handles one task and ``outcomes`` several, concurrently but at most ``LLM_CONCURRENCY`` at
once per process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from shared.adapters.images import image_url_for_model
from shared.adapters.jobs import Jobs
from shared.adapters.label_studio import LabelStudioGateway, LabelStudioGateways
from shared.adapters.llm import LLM
from shared.adapters.store import Store
from shared.domain.config import Settings
from shared.domain.errors import TaskError
from shared.domain.prompts import build_messages, render_prompt
from shared.domain.regions import build_regions
from shared.domain.types import Prediction, Task
from shared.logs import log_context
from shared.projects import PredictionContext

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class Predictor:
    def __init__(
        self, settings: Settings, store: Store, jobs: Jobs, llm: LLM, label_studio: LabelStudioGateways
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.llm = llm
        self.label_studio = label_studio
        self._pool = ThreadPoolExecutor(max_workers=settings.llm_concurrency, thread_name_prefix="llm")

    def close(self) -> None:
        """Wait for the calls in flight and stop the pool's threads."""
        self._pool.shutdown(wait=True)

    def gateway(self, ctx: PredictionContext) -> LabelStudioGateway | None:
        return self.label_studio(ctx.access) if ctx.access else None

    def messages_for(self, ctx: PredictionContext, data: dict) -> list[dict]:
        if ctx.prompt is None:
            raise TaskError(ctx.prompt_error or "no prompt")
        text = render_prompt(ctx.spec, ctx.config.prompt, ctx.prompt, data)
        image_url = None
        if ctx.spec.source.tag == "Image":
            image_url = image_url_for_model(
                data.get(ctx.spec.source_field), self.gateway(ctx), self.settings.max_image_bytes
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
        """A prediction, or the TaskError that stopped it: one task's failure never escapes."""
        with log_context(job_id=ctx.job_id, task_id=task.get("id")):
            try:
                return self.predict(ctx, task)
            except TaskError as exc:
                log.warning("task %s: %s", task.get("id"), exc)
                return exc

    def outcomes(self, ctx: PredictionContext, tasks: list[Task]) -> list[Prediction | TaskError]:
        """``outcome`` for each task, at most LLM_CONCURRENCY at once in this process."""
        return self.concurrently(lambda task: self.outcome(ctx, task), tasks)

    def concurrently(self, work: Callable[[T], R], items: list[T]) -> list[R]:
        """``work`` on each item in this process's pool of LLM_CONCURRENCY threads, results in order."""
        if len(items) == 1:
            return [work(items[0])]
        return list(self._pool.map(work, items))

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
