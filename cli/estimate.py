"""``llm-backend estimate``, and the confirmation ``llm-backend batch`` asks for above ``BATCH_CONFIRM_USD``."""

from __future__ import annotations

import argparse
import json

from cli.console import fail
from shared.domain.config import Settings
from shared.domain.errors import BackendError
from shared.estimation import estimate_project
from shared.reports.estimate_report import render_estimate
from shared.services import Services


def run_estimate(settings: Settings, args: argparse.Namespace) -> int:
    try:
        estimate = estimate_project(Services.build(settings), args.project, args.filter == "unlabeled", args.workers)
    except BackendError as exc:
        return fail(str(exc))
    print(json.dumps(estimate.as_dict(), indent=2) if args.json else render_estimate(estimate))
    return 0
