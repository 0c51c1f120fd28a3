"""Fixtures for the end-to-end suite: a real Label Studio, our API and worker processes, the fake LLM, a browser."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from label_studio_sdk import LabelStudio
from playwright.sync_api import Browser, Page, Request, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.conftest import real_redis_url
from tests.e2e.label_studio_server import TOKEN, LabelStudioServer, ensure_installed, fresh_data_dir
from tests.integration.processes import BackendProcess, free_port, llm_backend_env

BASIC_AUTH = ("ls-backend", "backend-pass-9")
CHROMIUM = Path("/usr/bin/chromium")  # Debian's, installed by `make tools`: Playwright never downloads a browser
# No sandbox or GPU here, and no network beyond loopback: background networking would only flood refused
# connections.  Playwright's launch() gives each browser a fresh temporary user-data dir.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BROWSER_EVIDENCE = pytest.StashKey[Callable[[], str]]()


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def label_studio(e2e_dir):
    python = ensure_installed()
    port = free_port()
    data_dir = fresh_data_dir(python, e2e_dir / "label-studio-data", free_port(), e2e_dir / "migrate.log")
    server = LabelStudioServer(python, data_dir, port, e2e_dir / "label-studio.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ls(label_studio) -> LabelStudio:
    return LabelStudio(base_url=label_studio.url, api_key=TOKEN)


@pytest.fixture(scope="session")
def backend(label_studio, llm_server, e2e_dir):
    """Our API behind basic auth, as an operator should run it (Label Studio connects with the credentials), and
    a worker, both on one Redis prefix of their own."""
    prefix = f"llm-backend-e2e-{uuid.uuid4().hex[:8]}"
    env = llm_backend_env(
        llm_server.url,
        prefix,
        BATCH_CHUNK_SIZE="50",
        LLM_CONCURRENCY="8",
        CACHE_TTL="0",
        AUTO_PREDICT_ON_IMPORT="1",
        OUTPUT_MODE="text",  # the fake model answers in prose, as the reference's did; test_structured.py asks for auto
    )
    port = free_port()
    processes = [
        BackendProcess(
            ["api", "--host", "127.0.0.1", "--port", str(port)],
            env | {"BASIC_AUTH_USER": BASIC_AUTH[0], "BASIC_AUTH_PASS": BASIC_AUTH[1]},
            e2e_dir / "api.log",
        ),
        BackendProcess(
            ["worker", "--concurrency", "2", "-n", f"e2e-{uuid.uuid4().hex[:6]}@%h"], env, e2e_dir / "worker.log"
        ),
    ]
    try:
        for process in processes:
            process.start()
        processes[0].wait_for_log("Booting worker")
        processes[1].wait_for_log(" ready.")
        yield {"url": f"http://127.0.0.1:{port}", "auth": BASIC_AUTH, "worker": processes[1], "env": env}
    finally:
        for process in processes:
            process.stop()
        client = redis.Redis.from_url(real_redis_url())
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)


def connect(ls: LabelStudio, project, backend: dict, **options):
    """Connect ``backend`` to ``project`` as an operator does in the UI: basic auth in the model settings, and the
    same credentials as a header of the webhook to ``/webhook`` that Label Studio creates without them."""
    user, password = backend["auth"]
    created = ls.ml.create(
        url=backend["url"],
        project=project.id,
        is_interactive=True,
        title="llm-backend",
        auth_method="BASIC_AUTH",
        basic_auth_user=user,
        basic_auth_pass=password,
        **options,
    )
    credentials = base64.b64encode(f"{user}:{password}".encode("latin-1")).decode()
    [webhook] = [hook for hook in ls.webhooks.list(project=str(project.id)) if hook.url == f"{backend['url']}/webhook"]
    ls.webhooks.update(id=webhook.id, url=webhook.url, headers={"Authorization": f"Basic {credentials}"})
    return ls.ml.get(id=created.id)


def change_connection(ls: LabelStudio, project, connection_id: int, backend: dict, **options):
    """Change a connection's settings as the UI's form does: with the project, URL and credentials again (Label
    Studio checks them with ``/health`` and ``/setup``), after which Label Studio calls ``/setup`` again; gives the
    connection as it is then."""
    user, password = backend["auth"]
    ls.ml.update(
        id=connection_id,
        project=project.id,
        url=backend["url"],
        auth_method="BASIC_AUTH",
        basic_auth_user=user,
        basic_auth_pass=password,
        **options,
    )
    return ls.ml.get(id=connection_id)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make tools` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    """A page in a browser context of its own; if the test fails, what it showed is kept (see below)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    log: list[str] = []
    page.on("console", lambda message: log.append(f"console {message.type}: {message.text}"))
    page.on("pageerror", lambda error: log.append(f"page error: {error}"))
    page.on("requestfinished", lambda done: log.append(f"{described(done)} -> {status_of(done)}"))
    page.on("requestfailed", lambda failed: log.append(f"{described(failed)} failed: {failed.failure}"))
    request.node.stash[BROWSER_EVIDENCE] = lambda: keep_evidence(page, log, tmp_path / "browser")
    yield page
    context.close()


def described(request: Request) -> str:
    return f"{request.method} {request.url} {(request.post_data or '')[:1000]}".rstrip()


def status_of(request: Request) -> int | str:
    """A finished request's status; Label Studio's polling may still finish while the test closes the page."""
    try:
        return request.response().status
    except PlaywrightError:
        return "(page closed)"


def keep_evidence(page: Page, log: list[str], directory: Path) -> str:
    """The page's screenshot and HTML, and its console and requests, written to ``directory``; says where."""
    directory.mkdir(parents=True, exist_ok=True)
    screenshot, html, events = directory / "page.png", directory / "page.html", directory / "events.log"
    events.write_text("\n".join(log))
    try:
        page.screenshot(path=screenshot, full_page=True)
        html.write_text(page.content())
    except PlaywrightError as exc:
        return f"no screenshot ({exc}); console and requests: {events}"
    return f"at {page.url}: {screenshot}, {html}, {events}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed browser test keeps what the browser showed, while the page is still open, and names the files."""
    report = yield
    keep = item.stash.get(BROWSER_EVIDENCE, None)
    if keep and report.failed and call.when == "call":
        report.sections.append(("browser evidence", keep()))
    return report
