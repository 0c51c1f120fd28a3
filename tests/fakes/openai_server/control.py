"""The client of a fake OpenAI server running in its own process (``python -m tests.fakes.openai_server``): a
benchmark reconfigures it between scenarios and reads its counters."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


class FakeOpenAIControl:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, payload: dict | None = None, timeout: float = 10) -> Any:
        data = json.dumps(payload).encode() if payload is not None else (b"{}" if method == "POST" else None)
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def healthy(self) -> bool:
        try:
            return self._call("GET", "/health", timeout=1).get("status") == "UP"
        except OSError:
            return False

    def configure(self, **values: float) -> dict:
        """Any of ``delay``, ``jitter``, ``rpm``, ``tpm``, ``burst``; returns them all."""
        return self._call("POST", "/_fake/config", values)

    def clear(self) -> None:
        """Counters, timings and the rate limits' buckets afresh; the settings kept."""
        self._call("POST", "/_fake/clear")

    def stats(self) -> dict:
        """``records.Counters``, with ``in_flight``, ``max_in_flight`` and the settings."""
        return self._call("GET", "/_fake/stats", timeout=30)

    def in_flight(self) -> dict:
        """Calls being answered now and answered so far: cheap enough to sample several times a second."""
        return self._call("GET", "/_fake/in_flight")

    def timings(self) -> dict[str, float]:
        """The fake's own seconds per ``[bench:<token>]`` prompt since the last call, cleared."""
        return self._call("POST", "/_fake/timings", timeout=30)
