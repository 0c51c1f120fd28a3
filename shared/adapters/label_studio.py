"""Label Studio, behind one gateway object on the SDK's public API.

Which instance and key serve a project is decided elsewhere (``shared.projects``): ``LABEL_STUDIO_URL``
and ``LABEL_STUDIO_API_KEY`` when set, else what Label Studio sent to ``/setup``.  Every connection goes
through ``shared.adapters.netguard``'s transport (no private addresses that the operator did not configure,
the request's deadline), and every error text is redacted of the secrets this process holds.  A
``LabelStudioGateway`` then does everything the backend asks of that instance: push predictions,
check what it holds, read projects and tasks, download the files it serves.  Gateways are made by a
``LabelStudioGateways`` factory (one per URL and key, since the SDK's client refreshes personal
access tokens itself), which tests replace to point the backend at a stand-in.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from shared.adapters.netguard import AddressPolicy, guarded_transport
from shared.domain.backoff import retryable_status
from shared.domain.config import setting_default
from shared.domain.errors import LabelStudioError, PushOutcomeUnknown, TaskError
from shared.domain.evaluation.ground_truth import ground_truth_result
from shared.redaction import redact

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio, RoleBasedTask

ACCESS_TOKEN_MARGIN = 30.0  # refresh a personal access token's short-lived access token this long before it expires
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class TaskPage:
    """One page of a project's task list, and how many tasks the project held when it was read."""

    tasks: list[dict[str, Any]]
    total: int


@dataclass(frozen=True)
class LabelStudioAccess:
    url: str
    api_key: str

    def __repr__(self) -> str:  # keeps the key out of logs and tracebacks
        return f"LabelStudioAccess(url={self.url!r}, api_key=***)"

    def absolute(self, path_or_url: str) -> str:
        return urljoin(self.url.rstrip("/") + "/", path_or_url)

    def owns(self, url: str) -> bool:
        """Whether ``url`` points into this Label Studio (so it may carry our key)."""
        mine, theirs = urlsplit(self.url), urlsplit(url)
        return (mine.scheme, mine.netloc) == (theirs.scheme, theirs.netloc)


def _refused(status: int, body: str, about: str = "") -> LabelStudioError:
    """An error answer of Label Studio's (through the SDK or our own calls): retryable by its status, its body
    redacted and cut short; ``about`` says what was asked when the status alone would not."""
    message = f"Label Studio answered {status}{about}: {redact(body)[:500]}"
    return LabelStudioError(message, retryable=retryable_status(status))


def _unreachable(exc: httpx.HTTPError) -> LabelStudioError:
    return LabelStudioError(f"cannot reach Label Studio: {type(exc).__name__}: {redact(str(exc))}", retryable=True)


@contextmanager
def _translated_errors() -> Iterator[None]:
    """The SDK raises its own ApiError for HTTP statuses and httpx's errors for transport failures."""
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except ApiError as exc:
        raise _refused(exc.status_code or 0, str(exc.body)) from None
    except httpx.HTTPError as exc:
        raise _unreachable(exc) from None


def _id_pages(task_ids: list[int], url_bytes: int) -> Iterator[list[int]]:
    """Task ids in pages whose URL-encoded JSON stays under ``url_bytes`` (``LABEL_STUDIO_URL_BYTES``)."""
    page: list[int] = []
    size = 0
    for task_id in task_ids:
        cost = len(str(int(task_id))) + 3  # the digits and an encoded comma
        if page and size + cost > url_bytes:
            yield page
            page, size = [], 0
        page.append(int(task_id))
        size += cost
    if page:
        yield page


def _is_personal_access_token(key: str) -> bool:
    """Label Studio's personal access tokens are JWT refresh tokens; legacy tokens are 40 hex characters."""
    import jwt

    try:
        return jwt.decode(key, options={"verify_signature": False}).get("token_type") == "refresh"
    except jwt.InvalidTokenError:
        return False


