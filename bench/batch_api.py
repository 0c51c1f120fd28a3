"""Scenario 5: what a job costs on each path, and how long a Batch API job takes.

The LLM here is the tests' fake OpenAI server (``tests/fakes/openai_server``), served from a thread of the
benchmark process (where the scenario sets its reply and batch turnaround): it plays the Batch API (files,
batches answered ``batch_turnaround`` seconds after creation) and reports ``cached_tokens`` as OpenAI computes
them (the longest prefix shared with an earlier request of the model, from 1,024 tokens in 128-token steps),
with usage counted by its documented rule of 4 characters a token.  Real ``llm-backend api`` and ``worker``
processes, Redis, and the recording Label Studio stand-in.

1. **Cost per 1,000 tasks**, a project with a 1,500-token instruction prompt and short task texts,
   ``gpt-4o-mini`` priced with the built-in table, the same answers (the same output mode) on each path:
   the reference's layout (its template ``Source Text: {text}\\n\\nTask Directive: {prompt}``: the task's
   data first) on the live path; this backend's live path (its default template: the task's data last);
   this backend's Batch API path (``BATCH_API=on``).  Measured in ``OUTPUT_MODE=auto`` (the default: a JSON
   schema and instructions go with every request) and in ``text`` (no schema: with the reference's
   template that is exactly the reference backend's request).  Each is one job of 1,000 tasks in a project
   of its own (extra params), and the figures are the job's, as ``/jobs/<id>`` reports them.
2. **Wall time of a 10,000-task Batch API job** with a 60 s batch turnaround, from ``/predict`` to the
   last prediction in Label Studio, and the workers' CPU time while the batch runs (no worker busy).
"""

from __future__ import annotations

import time

from bench.harness import CONFIG_XML, PROJECT_TS, Api, Stack, log, task_text, tree_cpu
from shared.domain.config import REFERENCE_PROMPT_TEMPLATE
from tests.fakes.openai_server import FakeOpenAIServer

MODEL = "gpt-4o-mini"
COST_TASKS = 1000
BIG_JOB_TASKS, TURNAROUND = 10_000, 60.0
INSTRUCTION_CHARS = 6000  # 1,500 tokens by the fake's rule (4 characters a token)
GUIDANCE = (
    "Sarcasm says the opposite of what is meant, usually to mock or to show irritation: praise for something "
    "plainly bad, thanks for something unwelcome, exaggerated enthusiasm about a chore. Literal complaints, "
    "neutral statements and sincere praise are not sarcastic. When in doubt, prefer Not Sarcastic. "
)
PATHS = {  # each compared with the reference's layout in the same output mode
    "reference layout, live": {"prompt_template": REFERENCE_PROMPT_TEMPLATE},
    "this backend, live": {},
    "this backend, Batch API": {"batch_api": "on"},
}
OUTPUT_MODES = ("auto", "text")


def instruction() -> str:
    text = "You label short texts as Sarcastic or Not Sarcastic. " + GUIDANCE * 30
    return text[:INSTRUCTION_CHARS]


def same_answer(messages: list[dict], index: int) -> str | dict:
    """The same labels in the form each request asks for: JSON where the instructions ask for it, else prose."""
    structured = any(
        message["role"] == "system" and "Answer with one JSON" in message["content"] for message in messages
    )
    return {"response": "Sarcastic", "sentiment": ["Sarcastic"]} if structured else "Sarcastic"


def setup_project(api: Api, project: int, label_studio, extra: dict) -> None:
    api.call(
        "POST",
        "/setup",
        {
            "project": f"{project}.{PROJECT_TS}",
            "schema": CONFIG_XML,
            "hostname": label_studio.url,
            "access_token": label_studio.token,
            "extra_params": {"model": MODEL, **extra},
        },
    )
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": project},
        "annotation": {"result": [{"from_name": "prompt", "value": {"text": [instruction()]}}]},
    }
    api.call("POST", "/webhook", event)


def run_job(api: Api, project: int, tasks: int, label_studio, timeout: float, on_status=None) -> tuple[dict, float]:
    body = {
        "tasks": [{"id": i, "data": {"text": task_text(i, f"{project} ")}} for i in range(tasks)],
        "project": f"{project}.{PROJECT_TS}",
    }
    label_studio.hold_tasks(project, body["tasks"])
    started = time.monotonic()
    payload, _ = api.call("POST", "/predict", body)
    job_id = payload["job"]
    while True:
        status = api.job(job_id)
        if on_status:
            on_status(status)
        if status["state"] in ("done", "failed", "partial") and label_studio.count() >= status["pushed"]:
            return status, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"job {job_id} not finished in {timeout:g} s: {status}")
        time.sleep(0.5)


