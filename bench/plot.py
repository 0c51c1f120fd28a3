"""``bench/results/bench.png``: batch throughput against worker processes and LLM_CONCURRENCY, and the
CDF of interactive overhead per number of clients (with cache-hit latency); ``bench/results/real-ls.png``:
the LLM window and the predictions landing over time in the runs against a real Label Studio;
``bench/results/hundred-k.png``: the import calls' cost and the predictions landing in the 100,000-task runs.

``python -m bench.plot`` redraws it from the JSON files in ``bench/results/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _cdf(ax, samples: list[float], label: str, **style) -> None:
    if not samples:
        return
    ordered = sorted(samples)
    n = len(ordered)
    ax.step(ordered, [(i + 1) / n for i in range(n)], where="post", label=f"{label} (n={n})", **style)


def plot(results: dict[str, dict], path: Path) -> Path | None:
    batch = results.get("batch")
    interactive = results.get("interactive")
    have_batch = bool(batch and batch.get("runs"))
    have_interactive = bool(interactive and interactive.get("levels"))
    if not (have_batch or have_interactive):
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.5))

    if have_batch:
        by_concurrency: dict[int, list[tuple[int, float]]] = {}
        for run in batch["runs"]:
            by_concurrency.setdefault(run["llm_concurrency"], []).append((run["worker_processes"], run["tasks_per_s"]))
        for concurrency, points in sorted(by_concurrency.items()):
            points.sort()
            left.plot(
                [p[0] for p in points], [p[1] for p in points], marker="o", label=f"LLM_CONCURRENCY={concurrency}"
            )
        baseline = batch["baseline"]["tasks_per_s"]
        left.axhline(baseline, color="grey", linestyle=":", label=f"sequential baseline ({baseline:.1f} tasks/s)")
        left.axhline(50 * baseline, color="red", linestyle="--", linewidth=0.8, label="target: 50× baseline")
        left.set_xticks(sorted({run["worker_processes"] for run in batch["runs"]}))
        left.set_xlabel("worker processes (llm-backend worker --concurrency 1 each)")
        left.set_ylabel("tasks/s (2,000 tasks, to the last prediction)")
        setup = batch.get("setup", {})
        left.set_title(
            f"Batch throughput, LLM {setup.get('llm_delay_s', 0.5) * 1000:.0f} ms ± "
            f"{setup.get('llm_jitter_s', 0.1) * 1000:.0f} ms"
        )
        left.set_yscale("log")
        left.grid(True, which="both", alpha=0.3)
        left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    else:
        left.set_axis_off()

    if have_interactive:
        for level in interactive["levels"]:
            _cdf(right, level.get("overhead_samples_ms", []), f"overhead, {level['clients']} client(s)")
        for hit in interactive.get("cache_hits", []):
            _cdf(
                right,
                hit.get("latency_samples_ms", []),
                f"cache hit latency, {hit['clients']} client(s)",
                linestyle="--",
            )
        right.axvline(
            4, color="red", linestyle=":", linewidth=0.8, label="targets at 8 clients: p50 ≤ 4 ms, p99 ≤ 20 ms"
        )
        right.axvline(20, color="red", linestyle=":", linewidth=0.8)
        right.set_xscale("log")
        right.set_xlabel("ms (overhead = API time − the fake LLM's time for that request)")
        right.set_ylabel("fraction of requests")
        right.set_title("Interactive /predict: overhead above the LLM call (CDF)")
        right.grid(True, which="both", alpha=0.3)
        right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    else:
        right.set_axis_off()

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_real_ls(result: dict, path: Path) -> Path | None:
    """In flight at the fake LLM (the window) and predictions in Label Studio over time, per real-LS run."""
    runs = result.get("runs") or []
    if not runs:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    for run in runs:
        label = f"{run['tasks']:,} tasks, {run['worker_processes']} worker(s), window {run['window']}"
        samples = run.get("in_flight_samples") or []
        top.plot([at for at, _ in samples], [count for _, count in samples], label=label, linewidth=1)
        pushed = run.get("pushed_samples") or []
        bottom.step([at for at, _ in pushed], [count for _, count in pushed], where="post", label=label)
    for window in sorted({run["window"] for run in runs}):
        top.axhline(window, color="grey", linestyle=":", linewidth=0.8)
    top.set_ylabel("LLM calls in flight (fake's counter)")
    top.set_title("Batch against a real Label Studio 1.23.2: the LLM window (dotted: its size) and predictions landing")
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8)
    bottom.set_xlabel("seconds since /predict")
    bottom.set_ylabel("predictions in Label Studio (job's pushed count)")
    bottom.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_hundred_k(result: dict, path: Path) -> Path | None:
    """Per variant: each import call's duration when it ended, and the predictions landed, over time."""
    runs = result.get("runs") or []
    if not runs:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    for run in runs:
        label = f"{run['tasks']:,} tasks, Label Studio flag {'on' if run['label_studio_flag'] else 'off'}"
        calls = run.get("push_call_samples") or []
        top.scatter([at for at, _, _ in calls], [seconds for _, _, seconds in calls], s=6, label=label)
        pushed = run.get("pushed_samples") or []
        bottom.step([at for at, _ in pushed], [count for _, count in pushed], where="post", label=f"{label}: pushed")
        total = run.get("total_samples") or []
        bottom.plot([at for at, _ in total], [count for _, count in total], linestyle=":", label=f"{label}: in the job")
    top.set_ylabel("import/predictions call (s)")
    top.set_title("llm-backend batch against a real Label Studio 1.23.2: the cost of each import call")
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8)
    bottom.set_xlabel("seconds since llm-backend batch started")
    bottom.set_ylabel("tasks")
    bottom.grid(True, alpha=0.3)
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> int:
    results_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    results = {}
    for name in ("batch", "interactive"):
        file = results_dir / f"{name}.json"
        if file.exists():
            results[name] = json.loads(file.read_text())
    path = plot(results, results_dir / "bench.png")
    print(path or "nothing to plot")
    real_ls = results_dir / "real_ls.json"
    if real_ls.exists():
        print(plot_real_ls(json.loads(real_ls.read_text()), results_dir / "real-ls.png"))
    hundred_k = results_dir / "hundred_k.json"
    if hundred_k.exists():
        print(plot_hundred_k(json.loads(hundred_k.read_text()), results_dir / "hundred-k.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
