"""One task in, one Label Studio prediction out: the path shared by the API and the workers.

A ``PredictionContext`` (``shared.projects``) says what every task of a request has in common;
``predict`` handles one task and ``outcomes`` several, concurrently but at most ``LLM_CONCURRENCY`` at
once per process; whatever goes wrong with one task (an exception of any kind) fails that task alone.
The model is told the answer's schema in the project's output mode (except in ``text`` mode, the
reference's plain prompt), and its answer is read by ``shared.domain.reading``.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from redis.client import Pipeline

from shared.adapters import deadline
from shared.adapters.images import image_url_for_model
from shared.adapters.jobs import Jobs
from shared.adapters.label_studio import LabelStudioGateway, LabelStudioGateways
from shared.adapters.llm import LLM, LLMAnswer, OutputRequest
from shared.adapters.metrics import CONTROL_TYPES, Metrics, bounded
from shared.adapters.netguard import AddressPolicy
from shared.adapters.store import Store
from shared.domain.config import Settings
from shared.domain.errors import TaskError
from shared.domain.pricing import TokenUsage
from shared.domain.prompts import compose_messages, task_images
from shared.domain.reading import Abstention, read_prediction
from shared.domain.schema import answer_instructions, answer_schema, task_instructions
from shared.domain.types import Prediction, Task
from shared.domain.untrusted import lone_surrogate_message, lone_surrogate_path
from shared.logs import log_context
from shared.projects import PredictionContext
from shared.spend import DailySpend

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class Predictor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        jobs: Jobs,
        llm: LLM,
        label_studio: LabelStudioGateways,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.llm = llm
        self.label_studio = label_studio
        self.metrics = metrics
        self.policy = AddressPolicy.from_settings(settings)
        self.spend = DailySpend(settings, store)
        self._pool = ThreadPoolExecutor(max_workers=settings.llm_concurrency, thread_name_prefix="llm")

    def close(self) -> None:
        """Wait for the calls in flight and stop the pool's threads."""
        self._pool.shutdown(wait=True)

    def gateway(self, ctx: PredictionContext) -> LabelStudioGateway | None:
        return self.label_studio(ctx.access) if ctx.access else None

    def request_for(self, ctx: PredictionContext, data: dict[str, Any]) -> tuple[list[dict[str, Any]], OutputRequest]:
        """The messages for one task and how its answer is asked for.

        Every object of the config goes to the model, each named; images as parts of the message, in the
        order the text numbers them (a ``valueList`` Image gives one part per picture).
        """
        if ctx.prompt is None:
            raise TaskError(ctx.prompt_error or "no prompt")
        bad_text = lone_surrogate_path(data, "data")
        if bad_text:
            raise TaskError(f"task {lone_surrogate_message(bad_text)}")
        structured = ctx.config.output_mode != "text"
        images = task_images(ctx.spec, data)
        gateway = self.gateway(ctx) if images else None
        image_urls = [
            image_url_for_model(item, gateway, self.settings.max_image_bytes, self.policy, ctx.access_problem)
            for _obj, value in images
            for item in (value if isinstance(value, list) else [value])
        ]
        messages = compose_messages(
            ctx.spec,
            ctx.config.prompt,
            ctx.prompt,
            data,
            instructions=answer_instructions(ctx.spec) if structured else None,
            task_notes=task_instructions(ctx.spec, data),
            image_urls=image_urls,
        )
        return messages, OutputRequest(ctx.config.output_mode, answer_schema(ctx.spec, data) if structured else None)

    def predict(self, ctx: PredictionContext, task: Task) -> Prediction:
        """A prediction for one task, as Label Studio stores it; raises TaskError when it cannot be made."""
        data = task.get("data") or {}
        messages, output = self.request_for(ctx, data)
        # The answer for the cache and the usage counts: should Redis fail them, they are lost, not the answer
        # paid for (the caller keeps it, and a chunk records it once Redis is back: no second LLM call).
        with self.store.one_round_trip(best_effort=True) as writes:
            answer = self.llm.complete(
                ctx.config.llm,
                messages,
                ctx.interactive,
                output=output,
                writes=writes,
                before_call=lambda: self.admit(ctx),  # cached answers are free
            )
            if not answer.cached:
                usage = TokenUsage(answer.prompt_tokens, answer.completion_tokens, answer.cached_tokens)
                self.record_usage(ctx, usage, writes=writes)
        return self.prediction(ctx, data, answer, task.get("id"))

    def admit(self, ctx: PredictionContext) -> None:
        """Before a call reaches the provider: the project's ``PROJECT_DAILY_USD``, and for a job's task the job's
        pause and budget (raises LimitReached or JobPaused)."""
        self.spend.check(ctx.project)
        if ctx.job_id:
            self.jobs.admit_call(ctx.job_id)

    def record_usage(
        self,
        ctx: PredictionContext,
        usage: TokenUsage,
        calls: int = 1,
        via_batch: bool = False,
        writes: Pipeline | None = None,
    ) -> None:
        """Count the tokens of calls that reached the provider, for the project (and its day's spend) and the job
        (in one round trip, or in the caller's ``Store.one_round_trip``)."""
        with self.store.one_round_trip(writes) as pipe:
            if ctx.project:
                self.store.add_usage(ctx.project, ctx.config.llm.model, usage, calls, pipe)
                self.spend.record(ctx.project, ctx.config.llm.model, usage, via_batch, pipe)
            if ctx.job_id:
                self.jobs.add_usage(ctx.job_id, usage, via_batch, pipe, calls)

    def prediction(
        self, ctx: PredictionContext, data: dict[str, Any], answer: LLMAnswer, task_id: object = None
    ) -> Prediction:
        """The answer's regions (what Label Studio would refuse is dropped and logged), scored by the
        answer's logprobs when the provider sent them, else by how well the labels matched; where several
        controls chose labels, each region also carries its control's score."""
        reading = read_prediction(
            ctx.spec, data, ctx.prompt, answer.messages(), answer.mode or "text", self.settings.choice_match_threshold
        )
        for note in reading.notes:
            log.info("task %s: %s", task_id, note)
        for reason in reading.filled.dropped:
            log.warning("task %s: dropped %s", task_id, reason)
        if reading.abstention:
            self.record_abstention(task_id, reading.abstention)
        score = reading.filled.score(answer.logprobs)
        regions = reading.filled.scored_regions(answer.logprobs)
        return {"result": regions, "score": score, "model_version": ctx.model_version}

    def record_abstention(self, task_id: object, abstention: Abstention) -> None:
        """A model that declined gives a prediction, not an error: say why in the log, count it in /metrics."""
        outcomes = ", ".join(f"{name}: {outcome}" for name, (_tag, outcome) in abstention.controls.items())
        log.info("task %s: the model declined (%r): %s", task_id, abstention.reason, outcomes)
        for tag, outcome in abstention.controls.values():
            self.metrics.count("abstentions", control_type=bounded(tag, CONTROL_TYPES), outcome=outcome)

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
        return self.concurrently(lambda task: self.outcome(ctx, task), tasks)

    def concurrently(self, work: Callable[[T], R], items: list[T]) -> list[R]:
        """``work`` on each item in this process's pool of LLM_CONCURRENCY threads, results in order.

        Each item runs in a copy of the caller's context, so a request's deadline reaches the pool's threads.
        """
        if len(items) == 1:
            return [work(items[0])]
        contexts = [contextvars.copy_context() for _ in items]
        return list(self._pool.map(lambda run, item: run.run(work, item), contexts, items))

    def cached_predictions(self, ctx: PredictionContext, tasks: list[Task]) -> list[Prediction] | None:
        """All predictions from the LLM cache, or None as soon as one task would need a call.

        Decides whether a batch can be answered at once; images are not fetched for this check, so a
        task with images always needs the workers.
        """
        if ctx.prompt is None:
            return None
        results: list[Prediction] = []
        for task in tasks:
            data = task["data"]
            try:
                if task_images(ctx.spec, data):
                    return None
                messages, output = self.request_for(ctx, data)
                answer = self.llm.cached(ctx.config.llm, messages, output)
                if answer is None:
                    return None
                results.append(self.prediction(ctx, data, answer, task.get("id")))
            except TaskError:
                return None
        return results
