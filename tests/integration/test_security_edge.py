"""Issue #23, the API's edge, with default settings (auth off, as Label Studio's ML backends ship): a page in an
internal user's browser cannot drive the backend (cross-site bodies, Origins, DNS rebinding), jobs answer only
for their project, and ``llm-backend api`` will not listen beyond loopback without basic auth.

The Flask test client for the request rules; real ``llm-backend api`` processes for the start-up rule and to
show the rules hold behind gunicorn.
"""

from __future__ import annotations

import base64
import json
import subprocess

import httpx
import pytest

from api.state import state_of
from shared.domain.types import JobSnapshot
from tests.conftest import labeling_config
from tests.integration.processes import LLM_BACKEND, BackendProcess, backend_env, free_port, llm_backend_env

PROJECT = "41.1700000000"
SETUP = {"project": PROJECT, "schema": labeling_config("sarcasm")}
PROMPT_EVENT = {
    "action": "ANNOTATION_CREATED",
    "project": {"id": 41, "label_config": labeling_config("sarcasm")},
    "annotation": {"result": [{"from_name": "prompt", "to_name": "text", "value": {"text": ["Sarcastic?"]}}]},
}
EVIL = "https://evil.example"


@pytest.fixture
def client(make_client, make_settings, real_store, redis_prefix):
    """The API with default settings on the real Redis (the conftest's make_settings only points it at the
    stand-ins: the fake LLM and loopback Label Studios)."""
    return make_client(make_settings(redis_key_prefix=redis_prefix), real_store)


# --- cross-site requests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
    ids=["text", "form", "multipart", "none"],
)
@pytest.mark.parametrize(("path", "body"), [("/setup", SETUP), ("/webhook", PROMPT_EVENT)])
def test_json_routes_refuse_bodies_that_a_browser_sends_across_sites_without_asking(
    client, real_store, path, body, content_type
):
    """A page of any site may POST text/plain, a form or multipart without a CORS preflight: JSON routes take
    only application/json, which a browser sends across sites only to a server that allows it (none here)."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(path, data=json.dumps(body), headers=headers)

    assert response.status_code == 415, response.json
    assert "Content-Type: application/json" in response.json["error"]
    assert real_store.load_setup("41") is None and real_store.prompt("41") is None, "nothing was done"
    assert client.post(path, data=json.dumps(body), content_type="application/json; charset=utf-8").status_code == 200


def test_every_json_route_needs_the_json_content_type(client):
    for path in ("/predict", "/evaluations", "/improvements"):
        response = client.post(path, data='{"tasks": []}', content_type="text/plain")
        assert response.status_code == 415, path


@pytest.mark.parametrize("origin", [EVIL, "null", "http://localhost:8080"])
def test_a_request_from_a_browser_page_is_refused_whatever_it_sends(client, real_store, origin):
    """Label Studio calls from its server, without Origin; a browser always names the page that sent a POST."""
    for method, path, body in (("post", "/setup", SETUP), ("post", "/webhook", PROMPT_EVENT), ("get", "/jobs", None)):
        response = getattr(client, method)(path, json=body, headers={"Origin": origin})
        assert response.status_code == 403, (path, response.json)
        assert "ALLOWED_ORIGINS" in response.json["error"] and origin in response.json["error"]
    assert real_store.load_setup("41") is None and real_store.prompt("41") is None
    assert client.post("/setup", json=SETUP).status_code == 200


def test_allowed_origins_lets_one_sites_pages_in(make_client, make_settings):
    client = make_client(make_settings(allowed_origins=["https://tools.example"]))
    assert client.get("/health", headers={"Origin": "https://tools.example"}).status_code == 200
    assert client.get("/health", headers={"Origin": "https://tools.example:8443"}).status_code == 403
    assert client.get("/health", headers={"Origin": EVIL}).status_code == 403


# --- DNS rebinding --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:9090", "10.0.0.5.nip.io:9090"])
def test_a_host_name_nobody_allowed_is_refused(client, real_store, host):
    """A rebinding page sends its own name as Host, whatever address its DNS gave."""
    for method, path, body in (("post", "/setup", SETUP), ("get", "/jobs", None), ("get", "/health", None)):
        response = getattr(client, method)(path, json=body, base_url=f"http://{host}")
        assert response.status_code == 400, (path, response.json)
        assert "ALLOWED_HOSTS" in response.json["error"] and host.split(":")[0] in response.json["error"]
    assert real_store.load_setup("41") is None


@pytest.mark.parametrize(
    "host", ["localhost:9090", "127.0.0.1:9090", "[::1]:9090", "192.168.1.20:9090", "api.localhost"]
)
def test_loopback_names_and_ip_addresses_are_answered_by_default(client, host):
    """How Label Studio usually names the backend: localhost, or http://<machine-ip>:9090."""
    assert client.get("/health", base_url=f"http://{host}").status_code == 200


