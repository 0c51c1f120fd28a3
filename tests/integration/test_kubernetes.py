"""deploy/kubernetes, checked offline (issue #26, items 1-2): every overlay renders with ``kubectl kustomize``,
validates strictly against Kubernetes' schemas and, for KEDA's objects, against the fields KEDA defines; every
variable the manifests set is a setting; secrets come only from Secrets; and the KEDA trigger queries series /metrics
really exports (the backlog of issue #25, item 6), asking for more workers on a real backlog and for the minimum
without one."""

from __future__ import annotations

import copy
import math
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cli.main import _parser
from shared.domain.config import Settings, setting_default
from tests.conftest import LS_TOKEN, labeling_config
from tests.integration.processes import BackendProcess, llm_backend_env, prepare_project_over_http
from tests.integration.test_security_processes import start_api

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KEDA_SCHEMA = yaml.safe_load((ROOT / "tests" / "kubernetes" / "keda-v2.20.2.schema.yaml").read_text())
KEDA_API = "keda.sh/v1alpha1"
VALIDATE = str(Path(sys.executable).with_name("kubernetes-validate"))
OVERLAYS = sorted(path.name for path in KUBERNETES.iterdir() if (path / "kustomization.yaml").exists())
OVERLAYS.remove("base")  # the base has no Redis: only an overlay is applied
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SETTINGS = {name.upper() for name in Settings.model_fields}
SECRET_SETTINGS = {
    name.upper() for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)
}


