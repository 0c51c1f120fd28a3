"""A worker's background loop with a stop: the pusher (and its lock, kept while a call runs), the chunk tracker, the
watchdog and the load report each run one, started and stopped by the worker's life cycle (``worker/app.py``) rather
than living as long as the process by accident."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``action`` (its result ignored) at once and then every ``interval`` seconds on a thread of its own, until
    ``stop``.  An exception is logged and the next round tries again (Redis or Label Studio away)."""

    def __init__(self, interval: float, action: Callable[[], object], name: str) -> None:
        self.interval, self.action, self.name = interval, action, name
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Periodic:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name=self.name)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                self.action()
            except Exception:
                log.warning("%s: a round failed; the next one tries again", self.name, exc_info=True)
            self._stopped.wait(self.interval)

    def stop(self, timeout: float | None = None) -> None:
        """No round after this one; waits up to ``timeout`` seconds for a round under way to end."""
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