def test_allowed_hosts_names_the_backend_and_star_accepts_any(make_client, make_settings):
    named = make_client(make_settings(allowed_hosts=["llm-backend.internal", "api"]))
    assert named.get("/health", base_url="http://llm-backend.internal:9090").status_code == 200
    assert named.get("/health", base_url="http://api:9090").status_code == 200
    assert named.get("/health", base_url="http://evil.example").status_code == 400
    anything = make_client(make_settings(allowed_hosts=["*"]))
    assert anything.get("/health", base_url="http://evil.example").status_code == 200


def test_the_host_is_checked_before_credentials(make_client, make_settings):
    """Credentials a browser saved for the backend's address do not open it under another name."""
    client = make_client(make_settings(basic_auth_user="ls", basic_auth_pass="s3cret"))
    good = {"Authorization": "Basic " + base64.b64encode(b"ls:s3cret").decode()}
    assert client.get("/health", headers=good).status_code == 200
    assert client.get("/health", headers=good, base_url="http://evil.example").status_code == 400


# --- headers on what the API answers -------------------------------------------------------------------------------


def test_every_answer_says_nosniff(client):
    for response in (client.get("/health"), client.get("/nothing-here"), client.post("/setup", json={})):
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.status_code


# --- jobs ----------------------------------------------------------------------------------------------------------


def _job(client, project: str) -> str:
    jobs = state_of(client.application).services.jobs
    snapshot = JobSnapshot(
        project=project,
        label_config="<View/>",
        extra_params={},
        model_version="v",
        model="m",
        prompt="p",
        prompt_error=None,
    )
    return jobs.create(snapshot, [1], chunk_size=1)


def test_a_job_id_that_no_job_could_have_is_a_404_not_a_500(client):
    """``<id>:done`` once reached another of the job's keys (a set), and Redis answered WRONGTYPE."""
    job_id = _job(client, "7")
    state_of(client.application).services.jobs.add(job_id, "done", [1])
    assert client.get(f"/jobs/{job_id}").status_code == 200
    for bad in (f"{job_id}:done", f"{job_id}:errors", job_id.upper(), job_id[:-1], "x" * 32):
        response = client.get(f"/jobs/{bad}")
        assert response.status_code == 404, (bad, response.json)
        assert response.json["error"].startswith(f"no job {bad}")
        cancelled = client.post(f"/jobs/{bad}/cancel?project=7")
        assert cancelled.status_code == 404, (bad, cancelled.json)


def test_jobs_can_be_listed_for_one_project(client):
    sevens, eight = [_job(client, "7"), _job(client, "7")], _job(client, "8")

    assert {job["id"] for job in client.get("/jobs?project=7").json["jobs"]} == set(sevens)
    assert [job["id"] for job in client.get("/jobs?project=8").json["jobs"]] == [eight]
    # Without the filter, every project's jobs: what the API still shows whoever reaches it with auth off.
    assert {job["id"] for job in client.get("/jobs").json["jobs"]} == {*sevens, eight}
    bad = client.get("/jobs?project=seven")
    assert bad.status_code == 400 and "project must be a Label Studio project id" in bad.json["error"]


