"""Resolving a project: what every task of a request (or of a batch job) has in common.

The project's settings (environment plus its extra params), its parsed labeling config, the prompt
in force, the model version, and how to reach its Label Studio: ``LABEL_STUDIO_API_KEY`` goes only to
``LABEL_STUDIO_URL``; a host that ``/setup`` names is used with the token ``/setup`` gave, and only when
it is not on a private address (unless ``ALLOWED_PRIVATE_HOSTS`` names it).  ``/setup`` registers a project,
``/webhook`` learns its prompt; ``/predict`` and the workers ask for a ``PredictionContext``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shared.adapters.label_studio import LabelStudioAccess
from shared.adapters.netguard import AddressPolicy
from shared.adapters.store import ProjectSetup, Store
from shared.domain.config import ExtraParams, ProjectConfig, Settings, decode_extra_params
from shared.domain.endpoints import host_port
from shared.domain.errors import ConfigError, TaskError
from shared.domain.labeling.spec import LabelingSpec, Unfilled, parse_labeling_config, require_label_config
from shared.domain.prompts.few_shot import ExamplePool
from shared.domain.prompts.messages import choose_prompt, prompt_from_regions
from shared.domain.routing import NO_LABEL_STUDIO_URL_AND_KEY
from shared.domain.types import JobSnapshot
from shared.domain.versions import model_version
from shared.few_shot import FewShotPools
from shared.redaction import remember_extra_params

log = logging.getLogger(__name__)

UNFILLED_LOG_SECONDS = 30 * 24 * 3600  # how long "these controls stay unfilled" is not logged again for a config


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
    access_problem: str | None = None  # why there is no ``access``, when a reason is known
    few_shot_pool: str | None = None  # the key of the few-shot example pool (``shared.few_shot``), when on
    examples: ExamplePool | None = None  # that pool's examples for this config


@dataclass(frozen=True)
class Registration:
    """What ``/setup`` answers: the model version, and the controls the LLM leaves to the annotators (and why)."""

    model_version: str
    unfilled: tuple[Unfilled, ...]


@dataclass(frozen=True)
class PromptUpdate:
    """What a submitted annotation did to the project's prompt."""

    changed: bool
    model_version: str


