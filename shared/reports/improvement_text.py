"""An improvement run as the terminal shows it: the validation score before, each round's candidate with the
teacher's reasoning, its validation score and cost, and what became of the best one."""

from __future__ import annotations

import textwrap

from shared.domain.prompts.improvement import Candidate, ImprovementRun
from shared.reports.estimate_report import usd


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _scores(scores: dict[str, float | None]) -> str:
    return ", ".join(f"{control} {_figure(value)}" for control, value in scores.items()) or "nothing scored"


def _cost(cost: float | None) -> str:
    return "unknown (no price: see LLM_PRICES)" if cost is None else usd(cost)


def _indented(text: str) -> str:
    return textwrap.indent(text, "    ")


def _candidate(candidate: Candidate, before: float | None, best: bool) -> list[str]:
    lines = [
        f"round {candidate.round}: {candidate.train_disagreements} train disagreements sent to the teacher "
        f"(train: {_scores(candidate.train_before)})"
    ]
    if candidate.rejected:
        lines.append(f"  rejected, not scored: {candidate.rejected}")
    else:
        delta = (
            f", {candidate.overall_after - before:+.3f}"
            if candidate.overall_after is not None and before is not None
            else ""
        )
        mark = (
            "  (best)"
            if best
            else "  (better than the prompt before it)"
            if candidate.improved
            else "  (not better than the best before it)"
        )
        lines.append(
            f"  validation after: {_scores(candidate.validation_after)} "
            f"(overall {_figure(candidate.overall_after)}{delta}){mark}"
        )
    lines.append(
        f"  cost: {_cost(candidate.cost_usd)} ({candidate.tokens_in:,} tokens in, {candidate.tokens_out:,} out)"
    )
    lines += ["  reasoning:", _indented(candidate.reasoning or "(none given)")]
    lines += ["  prompt:", _indented(candidate.prompt)]
    return lines


def render_improvement(run: ImprovementRun) -> str:
    lines = [
        f"improvement {run.id} of project {run.project}: {run.state.value}",
        f"model {run.model}, teacher {run.teacher_model}; {len(run.train)} tasks to learn from, "
        f"{len(run.validation)} to validate on",
        f"current prompt (version {run.model_version}):",
        _indented(run.prompt),
        f"validation before: {_scores(run.validation_before)} (overall {_figure(run.overall_before)})",
        "",
    ]
    for candidate in run.candidates:
        lines += _candidate(candidate, run.overall_before, candidate.round == run.best)
        lines.append("")
    best = run.best_candidate()
    if run.applied_version:
        lines.append(f"applied: round {run.best}'s prompt is the project's prompt, model version {run.applied_version}")
    elif best is not None:
        lines.append(f"best: round {best.round}; pass --apply to make it the project's prompt")
    if run.note:
        lines.append(run.note)
    if run.error:
        lines.append(f"error: {run.error}")
    lines.append(f"cost of the run: {_cost(run.cost_usd)} (estimated at most {_cost(run.estimated_cost_usd)})")
    return "\n".join(lines)
