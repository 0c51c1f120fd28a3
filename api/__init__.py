"""The Flask app speaking Label Studio's ML backend protocol."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import Flask

from api.auth import install_basic_auth
from api.errors import register_error_handlers
from api.routes import bp
from shared.config import Settings, load_settings
from shared.jobs import Jobs
from shared.llm import LLM
from shared.predictor import Predictor
from shared.queue import make_celery
from shared.store import Store


@dataclass(frozen=True)
class Backend:
    """What the routes work with, built once per process."""

    settings: Settings
    predictor: Predictor
    jobs: Jobs
    celery: Celery


def create_app(settings: Settings | None = None, store: Store | None = None) -> Flask:
    settings = settings or load_settings()
    store = store or Store.from_url(settings.redis_url, settings.redis_key_prefix)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False
    app.extensions["llm_backend"] = Backend(
        settings=settings,
        predictor=Predictor(settings, store, LLM.from_settings(settings, store)),
        jobs=Jobs(store, settings.job_ttl),
        celery=make_celery(settings),
    )
    install_basic_auth(app, settings)
    register_error_handlers(app)
    app.register_blueprint(bp)
    return app
