"""A recording Label Studio stand-in over real HTTP.

It serves uploaded files, takes predictions the way Label Studio 1.23 does (bulk
``POST /api/projects/<id>/import/predictions``, single ``POST /api/predictions/``), lists them
(``GET /api/predictions/?task=`` or ``?project=``), and can be told to be down (503) or to refuse some
tasks (400), as a task deleted while a job runs would be.  Projects added with ``add_project`` are served
too (``GET /api/projects/<id>/``, and ``GET /api/tasks/?project=`` in pages, with their annotations and
predictions under ``fields=all``; narrowed by the data manager's ``query`` to the ``selectedItems`` it holds in
the project (``hold_tasks``: what a job reads its tasks' data from) and to tasks whose
``predictions_model_versions`` contain, or lack, a version, as ``predicted_among`` reads them back).

Fault modes for a push whose outcome the client cannot know (``import_fault``, applied to the next
``faults_left`` import calls): each stores the predictions first (or their first ``stored_share``), then
``"late"`` answers only after ``late_seconds`` (past the client's read timeout), ``"error"`` answers 500,
``"drop"`` closes the connection without an answer, and ``"hold"`` keeps the call open until ``release`` is set
(``import_held`` is set meanwhile, ``import_clients`` names the caller's port).

Reading a project's task list page by page can be made slow (``page_seconds`` a page) or gated: pages past
``pages_before_import`` are answered only once an import has stored predictions (or after ``gate_seconds``);
``page_log`` records each page answered with the predictions stored by then.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import BackgroundServer


class FakeLabelStudio(BackgroundServer):
    def __init__(self, token: str, host: str = "127.0.0.1") -> None:
        self.token = token
        self.files: dict[str, tuple[bytes, str]] = {}
        self.seen_authorization: list[str | None] = []
        self.predictions: list[dict] = []
        self.import_calls = 0
        self.available = True
        self.taking_imports = True  # False: only import/predictions answers 503 (reads still work)
        self.refused_tasks: set[int] = set()
        self.projects: dict[int, dict] = {}
        self.tasks: dict[int, list[dict]] = {}  # per project: {"id", "data", "annotations"}
        self.task_reads = 0  # task lists narrowed to ids without a filter: a job reading its tasks' data
        self.import_fault: str | None = None  # "late", "error", "drop" or "hold": see the module's docstring
        self.faults_left = 1
        self.late_seconds = 3.0
        self.stored_share = 1.0  # of a faulty call's predictions, the share stored before the fault
        self.release = threading.Event()
        self.import_held = threading.Event()
        self.import_clients: list[int] = []
        self.read_backs = 0  # task lists narrowed by a query: the backend reading a push back
        self.longest_read_back = 0  # bytes of the longest such request's path and query
        self.page_seconds = 0.0
        self.pages_before_import: int | None = None
        self.gate_seconds = 120.0
        self.imported = threading.Event()  # set once an import stored predictions
        self.page_log: list[tuple[int, int]] = []  # (page, predictions stored when it was answered)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # the head and the body go out in two writes: no 40 ms wait for an ACK

            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, payload: object, content_type: str = "application/json") -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _admitted(self) -> bool:
                fake.seen_authorization.append(self.headers.get("Authorization"))
                if not fake.available:
                    self._reply(503, {"detail": "down for maintenance"})
                    return False
                if self.headers.get("Authorization") != f"Token {fake.token}":
                    self._reply(401, {"detail": "Authentication credentials were not provided."})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._admitted():
                    return
                url = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(url.query).items()}
                if url.path == "/api/predictions/":
                    if "task" in query:
                        tasks = {int(query["task"])}
                    else:
                        tasks = {task["id"] for task in fake.tasks.get(int(query["project"]), [])}
                    with fake._lock:
                        found = [p for p in fake.predictions if p["task"] in tasks]
                    self._reply(200, found)
                elif url.path.startswith("/api/projects/") and url.path.rstrip("/").split("/")[-1].isdigit():
                    project = fake.projects.get(int(url.path.rstrip("/").split("/")[-1]))
                    if project:
                        self._reply(200, project)
                    else:
                        self._reply(404, {"detail": "Not found."})
                elif url.path == "/api/tasks/":
                    if "query" in query:
                        fake.longest_read_back = max(fake.longest_read_back, len(self.path))
                    else:
                        fake._pace_page(int(query.get("page", 1)))
                    self._reply(200, fake._task_page(query))
                elif self.path in fake.files:
                    body, content_type = fake.files[self.path]
                    self._reply(200, body, content_type)
                else:
                    self._reply(404, {"detail": "Not found."})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                if not self._admitted():
                    return
                path = urlsplit(self.path).path
                if path.startswith("/api/projects/") and path.endswith("/import/predictions"):
                    if not fake.taking_imports:
                        self._reply(503, {"detail": "imports paused"})
                        return
                    project = int(path.split("/")[3])
                    refused = [item["task"] for item in body if item["task"] in fake.refused_tasks]
                    if refused:
                        self._reply(400, {"detail": f"task ID {refused[0]} not found in project {project}"})
                        return
                    with fake._lock:
                        fake.import_calls += 1
                        fake.import_clients.append(self.client_address[1])
                        fault = fake.import_fault if fake.faults_left > 0 else None
                        fake.faults_left -= 1 if fault else 0
                        for item in body[: round(len(body) * fake.stored_share)] if fault else body:
                            fake._store(project, item)
                    fake.imported.set()
                    if fault == "late":
                        time.sleep(fake.late_seconds)
                    elif fault == "error":
                        self._reply(500, {"detail": "database is locked"})
                        return
                    elif fault == "drop":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    elif fault == "hold":
                        fake.import_held.set()
                        fake.release.wait()
                    self._reply(201, {"created": len(body)})
                elif path == "/api/predictions/":
                    if body["task"] in fake.refused_tasks:
                        self._reply(400, {"task": [f"Invalid pk {body['task']} - object does not exist."]})
                        return
                    with fake._lock:
                        stored = fake._store(None, body)
                    self._reply(201, stored)
                else:
                    self._reply(404, {"detail": "Not found."})

        super().__init__(Handler, host=host)

    def _store(self, project: int | None, item: dict) -> dict:
        stored = {
            "id": len(self.predictions) + 1,
            "task": item["task"],
            "project": project,
            "result": item.get("result"),
            "score": item.get("score"),
            "model_version": item.get("model_version"),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.predictions.append(stored)
        return stored

    def _pace_page(self, page: int) -> None:
        time.sleep(self.page_seconds)
        if self.pages_before_import is not None and page > self.pages_before_import:
            self.imported.wait(self.gate_seconds)
        with self._lock:
            self.page_log.append((page, len(self.predictions)))

    def add_project(self, project: int, label_config: str, tasks: list[dict], title: str = "") -> None:
        """A project to serve: ``tasks`` are ``{"id", "data", "annotations"?}`` (ids unique across projects)."""
        self.projects[project] = {"id": project, "title": title or f"project {project}", "label_config": label_config}
        self.tasks[project] = [{"annotations": [], **task} for task in tasks]

    def hold_tasks(self, project: int, tasks: list[dict]) -> None:
        """Tasks this Label Studio holds in ``project`` (``{"id", "data"}``; a known id gets the new data): what
        a job predicts from."""
        self.projects.setdefault(project, {"id": project, "title": f"project {project}", "label_config": ""})
        new = {task["id"]: {"annotations": [], "id": task["id"], "data": task["data"]} for task in tasks}
        kept = [task for task in self.tasks.get(project, []) if task["id"] not in new]
        self.tasks[project] = kept + list(new.values())

    def add_prediction(self, project: int, task: int, model_version: str, result: list[dict]) -> None:
        with self._lock:
            self._store(project, {"task": task, "result": result, "score": 0.5, "model_version": model_version})

    def _task_page(self, query: dict[str, str]) -> dict:
        tasks = self.tasks.get(int(query["project"]), [])
        if "query" in query:
            return self._narrowed(tasks, json.loads(query["query"]))
        size, page = int(query.get("page_size", 100)), int(query.get("page", 1))
        with_results = query.get("fields") == "all"
        by_task = self.predictions_by_task()
        listed = []
        for task in tasks[(page - 1) * size : page * size]:
            kept = [a for a in task["annotations"] if not a.get("was_cancelled")]
            item = {"id": task["id"], "data": task["data"], "is_labeled": bool(kept), "total_annotations": len(kept)}
            if with_results:
                item |= {"annotations": task["annotations"], "predictions": by_task.get(task["id"], [])}
            listed.append(item)
        return {"tasks": listed, "total": len(tasks), "total_annotations": 0, "total_predictions": 0}

    def _narrowed(self, tasks: list[dict], query: dict) -> dict:
        """The data manager's answer to a ``query``: the selected tasks the project holds, filtered on
        ``predictions_model_versions`` ("contains" / "not_contains" any of the values, as substrings, as Label
        Studio does)."""
        included = query["selectedItems"]["included"]
        known = {task["id"]: task for task in tasks}
        by_task = self.predictions_by_task()
        filters = [
            item
            for item in query.get("filters", {}).get("items", [])
            if item["filter"] == "filter:tasks:predictions_model_versions"
        ]
        if filters:
            self.read_backs += 1
        else:
            self.task_reads += 1
        listed = []
        for task_id in included:
            if task_id not in known:
                continue
            versions = [prediction["model_version"] for prediction in by_task.get(task_id, [])]
            keep = True
            for item in filters:
                holds = any(value in version for value in item["value"] for version in versions)
                keep = keep and (holds if item["operator"] == "contains" else not holds)
            if keep:
                listed.append(
                    {"id": task_id, "data": known[task_id]["data"], "predictions_model_versions": ",".join(versions)}
                )
        return {"tasks": listed, "total": len(listed), "total_annotations": 0, "total_predictions": 0}

    def predictions_by_task(self) -> dict[int, list[dict]]:
        with self._lock:
            grouped: dict[int, list[dict]] = {}
            for prediction in self.predictions:
                grouped.setdefault(prediction["task"], []).append(prediction)
            return grouped
