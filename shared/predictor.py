"""One task in, one Label Studio prediction out: the path shared by the API and the workers.

``Predictor.context`` resolves everything a request has in common (the project's settings, its
parsed labeling config, the prompt, the model version, how to reach Label Studio); ``predict`` then
handles one task and ``predict_many`` several, concurrently but at most ``LLM_CONCURRENCY`` at once
per process.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared.adapters.images import image_url_for_model
from shared.adapters.label_studio import LabelStudioAccess
from shared.adapters.llm import LLM
from shared.adapters.store import ProjectSetup, Store
from shared.adapters.usage import record_usage
from shared.domain.config import ExtraParams, ProjectConfig, Settings, decode_extra_params
from shared.domain.errors import TaskError
from shared.domain.labeling import LabelingSpec, parse_labeling_config
from shared.domain.prompts import build_messages, choose_prompt, prompt_from_regions, render_prompt
from shared.domain.regions import build_regions
from shared.domain.versions import model_version
from shared.logs import log_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionContext:
    """What every task of one request shares."""

    project: str | None
    label_config: str
    extra_params: dict[str, Any]
    config: ProjectConfig
    spec: LabelingSpec
    model_version: str
    prompt: str | None
    prompt_error: str | None
    access: LabelStudioAccess | None
    interactive: bool  # an annotator is waiting: Label Studio sent a context
    context_prompt: bool  # that context holds a prompt (a smart tag's context may not)
    job_id: str | None = None  # the batch job this context predicts for, for its token count


class Predictor:
    def __init__(self, settings: Settings, store: Store, llm: LLM) -> None:
        self.settings = settings
        self.store = store
        self.llm = llm
        self._pool = ThreadPoolExecutor(max_workers=settings.llm_concurrency, thread_name_prefix="llm")

    # --- per project -----------------------------------------------------------------------------
    def project_config(self, setup: ProjectSetup | None) -> ProjectConfig:
        return self.settings.for_project(ExtraParams.parse(setup.extra_params if setup else None))

    def project_prompt(self, project: str | None, config: ProjectConfig) -> str | None:
        """The prompt batches use: the annotators' latest, else DEFAULT_PROMPT where it applies."""
        stored = self.store.prompt(project) if project else None
        if stored:
            return stored
        if config.prompt.default_prompt and not config.prompt.use_internal_template:
            return config.prompt.default_prompt
        return None

    def spec(self, config: ProjectConfig, label_config: str | None) -> LabelingSpec:
        """The parsed labeling config; raises LabelingConfigError naming what is missing."""
        return parse_labeling_config(label_config, config.prompt.prompt_prefix, self.settings.max_label_config_bytes)

    def version_for(self, project: str | None, config: ProjectConfig, label_config: str) -> str:
        return model_version(config, label_config, self.project_prompt(project, config))

    def access_for(self, setup: ProjectSetup | None) -> LabelStudioAccess | None:
        url = self.settings.label_studio_url or (setup.hostname if setup else None)
        key = self.settings.label_studio_api_key
        token = key.get_secret_value() if key else (setup.access_token if setup else None)
        configured = bool(self.settings.label_studio_url)
        return LabelStudioAccess(url=url, api_key=token, configured=configured) if url and token else None

    def context(self, project: str | None, label_config: str | None, context: Any) -> PredictionContext:
        """Resolve a request; raises ConfigError or LabelingConfigError when the request cannot work."""
        setup = self.store.load_setup(project) if project else None
        label_config = label_config or (setup.label_config if setup else None)
        extra_params = decode_extra_params(setup.extra_params if setup else None)
        config = self.settings.for_project(ExtraParams.parse(extra_params))
        spec = self.spec(config, label_config)
        regions = context.get("result") if isinstance(context, dict) else None
        context_prompt = prompt_from_regions(regions, spec.prompt.name) if regions else None
        stored = self.project_prompt(project, config)
        prompt, prompt_error = None, None
        try:
            prompt = choose_prompt(context_prompt, stored, config.prompt)
        except TaskError as exc:
            prompt_error = str(exc)
        return PredictionContext(
            project=project,
            label_config=label_config,
            extra_params=extra_params,
            config=config,
            spec=spec,
            model_version=model_version(config, label_config, stored),
            prompt=prompt,
            prompt_error=prompt_error,
            access=self.access_for(setup),
            interactive=bool(regions),
            context_prompt=context_prompt is not None,
        )

    def snapshot(self, ctx: PredictionContext) -> dict[str, Any]:
        """What a batch job keeps of its request, so later prompt or config changes do not alter it."""
        return {
            "project": ctx.project,
            "label_config": ctx.label_config,
            "extra_params": ctx.extra_params,
            "model_version": ctx.model_version,
            "model": ctx.config.llm.model,
            "prompt": ctx.prompt,
            "prompt_error": ctx.prompt_error,
        }

    def from_snapshot(self, snapshot: dict[str, Any], job_id: str | None = None) -> PredictionContext:
        """A batch job's context; only how to reach Label Studio is read afresh (tokens may rotate)."""
        project = snapshot["project"]
        config = self.settings.for_project(ExtraParams.parse(snapshot["extra_params"]))
        return PredictionContext(
            project=project,
            label_config=snapshot["label_config"],
            extra_params=snapshot["extra_params"],
            config=config,
            spec=self.spec(config, snapshot["label_config"]),
            model_version=snapshot["model_version"],
            prompt=snapshot["prompt"],
            prompt_error=snapshot["prompt_error"],
            access=self.access_for(self.store.load_setup(project) if project else None),
            interactive=False,
            context_prompt=False,
            job_id=job_id,
        )

    # --- per task --------------------------------------------------------------------------------
    def messages_for(self, ctx: PredictionContext, data: dict) -> list[dict]:
        if ctx.prompt is None:
            raise TaskError(ctx.prompt_error or "no prompt")
        text = render_prompt(ctx.spec, ctx.config.prompt, ctx.prompt, data)
        image_url = None
        if ctx.spec.source.tag == "Image":
            image_url = image_url_for_model(data.get(ctx.spec.source_field), ctx.access, self.settings.max_image_bytes)
        return build_messages(text, image_url)

    def predict(self, ctx: PredictionContext, task: dict) -> dict:
        """A prediction for one task, as Label Studio stores it; raises TaskError when it cannot be made."""
        messages = self.messages_for(ctx, task.get("data") or {})
        answer = self.llm.complete(ctx.config.llm, messages, interactive=ctx.interactive)
        if not answer.cached:
            record_usage(
                self.store,
                ctx.project,
                ctx.job_id,
                ctx.config.llm.model,
                answer.prompt_tokens,
                answer.completion_tokens,
            )
        return self.prediction(ctx, answer.texts)

    def prediction(self, ctx: PredictionContext, answers: list[str]) -> dict:
        regions, score = build_regions(ctx.spec, ctx.prompt, answers, self.settings.choice_match_threshold)
        return {"result": regions, "score": score, "model_version": ctx.model_version}

    def empty(self, ctx: PredictionContext) -> dict:
        return {"result": [], "score": 0.0, "model_version": ctx.model_version}

    def outcome(self, ctx: PredictionContext, task: dict) -> dict | TaskError:
        """A prediction, or the TaskError that stopped it: one task's failure never escapes."""
        with log_context(job_id=ctx.job_id, task_id=task.get("id")):
            try:
                return self.predict(ctx, task)
            except TaskError as exc:
                log.warning("task %s: %s", task.get("id"), exc)
                return exc

    def outcomes(self, ctx: PredictionContext, tasks: list[dict]) -> list[dict | TaskError]:
        """``outcome`` for each task, at most LLM_CONCURRENCY at once in this process."""
        if len(tasks) == 1:
            return [self.outcome(ctx, tasks[0])]
        return list(self._pool.map(lambda task: self.outcome(ctx, task), tasks))

    def predict_many(self, ctx: PredictionContext, tasks: list[dict]) -> list[dict]:
        """Label Studio's ``results``: a failed task becomes an entry without ``result``, so Label Studio
        stores nothing for it and logs the message, while the other tasks' predictions are kept."""
        return [
            {"error": str(outcome), "model_version": ctx.model_version} if isinstance(outcome, TaskError) else outcome
            for outcome in self.outcomes(ctx, tasks)
        ]

    def cached_predictions(self, ctx: PredictionContext, tasks: list[dict]) -> list[dict] | None:
        """All predictions from the LLM cache, or None as soon as one task would need a call.

        Decides whether a batch can be answered at once; images are not fetched for this check.
        """
        if ctx.prompt is None or ctx.spec.source.tag == "Image":
            return None
        results = []
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

    # --- learning the prompt ---------------------------------------------------------------------
    def remember_prompt(self, project: str, label_config: str | None, annotation: dict) -> dict:
        """Keep the prompt of a submitted annotation as the project's prompt for later batches.

        A new prompt gives a new model version, so the next Retrieve Predictions predicts again
        instead of skipping tasks that hold predictions of the old prompt.
        """
        setup = self.store.load_setup(project)
        label_config = label_config or (setup.label_config if setup else None)
        config = self.project_config(setup)
        spec = self.spec(config, label_config)
        prompt = prompt_from_regions(annotation.get("result"), spec.prompt.name)
        if prompt is None:
            return {
                "status": "ok",
                "prompt_changed": False,
                "model_version": self.version_for(project, config, label_config),
            }
        changed = self.store.save_prompt(project, prompt)
        version = self.version_for(project, config, label_config)
        if changed:
            self.store.record_version(project, version)
            log.info("project %s: new prompt, model version %s", project, version)
        return {"status": "ok", "prompt_changed": changed, "model_version": version}
