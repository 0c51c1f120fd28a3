"""``llm-backend <command>``: the same commands run in containers, in ``make run`` and in the tests."""

from __future__ import annotations

import argparse
import logging
import sys

from shared.config import ConfigError, Settings, load_settings
from shared.logs import configure_logging

log = logging.getLogger("llm_backend")


def _serve_api(settings: Settings, args: argparse.Namespace) -> int:
    from cli.gunicorn import serve

    serve(settings, host=args.host, port=args.port, workers=args.workers, threads=args.threads)
    return 0


def _run_worker(settings: Settings, args: argparse.Namespace) -> int:
    from worker.app import create_worker_app

    app = create_worker_app(settings)
    app.worker_main(["worker", "--events", f"--loglevel={settings.log_level}", *args.celery_options])
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-backend", description="LLM pre-annotation backend for Label Studio"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    api = commands.add_parser("api", help="serve the Label Studio ML backend API (gunicorn, threads)")
    api.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    api.add_argument("--port", type=int, default=9090, help="port to listen on (default 9090)")
    api.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    api.add_argument("--threads", type=int, default=16, help="threads per worker process (default 16)")
    api.set_defaults(run=_serve_api)

    worker = commands.add_parser(
        "worker",
        help="run a Celery worker for batch jobs; other options go to `celery worker` (--concurrency, --pool, -n …)",
    )
    worker.set_defaults(run=_run_worker, passes_options=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "passes_options", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.celery_options = unknown
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"llm-backend: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if settings.default_prompt and settings.use_internal_prompt_template:
        log.warning(
            "DEFAULT_PROMPT is set but USE_INTERNAL_PROMPT_TEMPLATE=1: it is only used with "
            "USE_INTERNAL_PROMPT_TEMPLATE=0 (as in the reference backend)"
        )
    return args.run(settings, args)
