"""Prompt refinement from the team's ground truth, the pure part: the split, the teacher's request and answer,
which candidate wins, and the run as it is kept.

The ground-truth tasks are split once into *train* and *validation* by a hash of each task id, so the same
project always splits the same way (a task annotated later joins one side without moving the others).  The
teacher model sees the current prompt and the train tasks the prompt got wrong (their text, what the team
answered, what the model answered), never a validation task: validation only scores the candidates, so a
candidate's validation score measures the prompt on tasks its author did not see.

A candidate must keep the prompt's template variables (``{text}``, a data field, ``{labels}``), since the prompt
is filled from them; one that drops or adds a variable is rejected unscored.  A candidate beats the current prompt
when the mean of its controls' headline metrics (accuracy, exact-set accuracy, exact span F1, path accuracy,
exact match: the first metric of each control, all higher-is-better) on validation is strictly higher.
"""

from __future__ import annotations

import enum
import hashlib
import math
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.domain.answers.json_in_text import json_values
from shared.domain.errors import InvalidRequest, TaskError
from shared.domain.evaluation.scoring import Evaluation

MIN_TASKS_PER_SIDE = 10
TRAIN_SHARE = 0.5
TEACHER_TASK_CHARS = 1000  # of each task's text, in the teacher's request
TEACHER_DISAGREEMENTS = 50  # train disagreements shown to the teacher per round, the first by task id

TEACHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string", "description": "what the errors have in common and what the change fixes"},
        "prompt": {"type": "string", "description": "the revised prompt, complete"},
    },
    "required": ["reasoning", "prompt"],
    "additionalProperties": False,
}

_formatter = string.Formatter()


@dataclass(frozen=True)
class Split:
    train: list[int]
    validation: list[int]


def _rank(task_id: int) -> str:
    return hashlib.sha256(f"improve:{task_id}".encode()).hexdigest()


def split_tasks(task_ids: Sequence[int], train_share: float = TRAIN_SHARE, minimum: int = MIN_TASKS_PER_SIDE) -> Split:
    """Train and validation, each in task-id order; InvalidRequest when either side would hold fewer than
    ``minimum`` tasks (the message says how many more to annotate)."""
    ranked = sorted(task_ids, key=_rank)
    cut = round(len(ranked) * train_share)
    train, validation = sorted(ranked[:cut]), sorted(ranked[cut:])
    if len(train) < minimum or len(validation) < minimum:
        needed = math.ceil(minimum / min(train_share, 1 - train_share))
        raise InvalidRequest(
            f"improving a prompt needs at least {minimum} tasks with a ground truth to learn from and {minimum} to "
            f"validate on ({needed} annotated tasks); the project has {len(ranked)}: annotate "
            f"{needed - len(ranked)} more in Label Studio"
        )
    return Split(train, validation)


def template_variables(prompt: str) -> set[str]:
    """The placeholders a prompt used as a template is filled with; a prompt that does not parse has none
    (it fails where it is filled, with a message saying why)."""
    try:
        return {name for _literal, name, _spec, _conversion in _formatter.parse(prompt) if name}
    except ValueError:
        return set()


def variable_problem(current: str, candidate: str) -> str | None:
    """Why a candidate cannot replace the current prompt as a template, or None."""
    wanted, found = template_variables(current), template_variables(candidate)
    missing, added = sorted(wanted - found), sorted(found - wanted)
    problems = []
    if missing:
        problems.append("drops " + ", ".join(f"{{{name}}}" for name in missing))
    if added:
        problems.append("adds " + ", ".join(f"{{{name}}}" for name in added))
    return f"it {' and '.join(problems)}: a candidate keeps the prompt's template variables" if problems else None


@dataclass(frozen=True)
class Example:
    """A train task the prompt got wrong, as the teacher sees it."""

    task_id: int
    text: str
    expected: str
    predicted: str


