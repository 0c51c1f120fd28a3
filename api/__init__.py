"""The Flask app speaking Label Studio's ML backend protocol."""

from __future__ import annotations

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from api.auth import install_basic_auth
from api.callers import install_caller_checks
from api.capacity import EvaluationSlots, LLMSlots
from api.errors import register_error_handlers
from api.evaluations import bp as evaluations_bp
from api.improvements import bp as improvements_bp
from api.observe import install_request_metrics
from api.routes import bp
from api.state import AppState, install_state
from shared.adapters.store import Store
from shared.domain.config import Settings, load_settings
from shared.services import Services


class _UnsortedJSONProvider(DefaultJSONProvider):
    """JSON answers keep their keys in the order the code builds them (regions read as Label Studio writes them)."""

    sort_keys = False


def create_app(settings: Settings | None = None, store: Store | None = None, llm_slots: int | None = None) -> Flask:
    """The API; ``llm_slots`` bounds the requests that wait for the LLM at once (``api.capacity``), unbounded
    when None (a test client has no thread pool to protect)."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json = _UnsortedJSONProvider(app)
    services = Services.build(settings, store)
    install_state(
        app,
        AppState(
            services=services,
            llm_slots=LLMSlots(llm_slots) if llm_slots else None,
            evaluation_slots=EvaluationSlots(settings.evaluation_concurrency),
        ),
    )
    install_request_metrics(app, services.metrics)
    install_caller_checks(app, settings)
    install_basic_auth(app, settings)
    register_error_handlers(app)
    app.register_blueprint(bp)
    app.register_blueprint(evaluations_bp)
    app.register_blueprint(improvements_bp)
    return app
