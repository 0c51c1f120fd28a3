"""``llm-backend <command>``: the same commands run in containers, in ``make run`` and in the tests."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from shared.domain.callers import unprotected_listening
from shared.domain.config import Settings, load_settings
from shared.domain.errors import ConfigError, InvalidInput
from shared.domain.estimation.spend import budget_usd
from shared.domain.evaluation.calibration import DEFAULT_PRECISIONS
from shared.logs import configure_logging

log = logging.getLogger("llm_backend")

JOB_ACTIONS = ("show", "cancel", "pause", "resume")
# Task events for Flower.  Without mingle (a new worker asking the others for their revoked tasks and clock, a
# second of every start: a revoked chunk's message does nothing anyway, its job being cancelled) and gossip (every
# worker following every other's events, a load on Redis that grows with the square of the fleet): recovery keys
# on the workers' own beats in Redis (worker/watchdog.py), never on Celery's view of its neighbours.
WORKER_OPTIONS = ("--events", "--without-mingle", "--without-gossip")
MAX_USD_HELP = "the job's budget in USD at LLM_PRICES: it pauses before exceeding it (0: no budget)"


def usd(raw: str) -> float:
    """``--max-usd`` as typed (``budget_usd``), for argparse."""
    try:
        return budget_usd("--max-usd", raw)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _refusal(settings: Settings, host: str) -> str | None:
    has_basic_auth = bool(settings.basic_auth_user and settings.basic_auth_pass)
    return unprotected_listening(host, has_basic_auth, settings.allow_unauthenticated)


def _redis_refuses(settings: Settings) -> bool:
    """Credentials or a certificate Redis and we cannot agree on: said once, before any process starts."""
    from shared.adapters.redis_connection import check_redis

    try:
        check_redis(settings)
    except ConfigError as exc:
        print(f"llm-backend: {exc}", file=sys.stderr)
        return True
    return False


def _serve_api(settings: Settings, args: argparse.Namespace) -> int:
    from cli.gunicorn import serve

    if refusal := _refusal(settings, args.host):
        print(f"llm-backend: {refusal}", file=sys.stderr)
        return 2
    if _redis_refuses(settings):
        return 2
    serve(settings, host=args.host, port=args.port, workers=args.workers, threads=args.threads)
    return 0


def _run_worker(settings: Settings, args: argparse.Namespace) -> int:
    from worker.app import create_worker_app

    if _redis_refuses(settings):
        return 2
    app = create_worker_app(settings)
    app.worker_main(["worker", *WORKER_OPTIONS, f"--loglevel={settings.log_level}", *args.celery_options])
    return 0


def _run_flower(settings: Settings, args: argparse.Namespace) -> int:
    if settings.flower_basic_auth is None:  # Flower itself reads FLOWER_BASIC_AUTH from the environment
        print("llm-backend: FLOWER_BASIC_AUTH=user:password is required: Flower shows every task", file=sys.stderr)
        return 2
    from cli.flower import protect_metrics
    from shared.adapters.queue import make_celery

    if _redis_refuses(settings):
        return 2
    protect_metrics()
    make_celery(settings).start(["flower", f"--address={args.host}", f"--port={args.port}", *args.celery_options])
    return 0


def _run_stack(settings: Settings, args: argparse.Namespace) -> int:
    from cli.stack import run_stack

    if refusal := _refusal(settings, args.host):  # said once, rather than by an API process restarted in a loop
        print(f"llm-backend: {refusal}", file=sys.stderr)
        return 2
    return run_stack(settings, args.host, args.port, args.flower_port, args.workers, Path(args.data_dir))


def _check_health(settings: Settings, args: argparse.Namespace) -> int:
    """For container healthchecks: exit 0 when the API answers UP (with our basic auth, if set)."""
    import httpx

    auth = None
    if settings.basic_auth_user and settings.basic_auth_pass:
        auth = (settings.basic_auth_user, settings.basic_auth_pass.get_secret_value())
    try:
        response = httpx.get(args.url, auth=auth, timeout=args.timeout)
        healthy = response.status_code == 200 and response.json().get("status") == "UP"
    except (httpx.HTTPError, ValueError) as exc:
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("healthy" if healthy else f"unhealthy: {response.status_code} {response.text[:200]}")
    return 0 if healthy else 1


def _run_batch(settings: Settings, args: argparse.Namespace) -> int:
    from cli.batch import run_batch

    return run_batch(
        settings, args.project, args.filter == "unlabeled", args.wait, args.yes, args.priority, args.max_usd
    )


def _run_eval(settings: Settings, args: argparse.Namespace) -> int:
    from cli.evaluate import run_eval

    return run_eval(settings, args)


def _run_improve(settings: Settings, args: argparse.Namespace) -> int:
    from cli.improve import run_improve

    return run_improve(settings, args)


def _run_estimate(settings: Settings, args: argparse.Namespace) -> int:
    from cli.estimate import run_estimate

    return run_estimate(settings, args)


def _run_jobs(settings: Settings, args: argparse.Namespace) -> int:
    from cli import jobs

    if args.action == "show":
        return jobs.show_job(settings, args.job_id)
    if args.action == "cancel":
        return jobs.cancel(settings, args.job_id)
    if args.action == "pause":
        return jobs.pause(settings, args.job_id)
    if args.action == "resume":
        return jobs.resume(settings, args.job_id, args.max_usd)
    return jobs.list_jobs(settings, args.project)


def _print_settings(settings: Settings, args: argparse.Namespace) -> int:
    from cli.docs import RENDERERS

    print(RENDERERS[args.format](), end="")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-backend", description="LLM pre-annotation backend for Label Studio")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    api = commands.add_parser("api", help="serve the Label Studio ML backend API (gunicorn, threads)")
    api.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1); any other needs BASIC_AUTH_USER/BASIC_AUTH_PASS "
        "or ALLOW_UNAUTHENTICATED=true",
    )
    api.add_argument("--port", type=int, default=9090, help="port to listen on (default 9090)")
    api.add_argument("--workers", type=int, help="gunicorn worker processes (default: API_WORKERS)")
    api.add_argument(
        "--threads",
        type=int,
        help="threads per worker process, 2 of them kept for /health and the like (default: API_THREADS)",
    )
    api.set_defaults(run=_serve_api)

    worker = commands.add_parser(
        "worker",
        help="run a Celery worker for batch jobs; other options go to `celery worker` (--concurrency, --pool, -n …)",
    )
    worker.set_defaults(run=_run_worker, passes_options=True)

    flower = commands.add_parser(
        "flower", help="run Flower on the broker (basic auth from FLOWER_BASIC_AUTH); other options go to Flower"
    )
    flower.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    flower.add_argument("--port", type=int, default=5555, help="port to listen on (default 5555)")
    flower.set_defaults(run=_run_flower, passes_options=True)

    up = commands.add_parser("up", help="run the whole stack here: Redis (embedded if needed), API, workers, Flower")
    up.add_argument("--host", default="127.0.0.1", help="address the API and Flower listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=9090, help="API port (default 9090)")
    up.add_argument("--flower-port", type=int, default=5555, help="Flower port (default 5555)")
    up.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    up.add_argument("--data-dir", default=".llm-backend", help="where the embedded Redis keeps its data")
    up.set_defaults(run=_run_stack)

    health = commands.add_parser("health", help="check that the API answers /health (for container healthchecks)")
    health.add_argument("--url", default="http://127.0.0.1:9090/health", help="default http://127.0.0.1:9090/health")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    health.set_defaults(run=_check_health)

    batch = commands.add_parser("batch", help="predict a Label Studio project's tasks as a batch job, without the UI")
    batch.add_argument("--project", type=int, required=True, help="the Label Studio project id")
    batch.add_argument(
        "--filter",
        choices=("unlabeled", "all"),
        default="unlabeled",
        help="which tasks (default unlabeled); tasks holding a prediction of this version are skipped",
    )
    batch.add_argument("--wait", action="store_true", help="follow the job with a progress bar and print a summary")
    batch.add_argument(
        "--yes", action="store_true", help="start without asking, whatever the estimate (see BATCH_CONFIRM_USD)"
    )
    batch.add_argument(
        "--priority",
        type=int,
        choices=range(1, 11),
        metavar="1-10",
        help="the job's share of the workers against other jobs (default: the project's extra param `priority`, "
        "else 1)",
    )
    batch.add_argument("--max-usd", type=usd, help=MAX_USD_HELP + " (default BATCH_MAX_USD)")
    batch.set_defaults(run=_run_batch)

    evaluate = commands.add_parser(
        "eval", help="score a prompt's predictions against the ground truth in Label Studio (see docs/iterating.md)"
    )
    evaluate.add_argument("--project", type=int, required=True, help="the Label Studio project id")
    evaluate.add_argument("--version", help="the model version to score (default: the project's current one)")
    evaluate.add_argument(
        "--compare",
        nargs="+",
        metavar="VERSION",
        help="score two versions (before after) on the same tasks, or one against the current version",
    )
    evaluate.add_argument(
        "--predict",
        action="store_true",
        help="first predict the annotated tasks without a prediction of the current version (a batch job)",
    )
    evaluate.add_argument("--limit", type=int, help="only the first N tasks (by id) that have a ground truth")
    evaluate.add_argument(
        "--controls", nargs="+", metavar="NAME", help="controls to score (default: all the ground truth answers)"
    )
    evaluate.add_argument(
        "--precisions",
        nargs="+",
        type=float,
        default=list(DEFAULT_PRECISIONS),
        metavar="P",
        help="target precisions to find a review threshold for, per control (default 0.9 0.95 0.99)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    evaluate.add_argument(
        "--html",
        metavar="FILE",
        help="also write an HTML report: one offline file, confusion matrices and reliability charts as pictures",
    )
    evaluate.add_argument(
        "--disagreements",
        type=int,
        default=5,
        metavar="N",
        help="disagreeing tasks (with --compare also changed tasks) listed per control, with answers and links "
        "(default 5)",
    )
    evaluate.set_defaults(run=_run_eval)

    improve = commands.add_parser(
        "improve",
        help="ask a teacher model for a better prompt from the ground truth's disagreements, scored on tasks it "
        "never saw (see docs/iterating.md)",
    )
    improve.add_argument("--project", type=int, required=True, help="the Label Studio project id")
    improve.add_argument("--rounds", type=int, default=1, help="teacher calls, each revising the best prompt so far")
    improve.add_argument("--teacher-model", help="the model that revises the prompt (default: TEACHER_MODEL)")
    improve.add_argument(
        "--train-share",
        type=float,
        default=0.5,
        help="share of the annotated tasks the teacher learns from; the rest validate (default 0.5)",
    )
    improve.add_argument(
        "--apply",
        action="store_true",
        help="make the best candidate the project's prompt (a new model version) if it beats the current one",
    )
    improve.add_argument("--json", action="store_true", help="print the run as JSON")
    improve.add_argument(
        "--yes", action="store_true", help="run without asking, whatever the estimate (see BATCH_CONFIRM_USD)"
    )
    improve.set_defaults(run=_run_improve)

    estimate = commands.add_parser(
        "estimate", help="the tokens, cost and duration of the batch `llm-backend batch` would start now"
    )
    estimate.add_argument("--project", type=int, required=True, help="the Label Studio project id")
    estimate.add_argument(
        "--filter", choices=("unlabeled", "all"), default="unlabeled", help="which tasks, as for batch"
    )
    estimate.add_argument(
        "--workers", type=int, help="worker slots to assume (default: the live Celery workers' pool sizes)"
    )
    estimate.add_argument("--json", action="store_true", help="print the estimate as JSON")
    estimate.set_defaults(run=_run_estimate)

    jobs = commands.add_parser(
        "jobs", help="list jobs; `jobs show ID`, `jobs cancel ID`, `jobs pause ID`, `jobs resume ID [--max-usd X]`"
    )
    jobs.add_argument("action", nargs="?", choices=("list", *JOB_ACTIONS), default="list")
    jobs.add_argument("job_id", nargs="?", help="the job (for show, cancel, pause and resume)")
    jobs.add_argument("--project", type=int, help="only this project's jobs")
    jobs.add_argument("--max-usd", type=usd, help=f"with resume: {MAX_USD_HELP}")
    jobs.set_defaults(run=_run_jobs)

    docs = commands.add_parser("settings", help="print every setting with its default and help text")
    docs.add_argument("--format", choices=("markdown", "env"), default="markdown", help="markdown (default) or env")
    docs.set_defaults(run=_print_settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "passes_options", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.celery_options = unknown
    if getattr(args, "action", None) in JOB_ACTIONS and not args.job_id:
        parser.error(f"jobs {args.action} needs a job id")
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"llm-backend: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if settings.default_prompt and settings.use_internal_prompt_template:
        log.warning(
            "DEFAULT_PROMPT is set but USE_INTERNAL_PROMPT_TEMPLATE=1: it is only used with "
            "USE_INTERNAL_PROMPT_TEMPLATE=0 (as in the reference backend)"
        )
    run: Callable[[Settings, argparse.Namespace], int] = args.run  # each subcommand's parser sets its own
    return run(settings, args)
