"""`llm-backend jobs`, `jobs show`, `jobs pause`, `jobs resume`, `jobs cancel` on the real Redis."""

import subprocess
import sys

from api.state import state_of
from tests.conftest import labeling_config
from tests.integration.processes import LLM_BACKEND, llm_backend_env


def run(env, *args):
    return subprocess.run([LLM_BACKEND, *args], env=env, capture_output=True, text=True, timeout=60)


def test_jobs_list_show_pause_resume_and_cancel(make_client, make_settings, real_store, redis_prefix, llm_server):
    client = make_client(make_settings(redis_key_prefix=redis_prefix, batch_chunk_size=10), real_store)
    config = labeling_config("sarcasm")
    client.post(
        "/setup", json={"project": "61.1", "schema": config, "hostname": "http://ls.example", "access_token": "tok"}
    )
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 61},
        "annotation": {"result": [{"from_name": "prompt", "value": {"text": ["p"]}}]},
    }
    client.post("/webhook", json=event)
    tasks = [{"id": i, "data": {"text": str(i)}} for i in range(25)]
    job_id = client.post("/predict", json={"tasks": tasks, "project": "61.1", "label_config": config}).json["job"]
    env = llm_backend_env(llm_server.url, redis_prefix)

    listed = run(env, "jobs")
    assert listed.returncode == 0 and job_id in listed.stdout and "queued" in listed.stdout
    assert job_id in run(env, "jobs", "--project", "61").stdout
    assert run(env, "jobs", "--project", "62").stdout.strip() == "no jobs"

    shown = run(env, "jobs", "show", job_id)
    assert shown.returncode == 0
    assert "tasks 25: done 0, failed 0, pushed 0" in shown.stdout and "model gpt-3.5-turbo" in shown.stdout

    paused = run(env, "jobs", "pause", job_id)
    assert (paused.returncode, paused.stdout.strip()) == (0, f"job {job_id}: paused (paused by request)")
    bad_budget = run(env, "jobs", "resume", job_id, "--max-usd", "-1")
    assert bad_budget.returncode == 2 and "--max-usd must be a number of USD, 0 or more" in bad_budget.stderr
    resumed = run(env, "jobs", "resume", job_id, "--max-usd", "2.5")
    assert (resumed.returncode, resumed.stdout.strip()) == (0, f"job {job_id}: queued"), resumed.stderr
    assert client.get(f"/jobs/{job_id}").json["max_usd"] == 2.5
    again = run(env, "jobs", "resume", job_id)
    assert again.returncode == 2 and f"job {job_id} is queued: only a paused job can be resumed" in again.stderr

    cancelled = run(env, "jobs", "cancel", job_id)
    assert (cancelled.returncode, cancelled.stdout.strip()) == (0, f"job {job_id}: cancelled")
    assert client.get(f"/jobs/{job_id}").json["state"] == "cancelled"

    missing = run(env, "jobs", "show", "nope")
    assert missing.returncode == 2 and "no job nope" in missing.stderr
    state_of(client.application).services.jobs.add(job_id, "done", [0])  # <id>:done is now a set
    for action in ("show", "cancel"):  # which once ended in Redis's WRONGTYPE and a traceback
        other_key = run(env, "jobs", action, f"{job_id}:done")
        assert (other_key.returncode, other_key.stderr.strip()) == (2, f"llm-backend: no job {job_id}:done"), action
    assert run(env, "jobs", "cancel").returncode == 2


def test_listing_and_showing_jobs_import_nothing_of_the_prediction_pipeline():
    """An operator's `llm-backend jobs` reads Redis only: without the LLM client, Celery, the SDK and the
    pipeline's modules a call costs ~0.3 s of CPU instead of ~1.3 s (the suite makes a dozen of them)."""
    heavy = ["openai", "celery", "numpy", "label_studio_sdk", "shared.predictor", "shared.services", "shared.dispatch"]
    check = f"import sys, cli.jobs, cli.main; print(sorted(set({heavy!r}) & set(sys.modules)))"
    imported = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    assert imported.stdout.strip() == "[]"
