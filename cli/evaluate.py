"""``llm-backend eval``: score a prompt against the ground truth in Label Studio, or compare two versions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.batch import follow
from cli.console import fail
from shared.domain.config import Settings
from shared.domain.errors import BackendError
from shared.domain.evaluation.run import RunState
from shared.evaluation import EvaluationRequest, Evaluations
from shared.reports.evaluation_html import render_html
from shared.reports.evaluation_text import render_text
from shared.services import Services


def run_eval(settings: Settings, args: argparse.Namespace) -> int:
    """The report goes to stdout (text, or JSON with ``--json``); progress and the HTML path to stderr."""
    services = Services.build(settings)
    evaluations = Evaluations(services)
    try:
        request = EvaluationRequest(
            project=args.project,
            version=args.version,
            compare=tuple(args.compare or ()),
            predict=args.predict,
            limit=args.limit,
            controls=tuple(args.controls) if args.controls else None,
            precisions=tuple(args.precisions),
        )
        run = evaluations.start(request)
        if run.state == RunState.PREDICTING and run.job_id:
            status = services.jobs.status(run.job_id)
            total = status.total if status else "?"
            print(f"predicting {total} tasks with version {run.predicted_version}: job {run.job_id}", file=sys.stderr)
            follow(services.jobs, run.job_id)
            run = evaluations.finish(run)
    except BackendError as exc:
        return fail(str(exc))
    if args.html:
        Path(args.html).write_text(render_html(run, args.disagreements), encoding="utf-8")
        print(f"HTML report: {args.html}", file=sys.stderr)
    print(json.dumps(run.as_dict(), indent=2) if args.json else render_text(run, args.disagreements), end="\n")
    return 0 if run.state == RunState.DONE else 1