def cost_runs(stack: Stack, api: Api, fake) -> list[dict]:
    runs = []
    project = 500
    for output_mode in OUTPUT_MODES:
        reference_cost = None
        for label, extra in PATHS.items():
            project += 1
            run = cost_run(stack, api, fake, project, label, extra | {"output_mode": output_mode})
            reference_cost = reference_cost or run["cost_per_1000_usd"]
            run["share_of_reference"] = run["cost_per_1000_usd"] / reference_cost
            runs.append(run)
            log(
                f"batch_api: {label} ({output_mode}): ${run['cost_per_1000_usd']:.4f} per 1,000 tasks "
                f"({run['share_of_reference']:.0%}), {run['job_state']}"
            )
    return runs


def cost_run(stack: Stack, api: Api, fake, project: int, label: str, extra: dict) -> dict:
    fake.reset()
    fake.reply, fake.batch_turnaround = same_answer, 2.0
    label_studio = stack.label_studio()
    setup_project(api, project, label_studio, extra)
    status, seconds = run_job(api, project, COST_TASKS, label_studio, timeout=300)
    stack.drop_label_studio(label_studio)
    return {
        "path": label,
        "output_mode": extra["output_mode"],
        "extra_params": extra,
        "job_state": status["state"],
        "pushed": status["pushed"],
        "mode": status["mode"],
        "tokens_in": status["tokens_in"],
        "tokens_cached": status["tokens_cached"],
        "tokens_out": status["tokens_out"],
        "live_requests": len(fake.live_completions),
        "batch_requests": len(fake.batch_completions),
        "cost_per_1000_usd": status["cost_usd"] * 1000 / COST_TASKS,
        "seconds": seconds,
    }


def big_job(stack: Stack, api: Api, fake, workers) -> dict:
    fake.reset()
    fake.reply, fake.batch_turnaround = same_answer, TURNAROUND
    label_studio = stack.label_studio()
    project = 510
    setup_project(api, project, label_studio, {"batch_api": "on"})
    marks: dict[str, float] = {}

    def watch(status: dict) -> None:
        if status["batches"] and "submitted" not in marks:
            marks["submitted"] = time.monotonic()
            marks["cpu_at_submit"] = sum(tree_cpu(w.process.pid) for w in workers)
        if "submitted" in marks and "cpu_before_done" not in marks and time.monotonic() - marks["submitted"] > 50:
            marks["cpu_before_done"] = sum(tree_cpu(w.process.pid) for w in workers)
            marks["waited"] = time.monotonic() - marks["submitted"]

    started = time.monotonic()
    status, seconds = run_job(api, project, BIG_JOB_TASKS, label_studio, timeout=TURNAROUND + 600, on_status=watch)
    distinct, duplicated = label_studio.once_each()
    stack.drop_label_studio(label_studio)
    polls = [r for r in fake.requests if "/batches/" in r.path and not r.path.endswith("/cancel")]
    result = {
        "tasks": BIG_JOB_TASKS,
        "turnaround_s": TURNAROUND,
        "job_state": status["state"],
        "pushed": status["pushed"],
        "distinct_tasks": distinct,
        "duplicated_tasks": duplicated,
        "seconds": seconds,
        "submitted_after_s": marks.get("submitted", float("nan")) - started,
        "batches": len(status["batches"]),
        "polls": len(polls),
        "live_requests": len(fake.live_completions),
        "worker_cpu_while_waiting_s": marks.get("cpu_before_done", float("nan")) - marks.get("cpu_at_submit", 0.0),
        "waiting_window_s": marks.get("waited", float("nan")),
        "cost_usd": status["cost_usd"],
        "live_cost_usd": status["live_cost_usd"],
    }
    log(
        f"batch_api: {BIG_JOB_TASKS} tasks in {seconds:.0f} s (turnaround {TURNAROUND:g} s), "
        f"workers' CPU while waiting {result['worker_cpu_while_waiting_s']:.2f} s"
    )
    return result


def run(stack: Stack, quick: bool) -> dict:
    server = FakeOpenAIServer()
    server.__enter__()
    try:
        prefix = stack.prefix("batch_api")
        env = {
            "OPENAI_BASE_URL": f"{server.url}/v1",
            "ALLOWED_MODELS": MODEL,  # the projects' model of their own
            "CACHE_TTL": 0,
            "BATCH_CHUNK_SIZE": 100,
            "BATCH_API_POLL_FIRST": 2,
            "BATCH_API_POLL_MAX": 10,
        }
        api = stack.api(prefix, **env)
        workers = stack.workers(prefix, 1, concurrency=2, **env)
        runs = cost_runs(stack, api, server.fake)
        big = big_job(stack, api, server.fake, workers)
        for worker in workers:
            stack.stop(worker)
        stack.close_api(api)
    finally:
        server.__exit__(None, None, None)
    return {
        "scenario": "batch_api",
        "setup": {
            "model": MODEL,
            "instruction_tokens": INSTRUCTION_CHARS // 4,
            "tasks_per_cost_run": COST_TASKS,
            "llm": "the tests' fake OpenAI server (Batch API, cached_tokens as OpenAI computes them), in-process",
            "workers": "1 llm-backend worker --concurrency 2; env "
            + " ".join(f"{k}={v}" for k, v in env.items() if k != "OPENAI_BASE_URL"),
        },
        "runs": runs,
        "big_job": big,
    }
