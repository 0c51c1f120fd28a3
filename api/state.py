"""What the app holds for its requests: the services, and this process's bounds on slow requests.

Flask keeps an extension's objects untyped (``app.extensions`` is a ``dict[str, Any]``); they are stored once, as
one ``AppState``, and read back typed through ``state()`` and ``services()`` by every blueprint.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from api.capacity import EvaluationSlots, LLMSlots
from shared.services import Services

_KEY = "llm_backend"


@dataclass(frozen=True)
class AppState:
    services: Services
    llm_slots: LLMSlots | None  # None: unbounded (a test client has no thread pool to protect)
    evaluation_slots: EvaluationSlots


def install_state(app: Flask, state: AppState) -> None:
    app.extensions[_KEY] = state


def state_of(app: Flask) -> AppState:
    held = app.extensions[_KEY]
    if not isinstance(held, AppState):
        raise TypeError(f"app.extensions[{_KEY!r}] holds {type(held).__name__}, not the AppState create_app puts there")
    return held


def state() -> AppState:
    """The state of the app serving the current request."""
    return state_of(current_app)


def services() -> Services:
    return state().services
