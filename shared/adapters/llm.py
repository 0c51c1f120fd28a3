"""Chat completions for OpenAI, Azure OpenAI and Ollama, all through the ``openai`` client.

Retries are the client's own: 408/409/429/5xx, timeouts and connection errors are retried with
exponential backoff and jitter, honouring ``Retry-After``; 400/401/403 fail at once.  Under a shared
rate limit or a request's deadline (``shared.adapters.deadline``) the retries are ours instead, so
that each waits its turn and none outlasts the deadline.  Clients are built once per distinct
LLMOptions and reused (each holds a connection pool, behind ``shared.adapters.netguard``'s transport).
Answers are cached in Redis, keyed by everything that decides them, so a repeated prompt costs no call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass

import httpcore2
import httpx2
import openai

from shared.adapters import deadline
from shared.adapters.metrics import Metrics
from shared.adapters.netguard import AddressPolicy, guarded_transport
from shared.adapters.ratelimit import RateLimiter
from shared.adapters.store import Store
from shared.domain.backoff import backoff
from shared.domain.config import LLMOptions, Settings
from shared.domain.errors import LLMError
from shared.redaction import redact

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 120.0  # the longest Retry-After honoured, as the openai client does


@dataclass(frozen=True)
class LLMAnswer:
    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


def _build_client(options: LLMOptions, policy: AddressPolicy | None) -> openai.OpenAI:
    transport = guarded_transport(httpx2, httpcore2, policy, limits=openai.DEFAULT_CONNECTION_LIMITS)
    common = {
        "timeout": options.timeout,
        "max_retries": options.max_retries,
        # No redirects: Azure's api-key header would follow one to another host (httpx drops only Authorization).
        "http_client": openai.DefaultHttpxClient(transport=transport, follow_redirects=False),
    }
    key = options.api_key.get_secret_value() if options.api_key else None
    if options.provider == "ollama":
        return openai.OpenAI(base_url=options.ollama_endpoint, api_key=key or "ollama", **common)
    if not key:
        raise LLMError(
            f"no API key for provider {options.provider}: set OPENAI_API_KEY or api_key in the project's extra params",
            retryable=False,
        )
    if options.provider == "azure":
        if not options.azure_endpoint:
            raise LLMError(
                "provider azure needs AZURE_RESOURCE_ENDPOINT (or azure_endpoint in extra params)",
                retryable=False,
            )
        return openai.AzureOpenAI(
            api_key=key,
            azure_endpoint=options.azure_endpoint.rstrip("/"),
            azure_deployment=options.azure_deployment or options.model,
            api_version=options.azure_api_version,
            **common,
        )
    return openai.OpenAI(api_key=key, base_url=options.base_url, **common)


def cache_key(options: LLMOptions, messages: list[dict]) -> str:
    decisive = {
        "provider": options.provider,
        "endpoint": options.endpoint,
        "deployment": options.azure_deployment,
        "model": options.model,
        "temperature": options.temperature,
        "n": options.num_responses,
        "messages": messages,
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()


def _provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        detail = error.get("message") if isinstance(error, dict) else error
    else:
        detail = body
    return str(detail or exc.message)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(headers[name]) * scale
        except (KeyError, ValueError):
            continue
    return None


def _redact(text: str, options: LLMOptions) -> str:
    key = options.api_key.get_secret_value() if options.api_key else ""
    return redact(text.replace(key, "***") if len(key) >= 4 else text)


def _require_chat_completion(completion: object, options: LLMOptions) -> None:
    """A provider (or a proxy before it) may answer 200 with a body of another shape: an LLMError, not a crash."""
    choices = getattr(completion, "choices", None)
    usage = getattr(completion, "usage", None)
    messages = [getattr(choice, "message", None) for choice in choices] if isinstance(choices, list) else None
    tokens = [getattr(usage, name, 0) or 0 for name in ("prompt_tokens", "completion_tokens")]
    if (
        messages is None
        or not all(hasattr(message, "content") for message in messages)
        or not all(isinstance(count, int) for count in tokens)
    ):
        shown = redact(repr(completion)[:200])
        raise LLMError(
            f"{options.provider} answered 200 with a body that is not a chat completion: {shown}", retryable=True
        )


class _NoMetrics:
    def count(self, *args, **kwargs) -> None:
        pass

    def observe(self, *args, **kwargs) -> None:
        pass


class LLM:
    def __init__(
        self,
        store: Store | None,
        cache_ttl: int,
        limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
        policy: AddressPolicy | None = None,
    ) -> None:
        self._store = store if cache_ttl > 0 else None
        self._policy = policy
        self._cache_ttl = cache_ttl
        self._metrics = metrics or _NoMetrics()
        self._limiter = limiter if limiter is not None and limiter.enabled else None
        self._clients: dict[LLMOptions, openai.OpenAI] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, store: Store, metrics: Metrics | None = None) -> LLM:
        limiter = RateLimiter(
            store, settings.llm_rpm, settings.llm_tpm, settings.llm_interactive_share, settings.llm_rate_wait
        )
        return cls(store, settings.cache_ttl, limiter, metrics, AddressPolicy.from_settings(settings))

    def client(self, options: LLMOptions) -> openai.OpenAI:
        with self._lock:
            client = self._clients.get(options)
            if client is None:
                client = self._clients[options] = _build_client(options, self._policy)
            return client

    def cached(self, options: LLMOptions, messages: list[dict]) -> LLMAnswer | None:
        if self._store is None:
            return None
        hit = self._store.cached_answer(cache_key(options, messages))
        return LLMAnswer(**{**hit, "cached": True}) if hit else None

    def complete(self, options: LLMOptions, messages: list[dict], interactive: bool = False) -> LLMAnswer:
        """The model's answers (``num_responses`` of them), from the cache when we asked this before.

        With a shared rate limit, waits for its turn first; ``interactive`` calls may use the reserve.
        """
        hit = self.cached(options, messages)
        if self._store is not None:
            self._metrics.count("llm_cache", result="hit" if hit else "miss")
        if hit is not None:
            return hit
        started = time.perf_counter()
        try:
            answer, estimated = self._call_within_limits(options, messages, interactive)
        except LLMError as exc:
            self._metrics.count(
                "llm_calls", **self._labels(options), outcome="retryable" if exc.retryable else "refused"
            )
            raise
        finally:
            self._metrics.observe("llm_seconds", time.perf_counter() - started, **self._labels(options))
        self._metrics.count("llm_calls", **self._labels(options), outcome="ok")
        self._metrics.count("llm_tokens", answer.prompt_tokens, **self._labels(options), direction="in")
        self._metrics.count("llm_tokens", answer.completion_tokens, **self._labels(options), direction="out")
        if self._limiter is not None:
            self._limiter.settle(options, estimated, answer.prompt_tokens + answer.completion_tokens)
        if self._store is not None:
            self._store.cache_answer(cache_key(options, messages), asdict(answer), self._cache_ttl)
        return answer

    def _call_within_limits(
        self, options: LLMOptions, messages: list[dict], interactive: bool
    ) -> tuple[LLMAnswer, int]:
        """One call; with a shared rate limit, every retry also waits for its turn in the bucket, and under a
        deadline no retry waits past it.

        (The openai client's own retries would bypass the bucket and the deadline, so here they are ours.)
        """
        if self._limiter is None and deadline.remaining() is None:
            return self._call(options, messages), 0
        unretried = options.model_copy(update={"max_retries": 0})
        for attempt in range(options.max_retries + 1):
            estimated = self._limiter.acquire(options, messages, interactive) if self._limiter else 0
            try:
                return self._call(unretried, messages), estimated
            except LLMError as exc:
                if not exc.retryable or attempt == options.max_retries:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else backoff(attempt, base=0.5)
                deadline.sleep(min(delay, MAX_RETRY_DELAY))
        raise AssertionError("unreachable")

    @staticmethod
    def _labels(options: LLMOptions) -> dict[str, str]:
        return {"provider": options.provider, "model": options.model}

    def _call(self, options: LLMOptions, messages: list[dict]) -> LLMAnswer:
        try:
            completion = self.client(options).chat.completions.create(
                model=options.model,
                messages=messages,
                n=options.num_responses,
                temperature=options.temperature,
            )
        except openai.APIStatusError as exc:
            status = exc.status_code
            retryable = status in (408, 409, 429) or status >= 500
            message = f"{options.provider} answered {status}: {_redact(_provider_message(exc), options)}"
            raise LLMError(message, retryable=retryable, status_code=status, retry_after=_retry_after(exc)) from None
        except openai.APITimeoutError:
            raise LLMError(f"{options.provider} did not answer within {options.timeout:g} s", retryable=True) from None
        except openai.APIConnectionError as exc:
            where = options.endpoint or "its default endpoint"
            reason = exc.__cause__ or exc
            raise LLMError(f"cannot reach {options.provider} at {where}: {reason}", retryable=True) from None
        except openai.APIResponseValidationError as exc:
            raise LLMError(
                f"{options.provider} answered an unreadable body: {redact(str(exc))}", retryable=True
            ) from None
        _require_chat_completion(completion, options)
        usage = completion.usage
        return LLMAnswer(
            texts=[choice.message.content or "" for choice in completion.choices],
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )
