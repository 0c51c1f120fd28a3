"""Refining a project's prompt from its ground truth: ``llm-backend improve`` and ``/improvements``.

``plan`` reads the project's tasks that have a ground truth (the rule of ``eval``), splits them into train and
validation (``shared.domain.prompts.improvement``), checks that the current prompt can be filled for each of them, and
estimates what the run will cost: the current prompt on every one of them (answers in the LLM cache are free),
each round's candidate on validation (and the revised prompt on train from the second round), and one teacher
call a round, with every train task as a disagreement (an upper bound).  Above ``BATCH_CONFIRM_USD`` (or with
no price) the caller asks, as ``llm-backend batch`` does.

``run`` then predicts in this process, through the predictor every path uses (the LLM cache, the rate limit,
``PROJECT_DAILY_USD``), without pushing anything to Label Studio: candidates are not the project's prompt.  A
round predicts and scores the best prompt so far on train (``shared.domain.evaluation.scoring``, as ``eval`` scores),
sends the prompt and the train tasks it got wrong to the teacher, and scores the revised prompt on validation
only.  With ``apply``, the best candidate becomes the project's prompt, a new model version, when it beats the
current prompt on validation.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from shared.adapters.improvements import ImprovementStore
from shared.adapters.llm import OutputRequest
from shared.domain.config import LLMOptions, Settings
from shared.domain.errors import ConfigError, InvalidRequest, NotFound, TaskError
from shared.domain.estimation.pricing import TokenUsage, usage_cost
from shared.domain.estimation.tokens import count_request_tokens, expected_output_tokens
from shared.domain.evaluation.excerpts import task_excerpt
from shared.domain.evaluation.ground_truth import GroundTruthTask
from shared.domain.evaluation.scoring import Evaluation, TaskToScore, score
from shared.domain.prompts.improvement import (
    MIN_TASKS_PER_SIDE,
    TEACHER_DISAGREEMENTS,
    TEACHER_SCHEMA,
    TEACHER_TASK_CHARS,
    TRAIN_SHARE,
    Candidate,
    Example,
    ImprovementRun,
    ImprovementState,
    Split,
    beats,
    headline,
    overall,
    read_teacher_answer,
    split_tasks,
    teacher_messages,
    template_variables,
    variable_problem,
)
from shared.domain.types import Task
from shared.domain.versions import model_version
from shared.evaluation import controls_to_score
from shared.project_tasks import PAGE_SIZE, OpenProject, open_project, require_prompt
from shared.projects import PredictionContext
from shared.reports.estimate_report import cost_confirmation
from shared.services import Services

MAX_ROUNDS = 10
TEACHER_ANSWER_TOKENS = 256  # beyond the revised prompt itself, for the reasoning


@dataclass(frozen=True)
class ImprovementRequest:
    """``rounds`` teacher calls, each revising the best prompt so far; ``train_share`` of the ground-truth tasks
    to learn from (the rest validate); ``apply`` the best candidate when it beats the current prompt."""

    project: int
    rounds: int = 1
    teacher_model: str | None = None
    apply: bool = False
    train_share: float = TRAIN_SHARE

    def __post_init__(self) -> None:
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise InvalidRequest(f"rounds must be from 1 to {MAX_ROUNDS}")
        if not 0 < self.train_share < 1:
            raise InvalidRequest("train_share is the share of the annotated tasks to learn from: above 0, below 1")


@dataclass(frozen=True)
class ImprovementPlan:
    """What a run will do and what it may cost at most (``estimated_cost_usd``, None: a model has no price)."""

    request: ImprovementRequest
    project: OpenProject
    tasks: dict[int, GroundTruthTask]
    split: Split
    controls: list[str]
    teacher: LLMOptions
    estimated_cost_usd: float | None
    estimated_requests: int

    def confirmation(self, threshold_usd: float | None) -> str | None:
        """Why to ask before running (``BATCH_CONFIRM_USD``, as ``llm-backend batch`` asks), or None."""
        models = " / ".join(dict.fromkeys([self.project.ctx.config.llm.model, self.teacher.model]))
        return cost_confirmation(self.estimated_cost_usd, models, threshold_usd)


class UsageTally:
    """The tokens of the calls that reached the provider, added from the predictor's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.usage = TokenUsage()

    def add(self, usage: TokenUsage) -> None:
        with self._lock:
            self.usage = self.usage + usage


def teacher_options(settings: Settings, project_llm: LLMOptions, requested: str | None) -> LLMOptions:
    """The project's LLM options (its provider, endpoint and key, which the operator's rules already allowed) with
    the teacher's model: the one requested, else ``TEACHER_MODEL``, else the project's.  A requested model must be
    one of those or in ``ALLOWED_MODELS``."""
    model = requested or settings.teacher_model or project_llm.model
    allowed = {project_llm.model, settings.openai_model, settings.teacher_model, *settings.allowed_models}
    if model not in allowed and "*" not in settings.allowed_models:
        choices = ", ".join(sorted(filter(None, allowed)))
        raise ConfigError(
            f"teacher model {model!r} is not allowed: this backend's operator allows {choices}; the operator may add "
            "it to ALLOWED_MODELS or set TEACHER_MODEL"
        )
    update: dict[str, Any] = {"model": model, "num_responses": 1}
    if project_llm.provider == "azure":
        update["azure_deployment"] = model
    return project_llm.model_copy(update=update)


def with_prompt(ctx: PredictionContext, prompt: str) -> PredictionContext:
    """The project's context answering with ``prompt`` instead of its own (a version of its own, never pushed)."""
    return replace(ctx, prompt=prompt, model_version=model_version(ctx.config, ctx.label_config, prompt))


