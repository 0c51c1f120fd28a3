"""``llm-backend improve``: ask a teacher model for a better prompt, scored on validation tasks it never saw."""

from __future__ import annotations

import argparse
import json
import sys

from cli.batch import asked
from cli.console import fail
from shared.domain.config import Settings
from shared.domain.errors import BackendError
from shared.improvement import ImprovementRequest, Improvements
from shared.reports.estimate_report import usd
from shared.reports.improvement_text import render_improvement
from shared.services import Services


def run_improve(settings: Settings, args: argparse.Namespace) -> int:
    """The report goes to stdout (text, or JSON with ``--json``); the plan and the question to stderr."""
    improvements = Improvements(Services.build(settings))
    try:
        plan = improvements.plan(
            ImprovementRequest(
                project=args.project,
                rounds=args.rounds,
                teacher_model=args.teacher_model,
                apply=args.apply,
                train_share=args.train_share,
            )
        )
        cost = "unknown (no price: see LLM_PRICES)" if plan.estimated_cost_usd is None else usd(plan.estimated_cost_usd)
        print(
            f"improving the prompt of project {plan.project.id}: {len(plan.split.train)} tasks to learn from, "
            f"{len(plan.split.validation)} to validate on; teacher {plan.teacher.model}; {args.rounds} round(s), "
            f"at most {plan.estimated_requests} requests, {cost}",
            file=sys.stderr,
        )
        if not asked(plan.confirmation(settings.batch_confirm_usd), args.yes, "Run it?"):
            return 1
        run = improvements.run(plan)
    except BackendError as exc:
        return fail(str(exc))
    print(json.dumps(run.as_dict(), indent=2) if args.json else render_improvement(run))
    return 0