def test_cancelling_a_job_needs_its_project(client):
    job_id = _job(client, "7")

    missing = client.post(f"/jobs/{job_id}/cancel")
    assert missing.status_code == 400 and "project is required" in missing.json["error"]
    other = client.post(f"/jobs/{job_id}/cancel?project=8")
    assert other.status_code == 404 and f"no job {job_id} in project 8" in other.json["error"]
    assert client.get(f"/jobs/{job_id}").json["state"] == "queued", "another project's cancel changed nothing"

    cancelled = client.post(f"/jobs/{job_id}/cancel?project=7")
    assert cancelled.status_code == 200 and cancelled.json["state"] == "cancelled"
    assert client.get(f"/jobs/{job_id}").json["state"] == "cancelled"


# --- real processes: where `llm-backend api` listens ---------------------------------------------------------------


def _start(env: dict[str, str], log, *args: str) -> tuple[BackendProcess, str]:
    port = free_port()
    api = BackendProcess(["api", *args, "--port", str(port), "--workers", "1"], env, log).start()
    api.wait_for_log("Booting worker")
    return api, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("command", ["api", "up"])
def test_the_api_refuses_to_listen_beyond_loopback_without_basic_auth(command, tmp_path):
    result = subprocess.run(
        [LLM_BACKEND, command, "--host", "0.0.0.0", "--port", str(free_port())],
        env=backend_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("llm-backend: refusing to listen on 0.0.0.0 without basic auth")
    for named in ("BASIC_AUTH_USER", "BASIC_AUTH_PASS", "--host 127.0.0.1", "ALLOW_UNAUTHENTICATED=true"):
        assert named in line
    assert not (tmp_path / ".llm-backend").exists(), "up started nothing"


def test_the_api_listens_on_loopback_by_default(llm_server, redis_prefix, tmp_path):
    env = llm_backend_env(llm_server.url, redis_prefix)
    api, base = _start(env, tmp_path / "api.log")
    try:
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200
        assert f"Listening at: {base}" in api.log
    finally:
        api.stop()


def test_beyond_loopback_with_basic_auth_the_edge_rules_hold_behind_gunicorn(llm_server, redis_prefix, tmp_path):
    env = llm_backend_env(llm_server.url, redis_prefix, BASIC_AUTH_USER="ls", BASIC_AUTH_PASS="pass-4242")
    api, base = _start(env, tmp_path / "api.log", "--host", "0.0.0.0")
    try:
        assert "Listening at: http://0.0.0.0:" in api.log
        with httpx.Client(base_url=base, auth=("ls", "pass-4242"), timeout=10) as client:
            assert httpx.get(f"{base}/health", timeout=10).status_code == 401
            assert client.get("/health").status_code == 200
            rebound = client.get("/health", headers={"Host": "evil.example:9090"})
            assert rebound.status_code == 400 and "ALLOWED_HOSTS" in rebound.json()["error"]
            cross_site = client.post("/setup", json=SETUP, headers={"Origin": EVIL})
            assert cross_site.status_code == 403 and "ALLOWED_ORIGINS" in cross_site.json()["error"]
            as_text = client.post("/setup", content=b'{"project": "41.1"}', headers={"Content-Type": "text/plain"})
            assert as_text.status_code == 415 and as_text.headers["X-Content-Type-Options"] == "nosniff"
            assert client.post("/setup", json=SETUP).status_code == 200
    finally:
        api.stop()


def test_allow_unauthenticated_is_the_explicit_opt_out(llm_server, redis_prefix, tmp_path):
    env = llm_backend_env(llm_server.url, redis_prefix, ALLOW_UNAUTHENTICATED="true")
    api, base = _start(env, tmp_path / "api.log", "--host", "0.0.0.0")
    try:
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    finally:
        api.stop()
