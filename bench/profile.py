"""Profile the hot paths with py-spy while the real processes work: ``python -m bench.profile``.

Three loads, each sampled with ``py-spy record --subprocesses --function --gil``: only the thread
holding the GIL is sampled, so the shares are of the Python work that limits these processes (a
thread waiting for the LLM, Redis or a socket has released the GIL and is not counted):

* ``worker``: one ``llm-backend worker --concurrency 1`` (``LLM_CONCURRENCY=100``) on a 10,000-task
  batch with the fake LLM at 20 ms, so the worker's own CPU is what limits it (after a 200-task
  warm-up batch, so the one-time import of label_studio_sdk is not in the samples);
* ``interactive``: the API (``llm-backend api``'s defaults) under 8 clients of interactive ``/predict``;
* ``enqueue``: the API answering Retrieve Predictions of 100,000 tasks, one after the other.

Writes ``bench/results/profile-<load>.txt`` (py-spy's collapsed stacks) and prints, per load, the
functions with the largest share of samples: inclusive (the function and what it calls) for this
project's code, and self time for everything.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench.harness import ROOT, Http, Stack, batch_body, interactive_body, log, task_text
from bench.report import table
from bench.run import _redis_url

PROJECT_DIRS = ("api/", "shared/", "worker/", "cli/")


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    return found


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            _py_spy(),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--function",
            "--gil",
            "--nonblocking",
            "--rate",
            "200",
            "--format",
            "raw",
            "--duration",
            str(int(seconds)),
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _frame_name(frame: str) -> str:
    """``func (path:line)`` → ``path:func``, with site-packages paths cut to the package."""
    if " (" not in frame:
        return frame
    func, where = frame.rsplit(" (", 1)
    path = where.rstrip(")").rsplit(":", 1)[0]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif str(ROOT) + "/" in path:
        path = path.split(str(ROOT) + "/", 1)[1]
    return f"{path}:{func}"


def summarize(raw: Path, top: int = 18) -> dict:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    project = [(name, n) for name, n in inclusive.most_common() if name.startswith(PROJECT_DIRS)][:top]
    return {
        "samples": total,
        "project_inclusive": [(name, 100 * n / total) for name, n in project] if total else [],
        "self": [(name, 100 * n / total) for name, n in own.most_common(top)] if total else [],
    }


def _print(load: str, summary: dict) -> None:
    print(f"\n## {load}: {summary['samples']} samples holding the GIL\n")
    print(
        table(
            ["this project's function (inclusive)", "% of samples"],
            [[n, f"{p:.1f}"] for n, p in summary["project_inclusive"]],
        )
    )
    print()
    print(table(["function (self time)", "% of samples"], [[n, f"{p:.1f}"] for n, p in summary["self"]]))


def profile_worker(stack: Stack, seconds: float, out: Path) -> None:
    stack.fake.configure(delay=0.02, jitter=0.01, rpm=0, tpm=0)
    prefix = stack.prefix("profile-worker")
    api = stack.api(prefix)
    label_studio = stack.label_studio()
    api.setup_project(500, label_studio)
    [worker] = stack.workers(prefix, 1, concurrency=1, LLM_CONCURRENCY=100)
    # Warm up: the first chunk imports label_studio_sdk (a one-time second or two of CPU).
    api.call("POST", "/predict", batch_body(500, 200, salt="warm ", start=100_000, held_by=label_studio))
    deadline = time.monotonic() + 60
    while label_studio.count() < 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    spy = record(worker.process.pid, seconds, out)
    time.sleep(1.0)
    api.call("POST", "/predict", batch_body(500, 10_000, salt="profile ", held_by=label_studio))
    _, err = spy.communicate(timeout=seconds + 60)
    log(f"profile worker: {label_studio.count() - 200} predictions landed while sampling; {err.strip()[-200:]}")
    stack.stop(worker)
    stack.drop_label_studio(label_studio)
    stack.close_api(api)


def profile_interactive(stack: Stack, seconds: float, out: Path) -> None:
    stack.fake.configure(delay=0.05, jitter=0.02, rpm=0, tpm=0)
    prefix = stack.prefix("profile-interactive")
    api = stack.api(prefix)
    label_studio = stack.label_studio()
    api.setup_project(501, label_studio)
    stop = threading.Event()
    counts = [0] * 8

    def client(index: int) -> None:
        http = Http(api.url, timeout=60)
        k = 0
        while not stop.is_set() and k < 100_000:
            token = f"p{index}-{k}"
            http.request(
                "POST", "/predict", interactive_body(501, k, task_text(k, token), f"Sarcastic? [bench:{token}]")
            )
            counts[index] += 1
            k += 1
        http.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)  # warm up
    spy = record(api.process.process.pid, seconds, out)
    _, err = spy.communicate(timeout=seconds + 60)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    log(f"profile interactive: {sum(counts)} requests; {err.strip().splitlines()[-1:]}")
    stack.drop_label_studio(label_studio)
    stack.close_api(api)


def profile_enqueue(stack: Stack, seconds: float, out: Path) -> None:
    prefix = stack.prefix("profile-enqueue")
    api = stack.api(prefix)
    label_studio = stack.label_studio()
    api.setup_project(502, label_studio)
    bodies = [batch_body(502, 100_000, salt=f"e{i} ") for i in range(2)]
    api.call("POST", "/predict", batch_body(502, 1000, salt="warm "))
    spy = record(api.process.process.pid, seconds, out)
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline and count < 1000:
        _, elapsed = api.call("POST", "/predict", bodies[count % 2])
        count += 1
        stack.delete_keys(f"{prefix}:job")  # keep the shared Redis small
    _, err = spy.communicate(timeout=seconds + 60)
    log(f"profile enqueue: {count} requests of 100,000 tasks; {err.strip().splitlines()[-1:]}")
    stack.drop_label_studio(label_studio)
    stack.close_api(api)


LOADS = {"worker": profile_worker, "interactive": profile_interactive, "enqueue": profile_enqueue}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(LOADS), help=f"comma-separated subset of {','.join(LOADS)}")
    parser.add_argument("--seconds", type=float, default=15, help="sampling time per load (default 15)")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    redis_url, embedded = _redis_url()
    stack = Stack(results_dir / "logs", redis_url)
    summaries = {}
    try:
        stack.start_fake_llm()
        for load in args.only.split(","):
            out = results_dir / f"profile-{load}.txt"
            log(f"profiling {load} for {args.seconds:g} s")
            LOADS[load](stack, args.seconds, out)
            summaries[load] = summarize(out)
    finally:
        stack.close()
        if embedded is not None:
            embedded.terminate()
    for load, summary in summaries.items():
        _print(load, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
