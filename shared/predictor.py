"""One task in, one Label Studio prediction out: the path shared by the API and the workers.

A ``PredictionContext`` (``shared.projects``) says what every task of a request has in common;
``predict`` handles one task and ``outcomes`` several, concurrently but at most ``LLM_CONCURRENCY`` at
once per process; whatever goes wrong with one task (an exception of any kind) fails that task alone.
The model is told the answer's schema in the project's output mode (except in ``text`` mode, the
reference's plain prompt), and its answer is read by ``shared.domain.answers.reading``.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from redis.client import Pipeline

from shared.adapters import deadline
from shared.adapters.embeddings import Embeddings
from shared.adapters.images import image_size, image_url_for_model
from shared.adapters.jobs import Jobs
from shared.adapters.label_studio import LabelStudioGateway, LabelStudioGateways
from shared.adapters.llm import LLM, LLMAnswer, OutputRequest
from shared.adapters.metrics import CONTROL_TYPES, Metrics, bounded
from shared.adapters.netguard import AddressPolicy
from shared.adapters.store import Store
from shared.domain.answers.geometry import ImageSize
from shared.domain.answers.reading import Abstention, read_prediction
from shared.domain.config import Settings
from shared.domain.errors import TaskError
from shared.domain.estimation.pricing import TokenUsage
from shared.domain.labeling.schema import answer_instructions, answer_schema, task_instructions
from shared.domain.labeling.spec import SHAPES, LabelingSpec, TaskObject
from shared.domain.prompts.few_shot import render_examples
from shared.domain.prompts.label_selection import narrowed
from shared.domain.prompts.long_texts import merged, request_data, split_task
from shared.domain.prompts.messages import compose_messages, task_images, task_text
from shared.domain.types import Prediction, Task, data_digest
from shared.domain.untrusted import lone_surrogate_message, lone_surrogate_path
from shared.logs import log_context
from shared.projects import PredictionContext
from shared.spend import DailySpend

log = logging.getLogger(__name__)
T = TypeVar("T")
UsageSink = Callable[[TokenUsage], None]
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
        self.embeddings = Embeddings(llm, store)
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

    @staticmethod
    def _checked_prompt(ctx: PredictionContext, data: dict[str, Any]) -> str:
        """The prompt, or TaskError for a task that cannot be sent: no prompt, or text that cannot be encoded."""
        if ctx.prompt is None:
            raise TaskError(ctx.prompt_error or "no prompt")
        bad_text = lone_surrogate_path(data, "data")
        if bad_text:
            raise TaskError(f"task {lone_surrogate_message(bad_text)}")
        return ctx.prompt

    def model_images(self, ctx: PredictionContext, data: dict[str, Any]) -> list[tuple[TaskObject, str]]:
        """Each picture of the task as it goes to the model (files Label Studio serves fetched and inlined), with
        its Image object, in the order the text numbers them (a ``valueList`` Image gives one per picture)."""
        images = task_images(ctx.spec, data)
        gateway = self.gateway(ctx) if images else None
        return [
            (obj, image_url_for_model(item, gateway, self.settings.max_image_bytes, self.policy, ctx.access_problem))
            for obj, value in images
            for item in (value if isinstance(value, list) else [value])
        ]

    def request_for(
        self, ctx: PredictionContext, data: dict[str, Any], task_id: object = None
    ) -> tuple[list[dict[str, Any]], OutputRequest]:
        """The messages for one task and how its answer is asked for (``request_with_images``)."""
        messages, output, _images = self.request_with_images(ctx, data, task_id)
        return messages, output

    def request_with_images(
        self, ctx: PredictionContext, data: dict[str, Any], task_id: object = None
    ) -> tuple[list[dict[str, Any]], OutputRequest, list[tuple[TaskObject, str]]]:
        """The messages for one task, how its answer is asked for, and the pictures sent (``model_images``).

        Every object of the config goes to the model, each named; images as parts of the message.  With few-shot
        on, the examples chosen for it (never the task itself, by ``task_id`` or by its data): a ``fixed`` set in
        the system message, the others at the start of the user message.
        """
        prompt = self._checked_prompt(ctx, data)
        structured = ctx.config.output_mode != "text"
        box_format = ctx.config.vision_box_format
        spec = self.task_spec(ctx, data)
        images = self.model_images(ctx, data)
        examples = self.examples_for(ctx, data, task_id, structured)
        static = ctx.config.few_shot.strategy == "fixed"
        messages = compose_messages(
            spec,
            ctx.config.prompt,
            prompt,
            data,
            instructions=answer_instructions(spec, box_format) if structured else None,
            task_notes=task_instructions(spec, data),
            image_urls=[url for _obj, url in images],
            fixed_examples=examples if static else None,
            task_examples=None if static else examples,
        )
        schema = answer_schema(spec, data, box_format) if structured else None
        return messages, OutputRequest(ctx.config.output_mode, schema), images

    def examples_for(
        self, ctx: PredictionContext, data: dict[str, Any], task_id: object, structured: bool
    ) -> str | None:
        """The few-shot examples chosen for this task, as the text the messages carry; None when few-shot is off.
        ``similar`` and ``diverse`` rank by SIMILARITY_EMBEDDINGS_MODEL's embeddings when set."""
        few_shot = ctx.config.few_shot
        if ctx.examples is None or not few_shot.k:
            return None
        embed = None
        if few_shot.embeddings_model and few_shot.strategy != "fixed":
            embed = self.embeddings.embedder(ctx.config.llm, few_shot.embeddings_model)
        chosen = ctx.examples.choose(
            few_shot.k,
            few_shot.strategy,
            task_text(ctx.spec, data),
            task_id if isinstance(task_id, int) else None,
            data_digest(data),
            embed,
        )
        return render_examples(chosen, structured)

    def task_spec(self, ctx: PredictionContext, data: dict[str, Any]) -> LabelingSpec:
        """The labeling config as this task sees it: large label sets narrowed to the task's candidates
        (LABEL_SELECTION_THRESHOLD, LABEL_SELECTION_K; by SIMILARITY_EMBEDDINGS_MODEL's embeddings when set, from
        the project's endpoint), for the request and for reading its answer alike."""
        rule = ctx.config.label_selection
        embed = self.embeddings.embedder(ctx.config.llm, rule.embeddings_model) if rule.embeddings_model else None
        return narrowed(ctx.spec, data, rule, embed)

    def predict(self, ctx: PredictionContext, task: Task, on_usage: UsageSink | None = None) -> Prediction:
        """A prediction for one task, as Label Studio stores it; raises TaskError when it cannot be made.
        ``on_usage`` also gets the tokens of the calls that reached the provider (a caller that totals its own
        calls' cost: ``llm-backend improve``).

        A task whose spans quote from a text above LONG_TEXT_CHARS is asked in parts (``long_texts``), one call
        after another through the same rate limit as every call; their tokens are the task's, counted once.
        """
        data = task.get("data") or {}
        split = split_task(ctx.spec, data, self.settings.long_text_chars)
        parts = request_data(split, data)
        requests = [self.request_with_images(ctx, part_data, task.get("id")) for part_data in parts]
        # The answer for the cache and the usage counts: should Redis fail them, they are lost, not the answer
        # paid for (the caller keeps it, and a chunk records it once Redis is back: no second LLM call).
        with self.store.one_round_trip(best_effort=True) as writes:
            answers = [
                self.llm.complete(
                    ctx.config.llm,
                    messages,
                    ctx.interactive,
                    output=output,
                    writes=writes,
                    before_call=lambda: self.admit(ctx),  # cached answers are free
                )
                for messages, output, _images in requests
            ]
            called = [answer for answer in answers if not answer.cached]
            if called:
                usage = sum(
                    (TokenUsage(a.prompt_tokens, a.completion_tokens, a.cached_tokens) for a in called), TokenUsage()
                )
                self.record_usage(ctx, usage, calls=len(called), writes=writes)
                if on_usage is not None:
                    on_usage(usage)
        predictions = [
            self.prediction(ctx, part_data, answer, task.get("id"), images)
            for part_data, answer, (_messages, _output, images) in zip(parts, answers, requests, strict=True)
        ]
        return merged(split, predictions)

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

    def image_sizes(
        self, ctx: PredictionContext, data: dict[str, Any], images: list[tuple[TaskObject, str]] | None
    ) -> dict[str, list[ImageSize | None]]:
        """The size of each picture of the Image objects that shapes are predicted on (by object name), read from
        the picture the model was sent (fetched again when not given: a Batch API answer comes back long after);
        None for a public URL, which the provider fetches itself."""
        targets = {output.target.name for output in ctx.spec.outputs if output.kind in SHAPES}
        if not targets:
            return {}
        sizes: dict[str, list[ImageSize | None]] = {}
        for obj, url in self.model_images(ctx, data) if images is None else images:
            if obj.name in targets:
                sizes.setdefault(obj.name, []).append(image_size(url))
        return sizes

    def prediction(
        self,
        ctx: PredictionContext,
        data: dict[str, Any],
        answer: LLMAnswer,
        task_id: object = None,
        images: list[tuple[TaskObject, str]] | None = None,
    ) -> Prediction:
        """The answer's regions (what Label Studio would refuse is dropped and logged), scored by the
        answer's logprobs when the provider sent them, else by how well the labels matched; where several
        controls chose labels, each region also carries its control's score.  ``images``: what the model was
        sent (``model_images``), for the size of the images it placed shapes on."""
        reading = read_prediction(
            self.task_spec(ctx, data),
            data,
            ctx.prompt,
            answer.messages(),
            answer.mode or "text",
            self.settings.choice_match_threshold,
            ctx.config.vision_box_format,
            self.image_sizes(ctx, data, images),
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

    def outcome(self, ctx: PredictionContext, task: Task, on_usage: UsageSink | None = None) -> Prediction | TaskError:
        """A prediction, or the TaskError that stopped it: one task's failure never escapes.

        Not only our own errors: an exception of any kind (a provider body that breaks a parser, text that
        cannot be encoded) fails this task with its type named, and the request's or chunk's other tasks go on.
        """
        with log_context(job_id=ctx.job_id, task_id=task.get("id")):
            try:
                return self.predict(ctx, task, on_usage)
            except TaskError as exc:
                log.warning("task %s: %s", task.get("id"), exc)
                return deadline.overdue(exc)
            except Exception as exc:
                log.exception("task %s: unexpected error", task.get("id"))
                return deadline.overdue(TaskError(f"unexpected error: {type(exc).__name__}: {exc}"[:500]))

    def outcomes(
        self, ctx: PredictionContext, tasks: list[Task], on_usage: UsageSink | None = None
    ) -> list[Prediction | TaskError]:
        """``outcome`` for each task, at most LLM_CONCURRENCY at once in this process."""
        return self.concurrently(lambda task: self.outcome(ctx, task, on_usage), tasks)

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
                split = split_task(ctx.spec, data, self.settings.long_text_chars)
                predictions = []
                for part_data in request_data(split, data):
                    messages, output = self.request_for(ctx, part_data, task.get("id"))
                    answer = self.llm.cached(ctx.config.llm, messages, output)
                    if answer is None:
                        return None
                    predictions.append(self.prediction(ctx, part_data, answer, task.get("id")))
                results.append(merged(split, predictions))
            except TaskError:
                return None
        return results