class Projects:
    def __init__(self, settings: Settings, store: Store, few_shot: FewShotPools | None = None) -> None:
        self.settings = settings
        self.store = store
        self.few_shot = few_shot
        self.policy = AddressPolicy.from_settings(settings)
        # Every request of a project resolves the same settings and version: worked out once per process, not
        # per request (the interactive path's overhead).  Keyed by everything they are derived from.
        self._config_of = lru_cache(maxsize=256)(self._config_from_json)
        self._version_of = lru_cache(maxsize=1024)(model_version)

    def _config_from_json(self, extra_params: str) -> ProjectConfig:
        return self.settings.for_project(ExtraParams.parse(json.loads(extra_params)))

    def config_for(self, extra_params: dict[str, Any] | None) -> ProjectConfig:
        """The project's settings: the environment's, with its extra params over them."""
        return self._config_of(json.dumps(extra_params, sort_keys=True))

    def config(self, setup: ProjectSetup | None) -> ProjectConfig:
        return self.config_for(decode_extra_params(setup.extra_params if setup else None))

    def spec(self, config: ProjectConfig, label_config: str) -> LabelingSpec:
        """The parsed labeling config; raises LabelingConfigError naming what is missing."""
        return parse_labeling_config(label_config, config.prompt.prompt_prefix, self.settings.max_label_config_bytes)

    def prompt(self, project: str | None, config: ProjectConfig) -> str | None:
        """The prompt batches use: the annotators' latest, else DEFAULT_PROMPT where it applies."""
        return self._prompt_in_force(self.store.prompt(project) if project else None, config)

    @staticmethod
    def _prompt_in_force(stored: str | None, config: ProjectConfig) -> str | None:
        if stored:
            return stored
        if config.prompt.default_prompt and not config.prompt.use_internal_template:
            return config.prompt.default_prompt
        return None

    def version(
        self, project: str | None, config: ProjectConfig, label_config: str, examples: ExamplePool | None = None
    ) -> str:
        return self._version_of(config, label_config, self.prompt(project, config), examples and examples.digest)

    def examples(
        self,
        project: str | None,
        config: ProjectConfig,
        label_config: str,
        spec: LabelingSpec,
        setup: ProjectSetup | None,
        max_age: float | None = None,
    ) -> tuple[str | None, ExamplePool | None]:
        """The project's few-shot pool (its key and examples), none when FEW_SHOT_EXAMPLES is 0; read again from
        Label Studio when older than ``max_age`` seconds (FEW_SHOT_REFRESH by default).  ConfigError when it
        cannot be read."""
        if not config.few_shot.k:
            return None, None
        if project is None or self.few_shot is None:
            raise ConfigError("FEW_SHOT_EXAMPLES needs a Label Studio project to take its annotations from")
        access, problem = self.label_studio(setup)
        age = self.settings.few_shot_refresh if max_age is None else max_age
        key = self.few_shot.current(project, access, age, problem)
        return key, self.few_shot.examples(key, label_config, spec)

    def label_studio(self, setup: ProjectSetup | None) -> tuple[LabelStudioAccess | None, str | None]:
        """How to reach the project's Label Studio, or None and why not."""
        hostname, token = (setup.hostname, setup.access_token) if setup else (None, None)
        if self.settings.label_studio_url:
            key = self.settings.label_studio_api_key
            token = key.get_secret_value() if key else token
            if not token:
                return None, (
                    "no key for LABEL_STUDIO_URL: set LABEL_STUDIO_API_KEY, or connect the backend from Label Studio "
                    "(Settings → Model)"
                )
            return LabelStudioAccess(url=self.settings.label_studio_url, api_key=token), None
        if not (hostname and token):
            return None, NO_LABEL_STUDIO_URL_AND_KEY
        where = host_port(hostname)
        reason = self.policy.refusal(*where, unresolved_ok=True) if where else "not an http(s) URL"
        if reason:
            return None, (
                f"Label Studio at {hostname} is not used: {reason}, a private address taken from /setup; set "
                "LABEL_STUDIO_URL (and LABEL_STUDIO_API_KEY) to allow your Label Studio, or add its host to "
                "ALLOWED_PRIVATE_HOSTS"
            )
        return LabelStudioAccess(url=hostname, api_key=token), None

    def register(self, project: str, setup: ProjectSetup) -> Registration:
        """``/setup``: check the project's settings and labeling config, keep them.

        Raises ConfigError or LabelingConfigError (nothing is kept then).  Controls left unfilled are
        logged once per project and config, however often Label Studio calls ``/setup``.
        """
        config = self.config(setup)  # within what the operator allows (Settings.for_project), or ConfigError
        label_config = require_label_config(setup.label_config)
        spec = self.spec(config, label_config)
        self.store.save_setup(project, setup)
        _pool, examples = self.examples(project, config, label_config, spec, setup)
        version = self.version(project, config, label_config, examples)
        self.store.record_version(project, version)
        if spec.unfilled:
            digest = hashlib.sha256(label_config.encode()).hexdigest()[:16]
            if self.store.first_time(f"unfilled:{project}:{digest}", UNFILLED_LOG_SECONDS):
                left = "; ".join(f"{item.name} <{item.tag}>: {item.reason}" for item in spec.unfilled)
                log.info(
                    "project %s: the LLM fills %d controls and leaves these to annotators: %s",
                    project,
                    len(spec.outputs),
                    left,
                )
        return Registration(model_version=version, unfilled=spec.unfilled)

    def context(
        self, project: str | None, label_config: str | None, context: object, pool_max_age: float | None = None
    ) -> PredictionContext:
        """Resolve a request; raises ConfigError or LabelingConfigError when the request cannot work.

        ``pool_max_age``: how old the few-shot pool may be (FEW_SHOT_REFRESH by default; 0 before a job starts)."""
        setup, annotators_prompt = self.store.setup_and_prompt(project) if project else (None, None)
        label_config = label_config or (setup.label_config if setup else None)
        extra_params = decode_extra_params(setup.extra_params if setup else None)
        access, access_problem = self.label_studio(setup)
        config = self.config_for(extra_params)
        label_config = require_label_config(label_config)
        spec = self.spec(config, label_config)
        regions = context.get("result") if isinstance(context, dict) else None
        context_prompt = prompt_from_regions(regions, spec.prompt.name) if regions else None
        stored = self._prompt_in_force(annotators_prompt, config)
        prompt, prompt_error = None, None
        try:
            prompt = choose_prompt(context_prompt, stored, config.prompt)
        except TaskError as exc:
            prompt_error = str(exc)
        pool, examples = self.examples(project, config, label_config, spec, setup, pool_max_age)
        return PredictionContext(
            project=project,
            label_config=label_config,
            extra_params=extra_params,
            config=config,
            spec=spec,
            model_version=self._version_of(config, label_config, stored, examples and examples.digest),
            prompt=prompt,
            prompt_error=prompt_error,
            access=access,
            interactive=isinstance(context, dict),  # even without regions: a reloaded screen asks this way
            context_prompt=context_prompt is not None,
            access_problem=access_problem,
            few_shot_pool=pool,
            examples=examples,
        )

    def for_job(self, ctx: PredictionContext) -> PredictionContext:
        """The context a job starts with: the few-shot pool read afresh from Label Studio (when few-shot is on),
        and the model version that goes with it."""
        if not ctx.config.few_shot.k or ctx.interactive:
            return ctx
        return self.context(ctx.project, ctx.label_config, None, pool_max_age=0)

    def snapshot(self, ctx: PredictionContext) -> JobSnapshot:
        if ctx.few_shot_pool and self.few_shot:
            self.few_shot.keep(ctx.few_shot_pool)
        return JobSnapshot(
            project=ctx.project,
            label_config=ctx.label_config,
            extra_params=ctx.extra_params,
            model_version=ctx.model_version,
            model=ctx.config.llm.model,
            prompt=ctx.prompt,
            prompt_error=ctx.prompt_error,
            few_shot_pool=ctx.few_shot_pool,
        )

    def from_snapshot(self, snapshot: JobSnapshot, job_id: str | None = None) -> PredictionContext:
        """A batch job's context; only how to reach Label Studio is read afresh (tokens may rotate)."""
        remember_extra_params(snapshot.extra_params)
        config = self.config_for(snapshot.extra_params)
        setup = self.store.load_setup(snapshot.project) if snapshot.project else None
        access, access_problem = self.label_studio(setup)
        spec = self.spec(config, snapshot.label_config)
        examples = None
        if snapshot.few_shot_pool and config.few_shot.k:
            if self.few_shot is None:
                raise ConfigError("this job has few-shot examples but this process reads no example pools")
            examples = self.few_shot.examples(snapshot.few_shot_pool, snapshot.label_config, spec)
        return PredictionContext(
            project=snapshot.project,
            label_config=snapshot.label_config,
            extra_params=snapshot.extra_params,
            config=config,
            spec=spec,
            model_version=snapshot.model_version,
            prompt=snapshot.prompt,
            prompt_error=snapshot.prompt_error,
            access=access,
            interactive=False,
            context_prompt=False,
            job_id=job_id,
            access_problem=access_problem,
            few_shot_pool=snapshot.few_shot_pool,
            examples=examples,
        )

    def remember_prompt(self, project: str, label_config: str | None, annotation: dict[str, Any]) -> PromptUpdate:
        """Keep the prompt of a submitted annotation as the project's prompt for later batches.

        A new prompt gives a new model version, so the next Retrieve Predictions predicts again
        instead of skipping tasks that hold predictions of the old prompt.
        """
        setup = self.store.load_setup(project)
        label_config = label_config or (setup.label_config if setup else None)
        config = self.config(setup)
        label_config = require_label_config(label_config)
        spec = self.spec(config, label_config)
        prompt = prompt_from_regions(annotation.get("result"), spec.prompt.name)
        _pool, examples = self.examples(project, config, label_config, spec, setup)
        if prompt is None:
            return PromptUpdate(changed=False, model_version=self.version(project, config, label_config, examples))
        return self.adopt_prompt(project, config, label_config, prompt, examples)

    def adopt_prompt(
        self,
        project: str,
        config: ProjectConfig,
        label_config: str,
        prompt: str,
        examples: ExamplePool | None = None,
    ) -> PromptUpdate:
        """Make ``prompt`` the project's prompt, as a submitted one (``remember_prompt``) or an applied
        refinement (``llm-backend improve --apply``) does: a changed prompt is a new model version (with few-shot
        on, of the project's ``examples``)."""
        changed = self.store.save_prompt(project, prompt)
        version = self.version(project, config, label_config, examples)
        if changed:
            self.store.record_version(project, version)
            log.info("project %s: new prompt, model version %s", project, version)
        return PromptUpdate(changed=changed, model_version=version)