def render(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "Debian's kubectl is needed (make test installs it)"
    result = subprocess.run([kubectl, "kustomize", str(KUBERNETES / overlay)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [item for item in objects if item["kind"] == kind]


def one(objects: list[dict], kind: str, name: str) -> dict:
    [found] = [item for item in of_kind(objects, kind) if item["metadata"]["name"] == name]
    return found


def backend_containers(objects: list[dict]) -> list[dict]:
    """The containers that run ``llm-backend`` (not Redis)."""
    return [
        container
        for item in of_kind(objects, "Deployment")
        for container in item["spec"]["template"]["spec"]["containers"]
        if container["command"][0] == "llm-backend"
    ]


def strictly_invalid(objects: list[dict], tmp_path: Path) -> str | None:
    """kubernetes-validate --strict's complaint about these objects, or None."""
    path = tmp_path / f"objects-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    result = subprocess.run([VALIDATE, "--strict", "--quiet", str(path)], capture_output=True, text=True)
    return None if result.returncode == 0 else result.stdout + result.stderr


def keda_problems(item: dict) -> list[str]:
    """What KEDA v2.20.2 would refuse in a ScaledObject (see the schema file)."""
    validator = jsonschema.Draft7Validator(KEDA_SCHEMA[item["kind"]])
    problems = [f"{list(error.path)}: {error.message}" for error in validator.iter_errors(item)]
    scaler = KEDA_SCHEMA["PrometheusScaler"]
    for trigger in item["spec"].get("triggers", []):
        assert trigger["type"] == "prometheus", "only the prometheus scaler's parameters are in the schema file"
        problems += [
            f"unknown prometheus trigger parameter {key}"
            for key in trigger["metadata"]
            if key not in scaler["triggerMetadata"]
        ]
    return problems


def test_the_overlays_are_the_two_redis_choices():
    assert OVERLAYS == ["in-cluster-redis", "managed-redis"]


def test_every_overlay_validates_strictly(rendered, tmp_path):
    overlay, objects = rendered
    kinds = {item["kind"] for item in objects}
    assert {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ScaledObject",
    } <= kinds
    kubernetes_objects = [item for item in objects if item["apiVersion"] != KEDA_API]
    assert strictly_invalid(kubernetes_objects, tmp_path) is None
    assert {item["kind"] for item in objects if item["apiVersion"] == KEDA_API} == {"ScaledObject"}
    assert [problem for item in objects if item["apiVersion"] == KEDA_API for problem in keda_problems(item)] == []


def test_the_checks_refuse_a_misspelled_field(tmp_path):
    """Both validations fail on a field their schema does not define (so the test above can fail)."""
    objects = render("managed-redis")
    deployment = copy.deepcopy(one(objects, "Deployment", "llm-backend-worker"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 90
    assert "terminationGracePeriod" in (strictly_invalid([deployment], tmp_path) or "")
    scaled = copy.deepcopy(one(objects, "ScaledObject", "llm-backend-worker"))
    scaled["spec"]["maxReplicas"] = 10
    scaled["spec"]["triggers"][0]["metadata"]["queueName"] = "batch"
    assert any("maxReplicas" in problem for problem in keda_problems(scaled))
    assert "unknown prometheus trigger parameter queueName" in keda_problems(scaled)


def test_overlays_differ_only_in_how_redis_is_reached(rendered):
    overlay, objects = rendered
    for container in backend_containers(objects):
        env = {item["name"]: item for item in container["env"]}
        if overlay == "in-cluster-redis":
            assert env["REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@llm-backend-redis:6379/0"
            statefulset = one(objects, "StatefulSet", "llm-backend-redis")
            assert "--appendonly" in statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
            assert statefulset["spec"]["volumeClaimTemplates"]
        else:
            assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "llm-backend-redis", "key": "url"}
            assert {"name": "redis-tls", "mountPath": "/etc/llm-backend/redis-tls", "readOnly": True} in container[
                "volumeMounts"
            ]
    settings = one(objects, "ConfigMap", "llm-backend-settings")["data"]
    base = one(render("base"), "ScaledObject", "llm-backend-worker")
    assert one(objects, "ScaledObject", "llm-backend-worker")["spec"] == base["spec"], "KEDA does not read Redis"
    if overlay == "managed-redis":
        assert settings["REDIS_TLS_CA_FILE"] == "/etc/llm-backend/redis-tls/ca.crt"


def test_only_the_backends_pods_reach_the_in_cluster_redis():
    objects = render("in-cluster-redis")
    policy = one(objects, "NetworkPolicy", "llm-backend-redis")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    [backend] = rule["from"]
    components = {e["key"]: e["values"] for e in backend["podSelector"]["matchExpressions"]}
    assert components == {
        "app.kubernetes.io/name": ["llm-backend"],
        "app.kubernetes.io/component": ["api", "worker", "flower"],
    }


def test_every_variable_the_manifests_set_is_a_setting_and_secrets_come_from_secrets(rendered):
    overlay, objects = rendered
    assert of_kind(objects, "Secret") == [], "secrets are created by the operator, never written here"
    config_maps = of_kind(objects, "ConfigMap")
    assert [name for item in config_maps for name in item["data"] if name not in SETTINGS] == []
    assert [name for item in config_maps for name in item["data"] if name in SECRET_SETTINGS] == []
    for container in backend_containers(objects):
        assert container["envFrom"] == [{"configMapRef": {"name": "llm-backend-settings"}}]
        values = " ".join(item.get("value", "") for item in container["env"])
        for item in container["env"]:
            # A variable that is no setting may only carry a secret into another's value: $(REDIS_PASSWORD).
            assert item["name"] in SETTINGS or f"$({item['name']})" in values, item["name"]
            if item["name"] in SECRET_SETTINGS or item["name"] not in SETTINGS:
                assert set(item) == {"name", "valueFrom"} and "secretKeyRef" in item["valueFrom"], item


def test_images_are_pinned_to_the_project_version(rendered):
    overlay, objects = rendered
    images = [container["image"] for container in backend_containers(objects)]
    assert sorted(set(images)) == [f"llm-backend-api:{VERSION}", f"llm-backend-worker:{VERSION}"]


def test_containers_run_the_tested_subcommands_non_root(rendered):
    overlay, objects = rendered
    commands = {container["name"]: container["command"] for container in backend_containers(objects)}
    assert commands == {
        "api": ["llm-backend", "api", "--host", "0.0.0.0", "--port", "9090"],
        "worker": ["llm-backend", "worker", "--concurrency", "2"],
        "flower": ["llm-backend", "flower", "--port", "5555"],
    }
    for deployment in of_kind(objects, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            _parser().parse_known_args(container["command"][1:])
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    api = one(objects, "Deployment", "llm-backend-api")["spec"]["template"]["spec"]["containers"][0]
    # Beyond loopback the API starts only with basic auth; its probes pass it through `llm-backend health`.
    assert {"BASIC_AUTH_USER", "BASIC_AUTH_PASS"} <= {item["name"] for item in api["env"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert api[probe]["exec"]["command"][:2] == ["llm-backend", "health"]
        _parser().parse_args(api[probe]["exec"]["command"][1:])
    assert one(objects, "PodDisruptionBudget", "llm-backend-api")["spec"]["minAvailable"] == 1
    flower = one(objects, "Deployment", "llm-backend-flower")["spec"]["template"]["spec"]["containers"][0]
    assert {
        "name": "FLOWER_BASIC_AUTH",
        "valueFrom": {"secretKeyRef": {"name": "llm-backend", "key": "flower-basic-auth"}},
    } in flower["env"]


def scaling(objects: list[dict]) -> tuple[dict, dict, dict]:
    """The ScaledObject's spec, its prometheus trigger's metadata, and the settings of the ConfigMap."""
    scaled = one(objects, "ScaledObject", "llm-backend-worker")["spec"]
    [trigger] = scaled["triggers"]
    return scaled, trigger["metadata"], one(objects, "ConfigMap", "llm-backend-settings")["data"]


TERM = re.compile(r"sum\((\w+)\{([^}]*)\}\)")


def query_terms(query: str) -> list[tuple[str, dict[str, str]]]:
    """The trigger's PromQL, a sum of ``sum(metric{label="value", ...})`` terms: each term's metric and labels."""
    terms = TERM.findall(query)
    assert TERM.sub("", query).replace("+", "").strip() == "", f"only sums of series are evaluated here: {query}"
    return [(name, dict(re.findall(r'(\w+)="([^"]*)"', labels))) for name, labels in terms]


def evaluate(query: str, metrics_text: str) -> float:
    """What Prometheus answers for the trigger's query, scraping one API (every API shows the whole deployment)."""
    samples = [sample for family in text_string_to_metric_families(metrics_text) for sample in family.samples]
    total = 0.0
    for name, labels in query_terms(query):
        matching = [s for s in samples if s.name == name and labels.items() <= s.labels.items()]
        assert matching, f"/metrics exports no {name}{labels}"
        total += sum(sample.value for sample in matching)
    return total


def test_the_trigger_counts_tasks_to_predict_and_follows_the_maths(rendered):
    overlay, objects = rendered
    scaled, trigger, settings = scaling(objects)
    assert scaled["scaleTargetRef"] == {"name": "llm-backend-worker"}
    assert [name for name, _ in query_terms(trigger["query"])] == [
        "llm_backend_backlog_tasks",
        "llm_backend_in_flight_tasks",
    ], "every task still to predict: waiting, and in flight (not what waits for Label Studio)"
    worker = one(objects, "Deployment", "llm-backend-worker")["spec"]["template"]["spec"]
    command = worker["containers"][0]["command"]
    children = int(command[command.index("--concurrency") + 1])
    assert float(trigger["threshold"]) == children * int(settings["LLM_CONCURRENCY"])  # one busy pod's calls
    drain = float(settings.get("WORKER_DRAIN_SECONDS", setting_default("worker_drain_seconds")))
    assert worker["terminationGracePeriodSeconds"] >= drain + 10, "the drain and Celery's shutdown fit in the grace"
    api = one(objects, "Deployment", "llm-backend-api")["spec"]["template"]["spec"]
    graceful = float(settings.get("API_GRACEFUL_TIMEOUT", setting_default("api_graceful_timeout")))
    assert api["terminationGracePeriodSeconds"] >= graceful + 5, "gunicorn's graceful timeout fits in the grace"
    assert 1 <= scaled["minReplicaCount"] < scaled["maxReplicaCount"]


def desired_replicas(scaled: dict, trigger: dict, value: float) -> int:
    """What KEDA's HPA asks for from the trigger (ceil(value / threshold), within min and max)."""
    wanted = math.ceil(value / float(trigger["threshold"]))
    return min(scaled["maxReplicaCount"], max(scaled["minReplicaCount"], wanted))


def test_the_trigger_asks_for_more_workers_on_a_6000_task_backlog_and_the_minimum_without(
    llm_server, fake_llm, fake_label_studio, redis_prefix, tmp_path
):
    objects = render("in-cluster-redis")
    scaled, trigger, settings = scaling(objects)
    worker_container = one(objects, "Deployment", "llm-backend-worker")["spec"]["template"]["spec"]["containers"][0]
    env = llm_backend_env(
        llm_server.url, redis_prefix, OUTPUT_MODE="text", BATCH_CHUNK_SIZE=settings["BATCH_CHUNK_SIZE"]
    )
    env["LLM_CONCURRENCY"] = settings["LLM_CONCURRENCY"]
    fake_llm.reply = lambda messages, index: "Sarcastic"
    fake_llm.delay = 30.0  # one busy worker: its calls wait while the rest of the job waits
    api, base = start_api(env, tmp_path / "api.log", "--workers", "1")
    # The manifests' worker command, as one busy pod runs it.
    worker = BackendProcess(
        [*worker_container["command"][1:], "-n", f"keda-{uuid.uuid4().hex[:6]}@%h"], env, tmp_path / "w.log"
    )
    worker.start()
    client = httpx.Client(base_url=base, timeout=60)
    window = 2 * int(settings["LLM_CONCURRENCY"])
    try:
        worker.wait_for_log(" ready.")
        idle = evaluate(trigger["query"], client.get("/metrics").text)

        config = labeling_config("sarcasm")
        prepare_project_over_http(base, 81, fake_label_studio.url, LS_TOKEN, config)
        tasks = [{"id": i, "data": {"text": f"t{i}"}} for i in range(1, 6001)]
        fake_label_studio.hold_tasks(81, tasks)
        job = client.post("/predict", json={"tasks": tasks, "project": "81.1", "label_config": config}).json()["job"]
        deadline = time.monotonic() + 120
        in_flight = 'sum(llm_backend_in_flight_tasks{queue="batch"})'
        while True:  # the worker's windows full and their report in
            metrics = client.get("/metrics").text
            busy = evaluate(trigger["query"], metrics)
            if evaluate(in_flight, metrics) == window:
                break
            assert time.monotonic() < deadline, (busy, worker.log[-3000:])
            time.sleep(0.5)
        client.post(f"/jobs/{job}/cancel", params={"project": "81"})
    finally:
        fake_llm.delay = 0.0
        client.close()
        worker.kill()
        api.stop()

    assert idle == 0
    assert desired_replicas(scaled, trigger, idle) == scaled["minReplicaCount"] == 1
    assert busy == 6000, "every task of the job is still to predict: in flight or waiting"
    assert desired_replicas(scaled, trigger, busy) == scaled["maxReplicaCount"] > 1
