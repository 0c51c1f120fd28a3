"""Everything this backend keeps, in Redis, so every API and worker process sees the same state.

Per project: what ``/setup`` received (labeling config, Label Studio host and token, extra params),
the annotators' latest prompt, the model versions handed out, the tokens used and the day's spend.  Shared: the
LLM response cache, and what each LLM endpoint refused (so no process asks it again).
All keys live under one prefix (``REDIS_KEY_PREFIX``), so deployments and test runs can share a server.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import redis
from redis.client import Pipeline

from shared.adapters.redis_connection import tls_options
from shared.adapters.replies import text, text_dict, text_list, text_set
from shared.domain.config import Settings, setting_default
from shared.domain.estimation.pricing import TokenUsage
from shared.redaction import remember, remember_extra_params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectSetup:
    """What Label Studio told us about a project in ``/setup`` (a kept one always has its labeling config)."""

    label_config: str | None
    hostname: str | None = None
    access_token: str | None = None
    extra_params: dict[str, Any] | None = None

    def __repr__(self) -> str:  # the token must never reach logs
        return f"ProjectSetup(hostname={self.hostname!r}, access_token=***, extra_params=…)"


def _remember_secrets(setup: ProjectSetup) -> None:
    """Its token and key may turn up in an error text: ``shared.redaction`` must know them."""
    remember(setup.access_token)
    remember_extra_params(setup.extra_params)


def project_id_of(value: Any) -> str | None:
    """Label Studio names a project ``"<id>.<created-unix-ts>"`` in /setup and /predict, ``{"id": N}`` in webhooks."""
    if isinstance(value, dict):
        value = value.get("id")
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    head = text.split(".", 1)[0]
    return head if head.isdigit() else None


class Store:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store of ``REDIS_URL`` under ``REDIS_KEY_PREFIX``, its pool sized for ``LLM_CONCURRENCY`` threads."""
        return cls.from_url(
            settings.redis_url,
            settings.redis_key_prefix,
            settings.llm_concurrency,
            settings.redis_socket_timeout,
            settings.redis_spare_connections,
            settings.redis_pool_wait,
            **tls_options(settings),
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str,
        threads: int = 0,
        socket_timeout: float | None = None,
        spare_connections: int = setting_default("redis_spare_connections"),
        pool_wait: float = setting_default("redis_pool_wait"),
        **tls: Any,
    ) -> Store:
        """A store whose connection pool serves ``threads`` threads making calls at once (a worker's LLM window, an API
        process's request threads) plus ``spare_connections`` for the rest (pusher, tracker, watchdog, claim
        keepers, metrics: ``REDIS_SPARE_CONNECTIONS``).  A thread finding every connection taken waits for one (up
        to ``pool_wait`` s: ``REDIS_POOL_WAIT``) instead of failing with ``MaxConnectionsError``.
        ``socket_timeout``: how long a command may go unanswered (``REDIS_SOCKET_TIMEOUT``).  ``tls``: the
        ``ssl_*`` options of a ``rediss://`` URL (``shared.adapters.redis_connection``)."""
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=threads + spare_connections,
            timeout=pool_wait,
            decode_responses=True,
            health_check_interval=30,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            socket_keepalive=True,
            **tls,
        )
        return cls(redis.Redis(connection_pool=pool), prefix)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @contextmanager
    def one_round_trip(self, joining: Pipeline | None = None, best_effort: bool = False) -> Iterator[Pipeline]:
        """Writes that may wait for each other, sent together when the block ends without an exception (methods
        taking ``writes`` queue on it): each round trip costs CPU that a worker's hundred threads compete for
        (bench/README.md). Given ``joining``, an enclosing block's pipeline, queues on that one.
        ``best_effort``: should Redis fail them, the writes are logged and dropped instead of raising."""
        if joining is not None:
            yield joining
            return
        writes = self.redis.pipeline(transaction=False)
        yield writes
        try:
            writes.execute()
        except redis.RedisError as exc:
            if not best_effort:
                raise
            log.warning("%d writes to Redis dropped: %s", len(writes), exc)

    # --- projects --------------------------------------------------------------------------------
    def save_setup(self, project: str, setup: ProjectSetup) -> None:
        _remember_secrets(setup)
        self.redis.set(self.key("project", project, "setup"), json.dumps(asdict(setup)))

    def load_setup(self, project: str) -> ProjectSetup | None:
        return self._setup_from(text(self.redis.get(self.key("project", project, "setup"))))

    def setup_and_prompt(self, project: str) -> tuple[ProjectSetup | None, str | None]:
        """The project's setup and its annotators' prompt in one round trip (every ``/predict`` needs both)."""
        raw_setup, prompt = self.redis.mget(
            [self.key("project", project, "setup"), self.key("project", project, "prompt")]
        )
        return self._setup_from(text(raw_setup)), text(prompt)

    @staticmethod
    def _setup_from(raw: str | None) -> ProjectSetup | None:
        setup = ProjectSetup(**json.loads(raw)) if raw else None
        if setup:
            _remember_secrets(setup)
        return setup

    def prompt(self, project: str) -> str | None:
        return text(self.redis.get(self.key("project", project, "prompt")))

    def save_prompt(self, project: str, prompt: str) -> bool:
        """Store the annotators' prompt; True when it differs from the one stored before."""
        previous = self.redis.set(self.key("project", project, "prompt"), prompt, get=True)
        return previous != prompt

    def record_version(self, project: str, version: str) -> None:
        """Remember a version handed out for the project (first time seen wins), for ``/versions``."""
        self.redis.zadd(self.key("project", project, "versions"), {version: time.time()}, nx=True)

    def versions(self, project: str) -> list[str]:
        return text_list(self.redis.zrange(self.key("project", project, "versions"), 0, -1))

    def add_usage(
        self, project: str, model: str, usage: TokenUsage, calls: int = 1, writes: Pipeline | None = None
    ) -> None:
        """Count calls that reached the provider, with the tokens it reported."""
        with self.one_round_trip(writes) as pipe:
            for direction, tokens in (("in", usage.tokens_in), ("out", usage.tokens_out), ("cached", usage.cached)):
                pipe.hincrby(self.key("project", project, "usage"), f"{model}|{direction}", tokens)
            pipe.hincrby(self.key("project", project, "calls"), model, calls)

    def calls(self, project: str) -> dict[str, int]:
        """Calls that reached the provider, by model (the denominators of ``usage``)."""
        counts = text_dict(self.redis.hgetall(self.key("project", project, "calls")))
        return {model: int(count) for model, count in counts.items()}

    def usage(self, project: str) -> dict[str, dict[str, int]]:
        """Tokens by model: ``{"gpt-4o": {"in": 1200, "out": 300, "cached": 1024}}`` (cached: of "in")."""
        usage: dict[str, dict[str, int]] = {}
        for field, value in text_dict(self.redis.hgetall(self.key("project", project, "usage"))).items():
            model, direction = field.rsplit("|", 1)
            usage.setdefault(model, {"in": 0, "out": 0, "cached": 0})[direction] = int(value)
        return usage

    # --- spend per UTC day (PROJECT_DAILY_USD) ----------------------------------------------------------
    def _spend(self, project: str, day: str) -> str:
        return self.key("project", project, "spend", day)

    def add_spend(self, project: str, day: str, usd: float, writes: Pipeline | None = None) -> None:
        """Add to the project's spend of ``day``; the counter lives two days, so no day's outlives it for long."""
        with self.one_round_trip(writes) as pipe:
            pipe.incrbyfloat(self._spend(project, day), usd)
            pipe.expire(self._spend(project, day), 2 * 24 * 3600)

    def spend(self, project: str, day: str) -> float:
        return float(self.redis.get(self._spend(project, day)) or 0.0)

    # --- LLM response cache ----------------------------------------------------------------------
    def cached_answer(self, key: str) -> dict[str, Any] | None:
        raw = self.redis.get(self.key("cache", key))
        return json.loads(raw) if raw else None

    def cache_answer(self, key: str, answer: dict[str, Any], ttl: int, writes: Pipeline | None = None) -> None:
        if ttl > 0:
            with self.one_round_trip(writes) as pipe:
                pipe.set(self.key("cache", key), json.dumps(answer), ex=ttl)

    # --- what LLM endpoints refuse ----------------------------------------------------------------
    def refused_features(self, endpoint: str) -> set[str]:
        """The request features (``json_schema``, ``tools``, ``logprobs``) this endpoint refused lately."""
        return set(text_set(self.redis.smembers(self.key("llm", "refused", endpoint))))

    def remember_refusal(self, endpoint: str, feature: str, ttl: int) -> None:
        """Keep a refused feature for ``ttl`` seconds from the latest refusal: a provider may learn it later."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self.key("llm", "refused", endpoint), feature)
        pipe.expire(self.key("llm", "refused", endpoint), ttl)
        pipe.execute()

    # --- log once ---------------------------------------------------------------------------------
    def first_time(self, what: str, ttl: int) -> bool:
        """True for the first caller, in any process, to say ``what`` within ``ttl`` seconds."""
        return bool(self.redis.set(self.key("once", what), "1", nx=True, ex=ttl))