def teacher_messages(prompt: str, variables: set[str], examples: Sequence[Example]) -> list[dict[str, str]]:
    """The request to the teacher: what a good prompt is for, the current prompt, and the errors."""
    keep = (
        "It is filled in as a template: keep every placeholder it has, exactly ("
        + ", ".join(f"{{{name}}}" for name in sorted(variables))
        + "), add none, and write {{ and }} for a literal brace."
        if variables
        else "Write no placeholders in braces."
    )
    system = (
        "You improve the instructions of a data labeling model. You get its current prompt and tasks it labeled "
        "wrong, each with the answer the annotators gave and the model's answer. Find what the errors have in "
        "common and rewrite the prompt so the model answers as the annotators do, without naming the tasks. "
        f"{keep} Answer as JSON with two fields: reasoning (what you changed and why) and prompt (the whole "
        "revised prompt)."
    )
    shown = "\n\n".join(
        f"## Task {index}\nText: {example.text}\nAnnotators' answer: {example.expected}\n"
        f"Model's answer: {example.predicted}"
        for index, example in enumerate(examples, 1)
    )
    user = f"# Current prompt\n{prompt}\n\n# Tasks the model got wrong\n{shown}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def read_teacher_answer(text: str) -> tuple[str, str]:
    """(prompt, reasoning) from the teacher's answer; TaskError when it holds no prompt."""
    for value in json_values(text, "{"):
        if isinstance(value, dict) and isinstance(value.get("prompt"), str) and value["prompt"].strip():
            reasoning = value.get("reasoning")
            return value["prompt"].strip(), reasoning.strip() if isinstance(reasoning, str) else ""
    raise TaskError("the teacher model's answer holds no revised prompt (a JSON object with a prompt field)")


def headline(evaluation: Evaluation) -> dict[str, float | None]:
    """Each control's headline metric (its first)."""
    return {name: next(iter(score.metrics.values()), None) for name, score in evaluation.controls.items()}


def overall(evaluation: Evaluation) -> float | None:
    """The mean of the controls' headline metrics: what decides whether a candidate beats the current prompt."""
    values = [value for value in headline(evaluation).values() if value is not None]
    return sum(values) / len(values) if values else None


def beats(candidate: float | None, current: float | None) -> bool:
    return candidate is not None and (current is None or candidate > current)


class ImprovementState(enum.StrEnum):
    DONE = "done"
    FAILED = "failed"


@dataclass
class Candidate:
    """One round's revised prompt: its text and the teacher's reasoning, the train score of the prompt it
    revised, its validation score per control (headline metric) and overall, or why it was not scored;
    ``improved`` when it beat the best prompt before it (the next round revises it); ``cost_usd`` is what the
    round's calls cost (None: a model without a price)."""

    round: int
    prompt: str
    reasoning: str
    train_disagreements: int
    train_before: dict[str, float | None]
    validation_after: dict[str, float | None] = field(default_factory=dict)
    overall_after: float | None = None
    rejected: str | None = None
    improved: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(**data)


@dataclass
class ImprovementRun:
    """A refinement of one project's prompt: the split, the current prompt's validation score, each round's
    candidate, the best one (``best``: its round, None when none beats the current prompt) and whether it
    was applied (``applied_version``: the model version it became); ``note`` says why rounds stopped early
    or why nothing was applied."""

    id: str
    project: str
    created_at: float
    state: ImprovementState
    model: str
    teacher_model: str
    prompt: str
    model_version: str
    train: list[int]
    validation: list[int]
    validation_before: dict[str, float | None] = field(default_factory=dict)
    overall_before: float | None = None
    candidates: list[Candidate] = field(default_factory=list)
    best: int | None = None
    apply: bool = False
    applied_version: str | None = None
    estimated_cost_usd: float | None = None
    cost_usd: float | None = None
    note: str | None = None
    error: str | None = None
    finished_at: float | None = None

    def best_candidate(self) -> Candidate | None:
        return next((c for c in self.candidates if c.round == self.best), None)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImprovementRun:
        fields = dict(data)
        fields["state"] = ImprovementState(fields["state"])
        fields["candidates"] = [Candidate.from_dict(candidate) for candidate in fields.get("candidates") or []]
        return cls(**fields)

    def summary(self) -> dict[str, Any]:
        best = self.best_candidate()
        return {
            "id": self.id,
            "project": self.project,
            "state": self.state.value,
            "created_at": self.created_at,
            "model_version": self.model_version,
            "overall_before": self.overall_before,
            "overall_after": best.overall_after if best else None,
            "applied_version": self.applied_version,
            "cost_usd": self.cost_usd,
            "error": self.error,
        }
