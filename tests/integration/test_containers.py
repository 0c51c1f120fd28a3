"""The container files: linted, validated, and running only commands the tests exercise."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli.docs import env_example, markdown
from cli.main import _parser
from shared.domain.callers import unprotected_listening
from shared.domain.config import Settings, setting_default

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = str(Path(sys.executable).with_name("hadolint"))
DOCKERFILES = ["Dockerfile.api", "Dockerfile.worker"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfiles_pass_hadolint_without_warnings(dockerfile):
    result = subprocess.run([HADOLINT, dockerfile], cwd=ROOT, capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfiles_run_as_non_root_with_dependencies_before_code(dockerfile):
    lines = [line.strip() for line in (ROOT / dockerfile).read_text().splitlines()]
    assert lines[[i for i, line in enumerate(lines) if line.startswith("FROM")][0]].endswith("-slim-bookworm")
    first_code_copy = next(i for i, line in enumerate(lines) if line.startswith("COPY shared"))
    dependency_install = next(i for i, line in enumerate(lines) if "pip install -r" in line)
    assert dependency_install < first_code_copy
    assert any(re.fullmatch(r"USER \d+", line) for line in lines)
    text = (ROOT / dockerfile).read_text()
    assert not re.search(r"(API_KEY|PASS|TOKEN)\s*=", text), "no secrets baked into images"


def test_compose_file_is_valid_for_docker_compose(tmp_path):
    """Validated as a user runs it: beside a .env copied from .env.example."""
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "Debian's docker-compose is needed (make test installs it)"
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    env = {key: value for key, value in os.environ.items() if key.upper() not in _variables()}

    def config(**extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([docker_compose, "config"], cwd=tmp_path, env=env | extra, capture_output=True, text=True)

    api_auth = {"BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": "api-secret"}
    valid = config(FLOWER_BASIC_AUTH="admin:secret", **api_auth)
    assert valid.returncode == 0, valid.stderr
    rendered = yaml.safe_load(valid.stdout)["services"]
    assert rendered["worker"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert rendered["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "admin:secret"
    missing = config(**api_auth)
    assert missing.returncode != 0 and "set FLOWER_BASIC_AUTH=user:password" in missing.stderr


def test_compose_starts_the_api_only_with_basic_auth(tmp_path):
    """The API container listens on every address, so compose requires BASIC_AUTH_USER/BASIC_AUTH_PASS (from .env)
    and hands them to it; with them the API's own start-up rule lets it listen, and its healthcheck uses them."""
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "Debian's docker-compose is needed (make test installs it)"
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    env_file = (ROOT / ".env.example").read_text()
    env = {key: value for key, value in os.environ.items() if key.upper() not in _variables()}

    def config(**values: str) -> subprocess.CompletedProcess:
        lines = [f"{name}={values[name]}" if name in values else line for name, line in _env_lines(env_file)]
        (tmp_path / ".env").write_text("\n".join(lines) + "\n")
        return subprocess.run([docker_compose, "config"], cwd=tmp_path, env=env, capture_output=True, text=True)

    for given, said in (
        ({}, "set BASIC_AUTH_USER and BASIC_AUTH_PASS in .env"),
        ({"BASIC_AUTH_PASS": "api-secret"}, "set BASIC_AUTH_USER and BASIC_AUTH_PASS in .env"),
        ({"BASIC_AUTH_USER": "ls"}, "set BASIC_AUTH_PASS in .env"),
    ):
        refused = config(FLOWER_BASIC_AUTH="admin:secret", **given)
        assert refused.returncode != 0 and said in refused.stderr, (given, refused.stderr)
    valid = config(FLOWER_BASIC_AUTH="admin:secret", BASIC_AUTH_USER="ls", BASIC_AUTH_PASS="api-secret")
    assert valid.returncode == 0, valid.stderr
    api = yaml.safe_load(valid.stdout)["services"]["api"]
    environment = api["environment"]
    assert (environment["BASIC_AUTH_USER"], environment["BASIC_AUTH_PASS"]) == ("ls", "api-secret")
    assert environment["ALLOWED_HOSTS"] == "api,host.docker.internal", "Label Studio may call it by these names"
    args, _ = _parser().parse_known_args(api["command"][1:])
    assert args.host == "0.0.0.0"
    assert unprotected_listening(args.host, has_basic_auth=True, allow_unauthenticated=False) is None
    assert unprotected_listening(args.host, has_basic_auth=False, allow_unauthenticated=False) is not None
    mine = config(
        FLOWER_BASIC_AUTH="admin:secret", BASIC_AUTH_USER="ls", BASIC_AUTH_PASS="pw-1234", ALLOWED_HOSTS="llm.example"
    )
    assert yaml.safe_load(mine.stdout)["services"]["api"]["environment"]["ALLOWED_HOSTS"] == "llm.example"


