"""Talking to Label Studio: which instance and key serve a project, and authenticated downloads.

The URL and key come from ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY`` when set, otherwise from
the ``hostname`` and ``access_token`` that Label Studio sent to ``/setup`` for that project.
Clients are cached per (URL, key) because the SDK's client refreshes personal access tokens itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httpx

from shared.domain.errors import TaskError

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio


@dataclass(frozen=True)
class LabelStudioAccess:
    url: str
    api_key: str
    configured: bool = False  # set by the operator (LABEL_STUDIO_URL), not taken from a /setup request

    def __repr__(self) -> str:  # keeps the key out of logs and tracebacks
        return f"LabelStudioAccess(url={self.url!r}, api_key=***)"

    def absolute(self, path_or_url: str) -> str:
        return urljoin(self.url.rstrip("/") + "/", path_or_url)

    def owns(self, url: str) -> bool:
        """Whether ``url`` points into this Label Studio (so it may carry our key)."""
        mine, theirs = urlsplit(self.url), urlsplit(url)
        return (mine.scheme, mine.netloc) == (theirs.scheme, theirs.netloc)


_clients: dict[LabelStudioAccess, LabelStudio] = {}
_clients_lock = threading.Lock()


def sdk_client(access: LabelStudioAccess) -> LabelStudio:
    with _clients_lock:
        client = _clients.get(access)
        if client is None:
            from label_studio_sdk import LabelStudio  # heavy: import only when first needed

            client = _clients[access] = LabelStudio(base_url=access.url, api_key=access.api_key)
        return client


def download(access: LabelStudioAccess, path_or_url: str, max_bytes: int, timeout: float = 30.0) -> tuple[bytes, str]:
    """Fetch a file that Label Studio serves (uploads, local files), refusing anything over ``max_bytes``."""
    url = access.absolute(path_or_url)
    headers = sdk_client(access)._client_wrapper.get_headers()  # the SDK's own Token/Bearer choice
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=False) as response:
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
    except httpx.HTTPError as exc:
        raise TaskError(f"could not fetch {path_or_url} from Label Studio: {type(exc).__name__}") from None


class PushError(Exception):
    """Label Studio did not take the predictions; ``retryable`` is False when resending cannot help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@contextmanager
def _translated_errors() -> Iterator[None]:
    """The SDK raises its own ApiError for HTTP statuses and httpx's errors for transport failures."""
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except ApiError as exc:
        status = exc.status_code or 0
        retryable = status in (0, 408, 409, 429) or status >= 500
        raise PushError(f"Label Studio answered {status}: {str(exc.body)[:500]}", retryable=retryable) from None
    except httpx.HTTPError as exc:
        raise PushError(f"cannot reach Label Studio: {type(exc).__name__}: {exc}", retryable=True) from None


def push_predictions(access: LabelStudioAccess, project: int, predictions: list[dict]) -> None:
    """Create predictions in bulk (one request for many tasks, ~900 per second on Label Studio 1.23)."""
    from label_studio_sdk.types import PredictionRequest

    request = [
        PredictionRequest(
            task=prediction["task"],
            result=prediction["result"],
            score=prediction["score"],
            model_version=prediction["model_version"],
        )
        for prediction in predictions
    ]
    with _translated_errors():
        sdk_client(access).projects.import_predictions(id=project, request=request)


def push_prediction(access: LabelStudioAccess, prediction: dict) -> None:
    """Create one prediction: used to find which task of a refused bulk push is at fault."""
    with _translated_errors():
        sdk_client(access).predictions.create(
            task=prediction["task"],
            result=prediction["result"],
            score=prediction["score"],
            model_version=prediction["model_version"],
        )


def has_prediction(access: LabelStudioAccess, task: int, model_version: str) -> bool:
    """Whether Label Studio already holds a prediction of this version for the task."""
    with _translated_errors():
        existing = sdk_client(access).predictions.list(task=task)
    return any(prediction.model_version == model_version for prediction in existing)