class LabelStudioGateway:
    """Everything the backend asks of one Label Studio instance, reached with one key."""

    def __init__(
        self,
        access: LabelStudioAccess,
        client: LabelStudio | None = None,
        policy: AddressPolicy | None = None,
        timeout: float = setting_default("label_studio_timeout"),
        url_bytes: int = setting_default("label_studio_url_bytes"),
    ) -> None:
        """``timeout``: seconds a call other than a push may wait (``LABEL_STUDIO_TIMEOUT``); ``url_bytes``: the
        longest URL a read narrowed to task ids may have (``LABEL_STUDIO_URL_BYTES``)."""
        self.access = access
        self.timeout, self.url_bytes = timeout, url_bytes
        transport = guarded_transport(httpx, httpcore, policy)
        self._http = httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)
        if client is None:
            from label_studio_sdk import LabelStudio  # heavy: import only when first needed

            client = LabelStudio(  # type: ignore[no-untyped-call]  # the SDK's constructor is unannotated
                base_url=access.url, api_key=access.api_key, httpx_client=self._http
            )
        self.client = client
        self._personal_token = _is_personal_access_token(access.api_key)
        self._bearer: tuple[str, float] | None = None  # access token, expiry (monotonic)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LabelStudioGateway({self.access!r})"

    # --- predictions ---------------------------------------------------------------------------
    def push_predictions(self, project: int, predictions: list[dict[str, Any]], timeout: float | None = None) -> None:
        """Create predictions in bulk: one ``import/predictions`` call for many tasks, waiting ``timeout`` seconds
        for Label Studio's answer (default: the gateway's ``timeout``).

        Posted as plain JSON on the gateway's HTTP client: the SDK's request models and encoder cost more CPU
        than the call itself at thousands of predictions per call.  A call that cannot have reached Label Studio
        (no connection) raises a retryable ``LabelStudioError``; one that may have been stored (a timeout, a
        connection lost after sending, a 5xx) raises ``PushOutcomeUnknown``; a 4xx a ``LabelStudioError``."""
        body = [
            {
                "task": prediction["task"],
                "result": prediction["result"],
                "score": prediction["score"],
                "model_version": prediction["model_version"],
            }
            for prediction in predictions
        ]
        url = self.access.absolute(f"/api/projects/{int(project)}/import/predictions")
        timeout = self.timeout if timeout is None else timeout
        try:
            response = self._http.post(
                url,
                json=body,
                headers=self._authorization(),
                timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _unreachable(exc) from None
        except httpx.HTTPError as exc:
            raise PushOutcomeUnknown(
                f"no answer from Label Studio: {type(exc).__name__}: {redact(str(exc))}", answered=False
            ) from None
        if response.status_code >= 300:
            status = response.status_code
            refused = _refused(status, response.text)
            if status >= 500:  # a proxy's 504 may come while Label Studio still works on the call
                raise PushOutcomeUnknown(str(refused), answered=status != 504)
            raise refused

    def predicted_among(self, project: int, task_ids: list[int], model_version: str) -> set[int]:
        """Which of these tasks hold a prediction of this version (a few reads per 5,000 tasks).

        The data manager's task list, narrowed to these tasks (``selectedItems``) and to those *without* a
        prediction of the version (its ``predictions_model_versions`` filter, ``not_contains``): the rest hold
        one.  Asked this way, the usual answer after a push that timed out — everything landed — is an empty
        list; only the ids of the tasks to send again come back.
        A page of ids per read: they travel in the URL, kept under 6 KB, which proxies pass.  Why this
        call and not another: docs/guarantees.md."""
        lacking_filter = {
            "conjunction": "and",
            "items": [
                {
                    "filter": "filter:tasks:predictions_model_versions",
                    "operator": "not_contains",
                    "type": "String",
                    "value": [model_version],
                }
            ],
        }
        lacking = {
            int(task["id"])
            for page in _id_pages(task_ids, self.url_bytes)
            for task in self._tasks_among(int(project), page, "id", lacking_filter)
        }
        return {int(task_id) for task_id in task_ids} - lacking

    def task_data(self, project: int, task_ids: list[int]) -> dict[int, dict[str, Any]]:
        """The data Label Studio holds for these tasks of ``project`` (a task it does not hold there is left out).

        What a job predicts and pushes comes from here, never from whoever sent the tasks to ``/predict``: a
        page of ids per read, with the data as stored (storage URLs unresolved, as ``/predict`` carries them)."""
        found: dict[int, dict[str, Any]] = {}
        for page in _id_pages(task_ids, self.url_bytes):
            for task in self._tasks_among(int(project), page, "id,data"):
                if isinstance(task.get("data"), dict):
                    found[int(task["id"])] = task["data"]
        return found

    def _tasks_among(
        self, project: int, page: list[int], include: str, filters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The Data Manager's task list narrowed to these task ids (``selectedItems``) and ``filters``, with only
        the fields ``include`` names (its other columns cost Label Studio as much again)."""
        query: dict[str, Any] = {"selectedItems": {"all": False, "included": page}}
        if filters:
            query["filters"] = filters
        params: dict[str, str | int] = {
            "project": project,
            "page_size": len(page),
            "resolve_uri": "false",
            "include": include,
            "query": json.dumps(query, separators=(",", ":")),
        }
        listed, _ = self._task_list(project, params)
        if not {int(task["id"]) for task in listed} <= set(page):  # the query was not understood: better none
            raise LabelStudioError("Label Studio listed tasks that were not asked for", retryable=True)
        return listed

    def task_pages(self, project: int, page_size: int = 500) -> Iterator[TaskPage]:
        """A project's tasks a page at a time (``id``, ``data`` as stored, ``is_labeled``, ``total_annotations``),
        each with the project's task count as Label Studio gives it then (``total``): a caller can act on the first
        page while the others are still to be read.  Only those columns: the Data Manager's others (annotators,
        results, comments…) cost Label Studio several times as much (bench/README.md)."""
        seen, number = 0, 1
        while True:
            params: dict[str, str | int] = {
                "project": project,
                "page": number,
                "page_size": page_size,
                "resolve_uri": "false",
                "include": "id,data,is_labeled,total_annotations",
            }
            listed, total = self._task_list(project, params)
            seen += len(listed)
            yield TaskPage(listed, total)
            if len(listed) < page_size or seen >= total:
                return
            number += 1

    def _task_list(self, project: int, params: dict[str, str | int]) -> tuple[list[dict[str, Any]], int]:
        """One page of ``/api/tasks/``: its tasks and the total it counts."""
        try:
            response = self._http.get(self.access.absolute("/api/tasks/"), params=params, headers=self._authorization())
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from None
        if response.status_code >= 300:
            raise _refused(response.status_code, response.text, f" for tasks of project {project}")
        try:
            answer = response.json()
            listed = [task for task in answer["tasks"] if isinstance(task, dict)]
            for task in listed:
                int(task["id"])
            return listed, int(answer.get("total", len(listed)))
        except (ValueError, KeyError, TypeError) as exc:
            raise LabelStudioError(
                f"Label Studio's list of tasks of project {project} is not what it answers: {type(exc).__name__}",
                retryable=False,
            ) from None

    # --- projects and tasks --------------------------------------------------------------------
    def label_config(self, project: int) -> str | None:
        with _translated_errors():
            return self.client.projects.get(id=project).label_config

    def tasks(self, project: int, page_size: int = 500, with_results: bool = False) -> Iterator[dict[str, Any]]:
        """Every task of a project as a plain dict, page by page; ``with_results`` adds each task's
        ``annotations`` and ``predictions`` (Label Studio's ``fields=all``), with storage URLs left unresolved."""
        options: dict[str, Any] = {"fields": "all", "resolve_uri": False} if with_results else {}
        with _translated_errors():
            # the SDK's TasksClientExt.list leaves its item type unbound: items are TasksClient.list's RoleBasedTask
            tasks: Iterable[RoleBasedTask] = self.client.tasks.list(project=project, page_size=page_size, **options)
            for task in tasks:
                yield task.dict()

    def annotated_tasks(
        self, project: int, page_size: int = 500
    ) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]] | None]]:
        """Every task of a project (``tasks`` with its results) beside its ground-truth regions, None for a task
        without one: the rule of ``shared.domain.evaluation.ground_truth``, which ``eval`` scores against and few-shot
        examples are taken by."""
        for task in self.tasks(project, page_size=page_size, with_results=True):
            yield task, ground_truth_result(task.get("annotations") or [])

    def title(self, project: int) -> str:
        with _translated_errors():
            return self.client.projects.get(id=project).title or ""

    # --- files ---------------------------------------------------------------------------------
    def download(self, path_or_url: str, max_bytes: int, timeout: float = 30.0) -> tuple[bytes, str]:
        """Fetch a file that Label Studio serves (uploads, local files), refusing anything over ``max_bytes``."""
        url = self.access.absolute(path_or_url)
        try:
            headers = self._authorization()
            with self._http.stream("GET", url, headers=headers, timeout=timeout) as response:
                if response.status_code != 200:
                    raise TaskError(f"Label Studio answered {response.status_code} for {path_or_url}")
                declared = int(response.headers.get("content-length") or 0)
                if declared > max_bytes:
                    raise TaskError(f"image {path_or_url} is {declared} bytes, over the limit of {max_bytes} bytes")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise TaskError(f"image {path_or_url} is over the limit of {max_bytes} bytes")
                return bytes(body), response.headers.get("content-type", "application/octet-stream")
        except (httpx.HTTPError, LabelStudioError) as exc:
            raise TaskError(
                f"could not fetch {path_or_url} from Label Studio: {type(exc).__name__}: {redact(str(exc))}"
            ) from None

    def _authorization(self) -> dict[str, str]:
        """The header Label Studio expects: ``Token`` for a legacy key, ``Bearer`` for a personal access token."""
        if not self._personal_token:
            return {"Authorization": f"Token {self.access.api_key}"}
        with self._lock:
            if self._bearer is None or time.monotonic() > self._bearer[1]:
                import jwt

                with _translated_errors():
                    token = self.client.tokens.refresh(refresh=self.access.api_key).access
                claims = jwt.decode(token, options={"verify_signature": False})
                lifetime = float(claims.get("exp", time.time() + 60)) - time.time()
                self._bearer = (token, time.monotonic() + max(0.0, lifetime - ACCESS_TOKEN_MARGIN))
            return {"Authorization": f"Bearer {self._bearer[0]}"}


class LabelStudioGateways:
    """Makes (and keeps) one gateway per URL and key; tests pass another ``make`` to swap the network layer."""

    def __init__(
        self,
        make: Callable[[LabelStudioAccess], LabelStudioGateway] | None = None,
        policy: AddressPolicy | None = None,
        timeout: float = setting_default("label_studio_timeout"),
        url_bytes: int = setting_default("label_studio_url_bytes"),
    ) -> None:
        self._make = make or (
            lambda access: LabelStudioGateway(access, policy=policy, timeout=timeout, url_bytes=url_bytes)
        )
        self._gateways: dict[LabelStudioAccess, LabelStudioGateway] = {}
        self._lock = threading.Lock()

    def __call__(self, access: LabelStudioAccess) -> LabelStudioGateway:
        with self._lock:
            gateway = self._gateways.get(access)
            if gateway is None:
                gateway = self._gateways[access] = self._make(access)
            return gateway