def _env_lines(text: str) -> list[tuple[str, str]]:
    """``.env.example`` line by line, each with the setting it assigns ("" for comments and blanks)."""
    return [
        (line.split("=", 1)[0] if "=" in line and not line.startswith("#") else "", line) for line in text.splitlines()
    ]


def test_compose_services_commands_and_healthchecks(compose):
    services = compose["services"]
    assert set(services) == {"redis", "api", "worker", "flower"}
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert redis["volumes"] == ["redis-data:/data"] and "redis-data" in compose["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["api"]["command"][:2] == ["llm-backend", "api"]
    assert services["api"]["ports"] == ["9090:9090"]
    assert services["api"]["healthcheck"]["test"] == ["CMD", "llm-backend", "health"]
    api_grace = setting_default("api_graceful_timeout")
    assert int(services["api"]["stop_grace_period"].rstrip("s")) >= api_grace + 5, "gunicorn's grace fits in compose's"
    assert services["worker"]["command"][:2] == ["llm-backend", "worker"]
    assert "container_name" not in services["worker"] and "ports" not in services["worker"], "scalable"
    assert services["flower"]["command"][:2] == ["llm-backend", "flower"]
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    for name in ("api", "worker", "flower"):
        service = services[name]
        assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert service["restart"] == "unless-stopped"
        assert "host.docker.internal:host-gateway" in service["extra_hosts"]


def _commands() -> list[list[str]]:
    """Every command line the containers run: compose commands and healthchecks, Dockerfile CMDs."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    found = []
    for service in compose["services"].values():
        if service.get("command", [""])[0] == "llm-backend":
            found.append(service["command"])
        test = service.get("healthcheck", {}).get("test", [])
        if test[:2] == ["CMD", "llm-backend"]:
            found.append(test[1:])
    for dockerfile in DOCKERFILES:
        for match in re.finditer(r"^(?:CMD|HEALTHCHECK .*CMD) (\[.*\])$", (ROOT / dockerfile).read_text(), re.M):
            found.append(yaml.safe_load(match.group(1)))
    return found


@pytest.mark.parametrize("argv", _commands(), ids=shlex.join)
def test_every_container_command_is_a_real_llm_backend_subcommand(argv):
    assert argv[0] == "llm-backend"
    args, passed_on = _parser().parse_known_args(argv[1:])
    if passed_on:
        assert getattr(args, "passes_options", False), f"{argv}: unknown options {passed_on}"
        celery_help = subprocess.run(
            [sys.executable, "-m", "celery", "worker", "--help"], capture_output=True, text=True
        ).stdout
        for option in (item for item in passed_on if item.startswith("--")):
            assert option in celery_help, f"{option} is not a celery worker option"


def _variables() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


@pytest.mark.parametrize(("path", "render"), [("docs/settings.md", markdown), (".env.example", env_example)])
def test_settings_docs_are_generated_from_the_code(path, render):
    assert (ROOT / path).read_text() == render(), f"{path} drifted from Settings: run `make docs`"


def test_every_setting_is_documented_and_reaches_the_containers(compose):
    documented = (ROOT / "docs" / "settings.md").read_text()
    assert [name for name in sorted(_variables()) if f"`{name}`" not in documented] == []
    assert all(field.description for field in Settings.model_fields.values())
    for name in ("api", "worker", "flower"):
        assert compose["services"][name]["env_file"] == ".env", f"{name} reads every setting from .env"