class Improvements:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.runs = ImprovementStore(services.store)

    def get(self, run_id: str) -> ImprovementRun:
        run = self.runs.get(run_id)
        if run is None:
            raise NotFound(f"no improvement {run_id}")
        return run

    def recent(self, project: int, limit: int = 20) -> list[ImprovementRun]:
        return self.runs.recent(str(project), limit)

    # --- planning ---------------------------------------------------------------------------------------------

    def plan(self, request: ImprovementRequest) -> ImprovementPlan:
        """Raises InvalidRequest (too few ground-truth tasks, a prompt that cannot be filled for one) or
        ConfigError (no prompt, a teacher model not allowed) before anything is spent."""
        project = open_project(self.services, request.project)
        ctx = project.ctx
        require_prompt(ctx)
        teacher = teacher_options(self.services.settings, ctx.config.llm, request.teacher_model)
        tasks = self._ground_truth_tasks(project)
        split = split_tasks(sorted(tasks), request.train_share, MIN_TASKS_PER_SIDE)
        controls, _skipped = controls_to_score(ctx.spec, (task.truth for task in tasks.values()), None)
        if not controls:
            raise InvalidRequest(
                f"project {project.id}: no ground truth answers a control the model fills: annotate its tasks"
            )
        cost, requests = self._estimate(ctx, teacher, request.rounds, tasks, split)
        return ImprovementPlan(request, project, tasks, split, controls, teacher, cost, requests)

    def _ground_truth_tasks(self, project: OpenProject) -> dict[int, GroundTruthTask]:
        """The tasks with a ground truth, with their data (they are predicted again, with each prompt tried)."""
        found: dict[int, GroundTruthTask] = {}
        for task, truth in project.label_studio.annotated_tasks(project.id, page_size=PAGE_SIZE):
            if truth is not None:
                found[task["id"]] = GroundTruthTask(task["id"], task.get("data") or {}, truth)
        return found

    def _estimate(
        self,
        ctx: PredictionContext,
        teacher: LLMOptions,
        rounds: int,
        tasks: dict[int, GroundTruthTask],
        split: Split,
    ) -> tuple[float | None, int]:
        """The run's cost at most, and its requests; InvalidRequest naming a task the prompt cannot be filled for."""
        predictor, llm = self.services.predictor, self.services.predictor.llm
        counted: dict[int, int] = {}
        uncached, schema = 0, None
        for task_id in split.train + split.validation:
            try:
                messages, output = predictor.request_for(ctx, tasks[task_id].data, task_id)
            except TaskError as exc:
                raise InvalidRequest(
                    f"the project's prompt cannot be used on task {task_id}: {exc}; submit a prompt that only uses "
                    "the tasks' fields (or fix the task's data) and run improve again"
                ) from None
            schema = output.schema
            counted[task_id] = count_request_tokens(messages, ctx.config.llm.model, schema).tokens
            if llm.cached(ctx.config.llm, messages, output) is None:
                uncached += 1
        mean_in = sum(counted.values()) / len(counted)
        out = expected_output_tokens(None, schema)
        candidate_requests = rounds * len(split.validation) + (rounds - 1) * len(split.train)
        requests = uncached + candidate_requests
        predictions = TokenUsage(round(mean_in * requests), out * requests)
        examples = [
            Example(task_id, task_excerpt(ctx.spec, tasks[task_id].data, TEACHER_TASK_CHARS), "", "")
            for task_id in split.train[:TEACHER_DISAGREEMENTS]
        ]
        prompt = ctx.prompt or ""
        asked = count_request_tokens(teacher_messages(prompt, self._variables(ctx), examples), teacher.model, None)
        answer = 2 * count_request_tokens([{"role": "assistant", "content": prompt}], teacher.model).tokens
        teaching = TokenUsage(rounds * asked.tokens, rounds * (answer + TEACHER_ANSWER_TOKENS))
        prices = self.services.settings.prices
        costs = [
            usage_cost(prices.get(ctx.config.llm.model), predictions),
            usage_cost(prices.get(teacher.model), teaching),
        ]
        total = None if None in costs else round(sum(cost for cost in costs if cost is not None), 6)
        return total, requests + rounds

    @staticmethod
    def _variables(ctx: PredictionContext) -> set[str]:
        """The prompt's template variables: only a prompt used as the template has any (with the internal
        template it is inserted as it is)."""
        if ctx.config.prompt.use_internal_template or ctx.prompt is None:
            return set()
        return template_variables(ctx.prompt)

    # --- running ----------------------------------------------------------------------------------------------

    def run(self, plan: ImprovementPlan) -> ImprovementRun:
        """Every round, then the choice (and with ``apply`` the new prompt); the run is kept in Redis.  A failure
        of the provider or Label Studio ends the run as failed, with what it had found so far, and is raised."""
        ctx = plan.project.ctx
        current = require_prompt(ctx)
        run = ImprovementRun(
            id=uuid.uuid4().hex,
            project=str(plan.project.id),
            created_at=time.time(),
            state=ImprovementState.DONE,
            model=ctx.config.llm.model,
            teacher_model=plan.teacher.model,
            prompt=current,
            model_version=ctx.model_version,
            train=list(plan.split.train),
            validation=list(plan.split.validation),
            apply=plan.request.apply,
            estimated_cost_usd=plan.estimated_cost_usd,
        )
        spent: list[float | None] = []
        try:
            setup = UsageTally()
            before = self._evaluate(ctx, plan, plan.split.validation, setup)
            spent.append(usage_cost(self.services.settings.prices.get(run.model), setup.usage))
            run.validation_before, run.overall_before = headline(before), overall(before)
            best_prompt, best_overall = current, run.overall_before
            for number in range(1, plan.request.rounds + 1):
                candidate = self._round(number, plan, best_prompt)
                if candidate is None:
                    run.note = f"round {number}: the prompt answered every train task as the ground truth; stopped"
                    break
                run.candidates.append(candidate)
                spent.append(candidate.cost_usd)
                if candidate.rejected is None and beats(candidate.overall_after, best_overall):
                    candidate.improved = True
                    run.best, best_prompt, best_overall = number, candidate.prompt, candidate.overall_after
            self._conclude(run, plan)
        except Exception as exc:
            run.state, run.error = ImprovementState.FAILED, str(exc)
            raise
        finally:
            run.cost_usd = None if None in spent else round(sum(cost for cost in spent if cost is not None), 6)
            run.finished_at = time.time()
            self.runs.save(run)
        return run

    def _round(self, number: int, plan: ImprovementPlan, prompt: str) -> Candidate | None:
        """One teacher call on ``prompt``'s train disagreements, and its candidate scored on validation; None when
        the prompt got every train task right (nothing to learn from)."""
        ctx = plan.project.ctx
        predictions, teaching = UsageTally(), UsageTally()
        trained = self._evaluate(with_prompt(ctx, prompt), plan, plan.split.train, predictions)
        examples = self._examples(plan, trained)
        if not examples:
            return None
        revised, reasoning = self._ask_teacher(plan, prompt, examples, teaching)
        candidate = Candidate(
            round=number,
            prompt=revised,
            reasoning=reasoning,
            train_disagreements=len(examples),
            train_before=headline(trained),
        )
        if not ctx.config.prompt.use_internal_template:  # the prompt is the template: its variables must stay
            candidate.rejected = variable_problem(ctx.prompt or "", revised)
        if candidate.rejected is None:
            try:
                validated = self._evaluate(with_prompt(ctx, revised), plan, plan.split.validation, predictions)
            except TaskError as exc:
                candidate.rejected = f"no validation task could be predicted with it: {exc}"
            else:
                candidate.validation_after, candidate.overall_after = headline(validated), overall(validated)
        prices = self.services.settings.prices
        candidate.tokens_in = predictions.usage.tokens_in + teaching.usage.tokens_in
        candidate.tokens_out = predictions.usage.tokens_out + teaching.usage.tokens_out
        costs = [
            usage_cost(prices.get(ctx.config.llm.model), predictions.usage),
            usage_cost(prices.get(plan.teacher.model), teaching.usage),
        ]
        candidate.cost_usd = None if None in costs else round(sum(c for c in costs if c is not None), 6)
        return candidate

    def _evaluate(self, ctx: PredictionContext, plan: ImprovementPlan, ids: list[int], tally: UsageTally) -> Evaluation:
        """``ctx``'s prompt predicted on these tasks (in this process, nothing pushed) and scored as ``eval`` does:
        a task whose prediction failed counts as failed; when every one failed (the provider refuses, the candidate
        cannot be filled, ``PROJECT_DAILY_USD`` is spent), the first one's error is raised: nothing is left to score."""
        tasks: list[Task] = [{"id": task_id, "data": plan.tasks[task_id].data} for task_id in ids]
        outcomes = self.services.predictor.outcomes(ctx, tasks, tally.add)
        errors = [outcome for outcome in outcomes if isinstance(outcome, TaskError)]
        if errors and len(errors) == len(outcomes):
            raise errors[0]
        scored = [
            TaskToScore(
                task_id=task_id,
                ground_truth=plan.tasks[task_id].truth,
                prediction=None if isinstance(outcome, TaskError) else list(outcome.get("result") or []),
                failed=isinstance(outcome, TaskError),
                score=None if isinstance(outcome, TaskError) else outcome.get("score"),
            )
            for task_id, outcome in zip(ids, outcomes, strict=True)
        ]
        return score(ctx.spec.interface, scored, plan.controls)

    def _examples(self, plan: ImprovementPlan, trained: Evaluation) -> list[Example]:
        """The train tasks the prompt got wrong (``trained`` scored train only: no validation task can be
        among them), first by id, each with every control it got wrong."""
        wrong: dict[int, list[tuple[str, str, str]]] = {}
        for name, control in trained.controls.items():
            for detail in control.details:
                wrong.setdefault(detail.task_id, []).append((name, detail.expected or "", detail.predicted or ""))
        examples = []
        for task_id in sorted(wrong)[:TEACHER_DISAGREEMENTS]:
            answers = wrong[task_id]
            named = len(plan.controls) > 1
            expected = "; ".join(f"{name}: {exp}" if named else exp for name, exp, _ in answers)
            predicted = "; ".join(f"{name}: {pred}" if named else pred for name, _, pred in answers)
            text = task_excerpt(plan.project.ctx.spec, plan.tasks[task_id].data, TEACHER_TASK_CHARS)
            examples.append(Example(task_id, text, expected, predicted))
        return examples

    def _ask_teacher(
        self, plan: ImprovementPlan, prompt: str, examples: list[Example], tally: UsageTally
    ) -> tuple[str, str]:
        """The teacher's revised prompt and reasoning; its tokens count for the project as any call does."""
        ctx = plan.project.ctx
        teacher_ctx = replace(ctx, config=ctx.config.model_copy(update={"llm": plan.teacher}))
        predictor = self.services.predictor
        answer = predictor.llm.complete(
            plan.teacher,
            teacher_messages(prompt, self._variables(ctx), examples),
            output=OutputRequest("auto", TEACHER_SCHEMA),
            before_call=lambda: predictor.spend.check(ctx.project),
        )
        if not answer.cached:
            usage = TokenUsage(answer.prompt_tokens, answer.completion_tokens, answer.cached_tokens)
            predictor.record_usage(teacher_ctx, usage)
            tally.add(usage)
        return read_teacher_answer(answer.texts[0] if answer.texts else "")

    def _conclude(self, run: ImprovementRun, plan: ImprovementPlan) -> None:
        """Apply the best candidate when asked and one beats the current prompt; else say why not."""
        best = run.best_candidate()
        if best is None:
            kept = "no candidate beat the current prompt on validation: it stays the project's prompt"
            run.note = f"{run.note}; {kept}" if run.note else kept
            return
        if not plan.request.apply:
            return
        ctx = plan.project.ctx
        project = plan.project.id
        update = self.services.projects.adopt_prompt(
            str(project), ctx.config, ctx.label_config, best.prompt, ctx.examples
        )
        run.applied_version = update.model_version
