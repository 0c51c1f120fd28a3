"""What reading a push back costs a real Label Studio 1.23.2, against the other ways to ask the same.

After a push whose outcome is unknown the pusher asks which of its tasks hold a prediction of the version
(``LabelStudioGateway.predicted_among``).  This starts a Label Studio of its own (tests/e2e's helpers: its
venv under ~/.cache/llm-backend, SQLite, with the memory-efficient import flag so the set-up is quick), imports
``--tasks`` tasks, gives half of them a prediction, and times for 5,000 tasks that all hold one and 5,000 that
hold none: ``predicted_among``, the same narrowed the other way round (``contains``), the task list with every
task's predictions (``fields=all``), the project's whole prediction list, and one read per task (sampled).

    .venv/bin/python -m bench.read_back [--tasks 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import httpx

from shared.adapters.label_studio import LabelStudioAccess, LabelStudioGateway, _id_pages
from shared.adapters.netguard import AddressPolicy
from shared.domain.config import Settings
from tests.e2e.label_studio_server import TOKEN, LabelStudioServer, ensure_installed, fresh_data_dir
from tests.integration.processes import free_port

FLAG = "fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short"
VERSION = "gpt-4o-0123456789"
CHECKED = 5000
PER_TASK_SAMPLE = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    tasks = parser.parse_args().tasks
    work = Path(tempfile.mkdtemp(prefix="llm-backend-read-back-"))
    python = ensure_installed()
    data_dir = fresh_data_dir(python, work / "data", free_port(), work / "migrate.log")
    os.environ[FLAG] = "true"  # the set-up's own imports: seconds instead of minutes
    server = LabelStudioServer(python, data_dir, free_port(), work / "label-studio.log").start()
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Token {TOKEN}"}, timeout=600)
    try:
        project, ids = set_up(http, tasks)
        gateway = LabelStudioGateway(
            LabelStudioAccess(server.url, TOKEN), policy=AddressPolicy(private_hosts=frozenset({"127.0.0.1"}))
        )
        landed, missing = ids[: tasks // 2][-CHECKED:], ids[-CHECKED:]
        print(
            f"| read, {CHECKED:,} tasks of a {tasks:,}-task project holding {tasks // 2:,} predictions "
            "| all hold one | none does |"
        )
        print("|---|---|---|")
        row(
            "predicted_among (not_contains: the tasks lacking it; used)",
            *(timed(lambda sel=sel: len(gateway.predicted_among(project, sel, VERSION))) for sel in (landed, missing)),
        )
        for label, params in (("narrowed: contains", {"operator": "contains"}), ("fields=all", {"all": True})):
            row(
                label,
                *(timed(lambda sel=sel, p=params: narrowed(http, project, sel, **p)) for sel in (landed, missing)),
            )
        whole = timed(lambda: len(http.get("/api/predictions/", params={"project": project}).content))
        row("GET /api/predictions/?project= (whole project)", whole, whole)
        started = time.monotonic()
        for task in landed[:PER_TASK_SAMPLE]:
            http.get("/api/predictions/", params={"task": task}).raise_for_status()
        each = (time.monotonic() - started) / PER_TASK_SAMPLE
        per_task = f"{each * 1000:.0f} ms a task: {each * CHECKED:.0f} s"
        print(f"| GET /api/predictions/?task= (one per task) | {per_task} | {per_task} |")
    finally:
        server.stop()


def set_up(http: httpx.Client, count: int) -> tuple[int, list[int]]:
    config = (Path(__file__).parent.parent / "tests" / "configs" / "sarcasm.xml").read_text()
    project = http.post("/api/projects/", json={"title": "read-back", "label_config": config}).json()["id"]
    for start in range(0, count, 10_000):
        batch = [{"text": f"text {i} " + "x" * 200} for i in range(start, min(count, start + 10_000))]
        http.post(f"/api/projects/{project}/import", json=batch).raise_for_status()
    ids = list(range(1, count + 1))  # a fresh Label Studio numbers its tasks from 1
    region = {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Sarcastic"]}}
    half = ids[: count // 2]
    for start in range(0, len(half), 2000):
        body = [
            {"task": task, "result": [region], "score": 0.5, "model_version": VERSION}
            for task in half[start : start + 2000]
        ]
        http.post(f"/api/projects/{project}/import/predictions", json=body).raise_for_status()
    return project, ids


def narrowed(http: httpx.Client, project: int, task_ids: list[int], operator: str = "", all: bool = False) -> int:
    """Bytes of the data manager's task list for these tasks, a page of ids per read, as predicted_among reads."""
    size = 0
    for page in _id_pages(task_ids, Settings().label_studio_url_bytes):
        query: dict = {"selectedItems": {"all": False, "included": page}}
        if operator:
            item = {
                "filter": "filter:tasks:predictions_model_versions",
                "operator": operator,
                "type": "String",
                "value": [VERSION],
            }
            query["filters"] = {"conjunction": "and", "items": [item]}
        params: dict = {"project": project, "page_size": len(page), "query": json.dumps(query, separators=(",", ":"))}
        if all:
            params["fields"] = "all"
        response = http.get("/api/tasks/", params=params)
        response.raise_for_status()
        size += len(response.content)
    return size


def timed(read) -> str:
    started = time.monotonic()
    result = read()
    seconds = time.monotonic() - started
    return f"{seconds:.2f} s" + (f", {result / 1e6:.1f} MB" if result > CHECKED else "")


def row(label: str, *cells: str) -> None:
    print(f"| {label} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
