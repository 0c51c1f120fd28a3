"""What a batch over a project's tasks will cost and how long it will take: ``llm-backend estimate``,
``GET /estimate`` and the figures ``llm-backend batch`` shows before it starts.

Input tokens are the real requests: each sampled task's messages and answer schema are built by
``Predictor.request_for`` (the code the workers run) and counted offline.  The LLM response cache then
serves twice: a sampled task whose request is cached is a cache hit (it costs nothing), and every cached
answer of this prompt, on any task of the project, is a request whose usage the provider reported, so the
ratio of reported to counted prompt tokens calibrates the counts, and its completion tokens are the output
to expect.  Without cached
answers the output comes from the project's usage history (tokens over calls), else from the answer schema.

Large projects are sampled (``SAMPLE`` tasks spread evenly): cache hits are scaled up from the sample,
token means come from it.  Images are fetched for the sampled tasks only, as the workers would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.adapters.metrics import bounded, known_models, mean_seconds
from shared.adapters.queue import live_worker_slots
from shared.domain.answers.output_modes import resolve_output_mode
from shared.domain.errors import TaskError
from shared.domain.estimation.estimate import estimate_run
from shared.domain.estimation.tokens import calibrated, calibration_factor, count_request_tokens, expected_output_tokens
from shared.domain.labeling.schema import answer_schema
from shared.domain.types import Task
from shared.project_tasks import OpenProject, TaskSelection, open_project, require_prompt, tasks_to_predict
from shared.projects import PredictionContext
from shared.reports.estimate_report import ProjectEstimate
from shared.services import Services

SAMPLE = 1000
ASSUMED_LATENCY_SECONDS = 2.0  # one call, before any was observed


def evenly_spaced(tasks: Sequence[Task], size: int) -> list[Task]:
    """At most ``size`` tasks, evenly spaced (all of them when there are fewer)."""
    if len(tasks) <= size:
        return list(tasks)
    return [tasks[index * len(tasks) // size] for index in range(size)]


@dataclass
class _Sample:
    """What the sampled requests showed."""

    counted: list[int] = field(default_factory=list)  # tokens of the requests not in the cache
    hits: int = 0
    unusable: int = 0
    encoding: str = ""
    exact: bool = True
    reported_in: int = 0  # cached answers of this prompt: the provider's prompt tokens…
    estimated_in: int = 0  # …and ours for the same requests
    outputs: list[int] = field(default_factory=list)  # …and their completion tokens


class Estimator:
    def __init__(self, services: Services) -> None:
        self.services = services

    def estimate(
        self,
        project: OpenProject,
        selection: TaskSelection,
        workers: int | None = None,
        sample_size: int = SAMPLE,
        project_total: int | None = None,
    ) -> ProjectEstimate:
        """Raises ConfigError when the project has no prompt (nothing could be predicted).

        ``project_total``: the selection is a sample of the project's first pages, and the project holds that
        many tasks; the tasks to predict are scaled up from the sample's share."""
        ctx = project.ctx
        require_prompt(ctx)
        settings = self.services.settings
        llm = ctx.config.llm
        sampled = evenly_spaced(selection.tasks, sample_size)
        sample = _Sample()
        for task in sampled:
            self._measure(ctx, task, sample, to_predict=True)
        for task in evenly_spaced(selection.skipped, sample_size):
            self._measure(ctx, task, sample, to_predict=False)

        factor = calibration_factor(sample.reported_in, sample.estimated_in)
        inputs = [calibrated(tokens, factor) for tokens in sample.counted]
        output, output_source = self._output_tokens(ctx, sampled, sample)
        sampled_from, seen, to_predict = None, selection.seen, len(selection.tasks)
        if project_total is not None and project_total > selection.seen > 0:
            sampled_from, seen = selection.seen, project_total
            to_predict = round(len(selection.tasks) * project_total / selection.seen)
        scale = to_predict / len(sampled) if sampled else 0.0
        hits, failing = round(sample.hits * scale), round(sample.unusable * scale)
        latency = mean_seconds(
            self.services.store, "llm_seconds", provider=llm.provider, model=bounded(llm.model, known_models(settings))
        )
        slots, workers_source = self._workers(workers)
        concurrency = min(settings.llm_concurrency, settings.batch_chunk_size)
        price = settings.prices.get(llm.model)
        run = estimate_run(
            tasks=to_predict - failing,
            input_tokens=inputs or [0],  # no request counted: every sampled task is cached or would fail
            output_tokens=output,
            price=price,
            latency_seconds=latency or ASSUMED_LATENCY_SECONDS,
            cache_hits=hits,
            rpm=settings.llm_rpm,
            tpm=settings.llm_tpm,
            workers=slots,
            concurrency=concurrency,
            batch_price_factor=settings.llm_batch_discount,
        )
        return ProjectEstimate(
            project=project.id,
            model=llm.model,
            model_version=ctx.model_version,
            tasks_seen=seen,
            tasks=to_predict,
            sampled_from=sampled_from,
            failing=failing,
            run=run,
            sampled=len(sampled),
            encoding=sample.encoding,
            exact_encoding=sample.exact,
            calibration=factor,
            calibration_requests=len(sample.outputs),
            input_tokens_per_request=sum(inputs) / len(inputs) if inputs else 0.0,
            output_tokens_per_request=output,
            output_source=output_source,
            latency_seconds=latency or ASSUMED_LATENCY_SECONDS,
            latency_source="observed mean" if latency else "assumed: no call observed yet",
            workers=slots,
            workers_source=workers_source,
            concurrency=concurrency,
            price=price,
            batch_price_factor=settings.llm_batch_discount,
        )

    def _measure(self, ctx: PredictionContext, task: Task, sample: _Sample, to_predict: bool) -> None:
        """Build one task's request as the workers would, count it, and look it up in the LLM cache."""
        try:
            messages, output = self.services.predictor.request_for(ctx, task.get("data") or {}, task.get("id"))
        except TaskError:
            sample.unusable += to_predict
            return
        count = count_request_tokens(messages, ctx.config.llm.model, output.schema)
        sample.encoding, sample.exact = count.encoding, count.exact
        cached = self.services.predictor.llm.cached(ctx.config.llm, messages, output)
        if cached is not None and cached.prompt_tokens > 0:
            sample.reported_in += cached.prompt_tokens
            sample.estimated_in += count.tokens
            sample.outputs.append(cached.completion_tokens)
        if not to_predict:
            return
        if cached is not None:
            sample.hits += 1
        else:
            sample.counted.append(count.tokens)

    def _output_tokens(self, ctx: PredictionContext, sampled: list[Task], sample: _Sample) -> tuple[int, str]:
        if sample.outputs:
            mean = sum(sample.outputs) / len(sample.outputs)
            return expected_output_tokens(mean, None), f"{len(sample.outputs)} cached answers of this prompt"
        model = ctx.config.llm.model
        calls = self.services.store.calls(ctx.project).get(model, 0) if ctx.project else 0
        if ctx.project and calls:
            tokens_out = self.services.store.usage(ctx.project)[model]["out"]
            return expected_output_tokens(tokens_out / calls, None), f"the project's {calls} calls to {model}"
        mode = resolve_output_mode(ctx.config.output_mode, ctx.config.llm.provider, ctx.config.llm.azure_api_version)
        schema = None
        if sampled and mode != "text":  # the schema the first sampled task is asked with (its candidates, if any)
            data = sampled[0]["data"]
            schema = answer_schema(self.services.predictor.task_spec(ctx, data), data, ctx.config.vision_box_format)
        source = "the answer schema (no history yet)" if schema else "a default (no history, no schema)"
        return expected_output_tokens(None, schema), source

    def _workers(self, given: int | None) -> tuple[int, str]:
        if given is not None:
            return given, "given"
        live = live_worker_slots(self.services.celery)
        return (live, "live") if live else (1, "none answered: assumed 1")


def estimate_project(
    services: Services, project_id: int, only_unlabeled: bool, workers: int | None = None
) -> ProjectEstimate:
    """The estimate of the batch ``llm-backend batch`` would start now for this project."""
    project = open_project(services, project_id)
    require_prompt(project.ctx)
    selection = tasks_to_predict(project, only_unlabeled)
    return Estimator(services).estimate(project, selection, workers=workers)
