"""Chat completions for OpenAI, Azure OpenAI and Ollama, all through the ``openai`` client.

Retries are the client's own: 408/409/429/5xx, timeouts and connection errors are retried with
exponential backoff and jitter, honouring ``Retry-After``; 400/401/403 fail at once.  Under a shared
rate limit or a request's deadline (``shared.adapters.deadline``) the retries are ours instead, so
that each waits its turn and none outlasts the deadline.  Clients are built once per distinct
LLMOptions and thread, and reused (each holds a connection pool, behind ``shared.adapters.netguard``'s transport).
Answers are cached in Redis, keyed by everything that decides them, so a repeated prompt costs no call.

How the answer's schema travels is the project's ``OUTPUT_MODE`` (see ``shared.domain.answers.output_modes``):
``json_schema``, ``tools`` or ``text``, with ``logprobs`` asked for where the mode carries them.  In
``auto``, a provider that refuses ``response_format`` (a 400 naming it) is asked again with a forced tool
call, then in plain text; a refused ``logprobs`` is dropped the same way.  What an endpoint refused is
remembered in Redis per (provider, endpoint, model), so the next call, in any process, goes straight to
what works.
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypedDict

import httpcore2
import httpx2
import openai
from redis.client import Pipeline

from shared.adapters import deadline
from shared.adapters.metrics import Metrics, bounded, known_models
from shared.adapters.netguard import AddressPolicy, guarded_transport
from shared.adapters.ratelimit import RateLimiter
from shared.adapters.store import Store
from shared.domain.answers.output_modes import request_options, resolve_output_mode
from shared.domain.backoff import backoff, retryable_status
from shared.domain.config import LLMOptions, OutputMode, Settings, setting_default
from shared.domain.digests import digest, endpoint_key, llm_fields
from shared.domain.errors import LLMError
from shared.redaction import redact

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 120.0  # the longest Retry-After honoured: not a setting, it follows the openai client
NEXT_MODE = {"json_schema": "tools", "tools": "text"}  # auto's way down when a provider refuses a mode
LOGPROB_MODES = ("json_schema", "text")  # tool calls carry no token log-probabilities
# not a setting: it only trades one Redis read per call against a refusal reaching the other processes 10 s later
REFUSALS_READ_EVERY = 10.0  # seconds a process trusts what it last read of an endpoint's refusals (one Redis read)


@dataclass(frozen=True)
class OutputRequest:
    """How the answer is asked for: the project's OUTPUT_MODE and the answer's schema (None in text mode)."""

    mode: OutputMode
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class LLMAnswer:
    """The model's answers, one per choice: the message's content, or in tools mode the forced call's arguments."""

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, those the provider served from its prefix cache (billed at less)
    cached: bool = False
    mode: str | None = None  # the output mode the answers came in, after any fallback; None: a plain chat call
    logprobs: list[dict[str, Any]] | None = (
        None  # the first choice's [{"token", "logprob"}], when the provider sent them
    )
    refusals: list[str | None] = field(default_factory=list)  # per choice: the model's refusal, if it refused

    def messages(self) -> list[dict[str, Any]]:
        """Each choice as a message ``output_modes.read_answer`` reads (tool arguments travel as the content)."""
        refusals = self.refusals or [None] * len(self.texts)
        return [{"content": text, "refusal": refusal} for text, refusal in zip(self.texts, refusals, strict=True)]


class FeatureRefused(LLMError):
    """A 400 naming a request feature the provider does not take: ``json_schema``, ``tools`` or ``logprobs``.

    ``lasting`` is False when the provider took the feature but not this schema ("Invalid schema for …"):
    that says nothing about the next request, so it is not remembered.
    """

    def __init__(self, message: str, *, feature: str, lasting: bool) -> None:
        super().__init__(message, retryable=False, status_code=400)
        self.feature = feature
        self.lasting = lasting


class _ClientArgs(TypedDict):
    """What every provider's client is made with."""

    timeout: float
    max_retries: int
    http_client: httpx2.Client


_TLS_LOCK = threading.Lock()


@functools.cache
def _load_tls_settings() -> ssl.SSLContext:
    return httpx2.create_ssl_context()


def tls_settings() -> ssl.SSLContext:
    """The process's TLS settings (certificates as httpx finds them, ``SSL_CERT_FILE`` included), loaded once and
    under a lock: loading them costs far more than the rest of a client, and a worker's first chunk has a hundred
    threads build their clients at once (figures: bench/README.md)."""
    with _TLS_LOCK:
        return _load_tls_settings()


def _build_client(options: LLMOptions, policy: AddressPolicy | None) -> openai.OpenAI:
    transport = guarded_transport(
        httpx2, httpcore2, policy, limits=openai.DEFAULT_CONNECTION_LIMITS, verify=tls_settings()
    )
    common = _ClientArgs(
        timeout=options.timeout,
        max_retries=options.max_retries,
        # No redirects: Azure's api-key header would follow one to another host (httpx drops only Authorization).
        http_client=openai.DefaultHttpxClient(transport=transport, follow_redirects=False),
    )
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


def cache_key(options: LLMOptions, messages: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> str:
    """``extra``: the request's other arguments (the output mode's response_format or tools, logprobs)."""
    decisive = {**llm_fields(options), "messages": messages}
    if extra:
        decisive["request"] = extra
    return digest(decisive)


def chat_body(options: LLMOptions, messages: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    """A chat completion request: ``extra`` is the output mode's arguments (``LLM._extra``)."""
    return {
        "model": options.model,
        "messages": messages,
        "n": options.num_responses,
        "temperature": options.temperature,
        **extra,
    }


def provider_error(exc: openai.APIStatusError, options: LLMOptions, doing: str = "") -> LLMError:
    """A provider's error answer as an LLMError: retryable or not by its status, the key redacted."""
    status = exc.status_code
    message = f"{doing}{options.provider} answered {status}: {_redact(_provider_message(exc), options)}"
    return LLMError(message, retryable=retryable_status(status), status_code=status, retry_after=_retry_after(exc))


def _provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        detail = error.get("message") if isinstance(error, dict) else error
    else:
        detail = body
    return str(detail or exc.message)


def _refused_feature(exc: openai.APIStatusError, extra: dict[str, Any]) -> tuple[str, bool] | None:
    """The feature of the request that a 400 names (and whether the refusal lasts), or None for other 400s."""
    if exc.status_code != 400:
        return None
    error = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else None
    param = error.get("param") if isinstance(error, dict) else None
    detail = _provider_message(exc)
    named = f"{param or ''} {detail}".lower()
    if extra.get("logprobs") and "logprobs" in named:
        feature = "logprobs"
    elif "response_format" in extra and ("response_format" in named or "json_schema" in named):
        feature = "json_schema"
    elif "tools" in extra and ("tool" in named or "function" in named):
        feature = "tools"
    else:
        return None
    return feature, not detail.lower().startswith("invalid schema")


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


class _NoMetrics:
    def count(self, name: str, amount: float = 1, /, **labels: str) -> None:
        pass

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        pass


class LLM:
    def __init__(
        self,
        store: Store | None,
        cache_ttl: int,
        limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
        policy: AddressPolicy | None = None,
        models: frozenset[str] = frozenset(),
        refusal_memory: int = setting_default("llm_refusal_memory"),
    ) -> None:
        """``refusal_memory``: seconds an endpoint's refusal of a feature is remembered (``LLM_REFUSAL_MEMORY``)."""
        self._store = store if cache_ttl > 0 else None
        self._refusal_memory = refusal_memory
        self._models = models  # labelled by name in the metrics; any other model as ``other``
        self._memory = store  # what endpoints refused, remembered even when answers are not cached
        self._policy = policy
        self._cache_ttl = cache_ttl
        self._metrics = metrics or _NoMetrics()
        self._limiter = limiter if limiter is not None and limiter.enabled else None
        self._threads = threading.local()  # .clients: this thread's {LLMOptions: client}
        self._refusals: dict[str, tuple[float, set[str]]] = {}  # endpoint → (read at, refused features)

    @classmethod
    def from_settings(cls, settings: Settings, store: Store, metrics: Metrics | None = None) -> LLM:
        limiter = RateLimiter(
            store,
            settings.llm_rpm,
            settings.llm_tpm,
            settings.llm_interactive_share,
            settings.llm_rate_wait,
            settings.llm_burst_seconds,
        )
        policy = AddressPolicy.from_settings(settings)
        return cls(
            store, settings.cache_ttl, limiter, metrics, policy, known_models(settings), settings.llm_refusal_memory
        )

    def client(self, options: LLMOptions) -> openai.OpenAI:
        """This thread's client for ``options``. One per thread, not one per process: a hundred threads sharing
        one connection pool spend a tenth of each call's CPU on its lock and on scanning its connections."""
        clients: dict[LLMOptions, openai.OpenAI] | None = getattr(self._threads, "clients", None)
        if clients is None:
            clients = self._threads.clients = {}
        client = clients.get(options)
        if client is None:
            client = clients[options] = _build_client(options, self._policy)
        return client

    def cached(
        self, options: LLMOptions, messages: list[dict[str, Any]], output: OutputRequest | None = None
    ) -> LLMAnswer | None:
        if self._store is None:
            return None
        return self._cached(options, messages, self._extra(output, *self._plan(options, output)))

    def _cached(self, options: LLMOptions, messages: list[dict[str, Any]], extra: dict[str, Any]) -> LLMAnswer | None:
        if self._store is None:
            return None
        hit = self._store.cached_answer(cache_key(options, messages, extra))
        return LLMAnswer(**{**hit, "cached": True}) if hit else None

    def complete(
        self,
        options: LLMOptions,
        messages: list[dict[str, Any]],
        interactive: bool = False,
        *,
        output: OutputRequest | None = None,
        writes: Pipeline | None = None,
        before_call: Callable[[], None] | None = None,
    ) -> LLMAnswer:
        """The model's answers (``num_responses`` of them), from the cache when we asked this before.

        With a shared rate limit, waits for its turn first; ``interactive`` calls may use the reserve.
        ``output`` asks for the answer in an output mode (see the module's docstring); without it, a plain
        chat call. ``writes``: the caller's ``Store.one_round_trip``, which the answer for the cache joins.
        ``before_call`` runs on a cache miss, before the provider is asked: it may refuse the call by raising.
        """
        mode, logprobs = self._plan(options, output)
        hit = self._cached(options, messages, self._extra(output, mode, logprobs))
        if self._store is not None:
            self._metrics.count("llm_cache", result="hit" if hit else "miss")
        if hit is not None:
            return hit
        if before_call is not None:
            before_call()
        started = time.perf_counter()
        try:
            answer, estimated, extra = self._call_with_fallback(options, messages, output, mode, logprobs, interactive)
        except LLMError as exc:
            self._metrics.count(
                "llm_calls", **self._labels(options), outcome="retryable" if exc.retryable else "refused"
            )
            raise
        finally:
            self._metrics.observe("llm_seconds", time.perf_counter() - started, **self._labels(options))
        self.count_answer(options, answer)
        if self._limiter is not None:
            self._limiter.settle(options, estimated, answer.prompt_tokens + answer.completion_tokens)
        if self._store is not None:
            self._store.cache_answer(cache_key(options, messages, extra), asdict(answer), self._cache_ttl, writes)
        return answer

    def batch_body(
        self, options: LLMOptions, messages: list[dict[str, Any]], output: OutputRequest | None = None
    ) -> tuple[dict[str, Any], str | None, bool]:
        """The request a Batch API line carries for these messages (what ``complete`` would ask first), its
        output mode, and whether its answer is cached already (then it needs no line)."""
        mode, logprobs = self._plan(options, output)
        extra = self._extra(output, mode, logprobs)
        model = (options.azure_deployment or options.model) if options.provider == "azure" else options.model
        body = chat_body(options, messages, extra) | {"model": model}
        return body, mode, self._cached(options, messages, extra) is not None

    def count_answer(self, options: LLMOptions, answer: LLMAnswer) -> None:
        """An answer the provider gave (live, or a Batch API line) in the metrics: the call and its tokens."""
        self._metrics.count("llm_calls", **self._labels(options), outcome="ok")
        for direction, tokens in (
            ("in", answer.prompt_tokens),
            ("out", answer.completion_tokens),
            ("cached", answer.cached_tokens),
        ):
            self._metrics.count("llm_tokens", tokens, **self._labels(options), direction=direction)

    def _plan(self, options: LLMOptions, output: OutputRequest | None) -> tuple[str | None, bool]:
        """The output mode to ask in and whether logprobs may be asked for, given what this endpoint refused.

        An explicit mode is asked for as it is (a refusal then fails, naming the setting); ``auto`` starts
        where the provider should support it and skips what this endpoint refused.
        """
        if output is None:
            return None, False
        refused = self._refused(endpoint_key(options))
        mode: str = output.mode
        if output.mode == "auto":
            mode = resolve_output_mode(output.mode, options.provider, options.azure_api_version)
            while mode in refused and mode in NEXT_MODE:
                mode = NEXT_MODE[mode]
        return mode, "logprobs" not in refused

    def _refused(self, endpoint: str) -> set[str]:
        """What this endpoint refused, read from Redis at most every REFUSALS_READ_EVERY seconds: another
        process's new refusal reaches this one within that time (until then a call here is refused and falls
        back on its own)."""
        if self._memory is None:
            return set()
        read_at, refused = self._refusals.get(endpoint, (float("-inf"), set()))
        if time.monotonic() - read_at > REFUSALS_READ_EVERY:
            refused = self._memory.refused_features(endpoint)
            self._refusals[endpoint] = (time.monotonic(), refused)
        return refused

    @staticmethod
    def _extra(output: OutputRequest | None, mode: str | None, logprobs: bool) -> dict[str, Any]:
        """The request's arguments beyond model, messages, n and temperature."""
        if output is None or mode is None:
            return {}
        return request_options(mode, output.schema or {}) | (
            {"logprobs": True} if logprobs and mode in LOGPROB_MODES else {}
        )

    def _call_with_fallback(
        self,
        options: LLMOptions,
        messages: list[dict[str, Any]],
        output: OutputRequest | None,
        mode: str | None,
        logprobs: bool,
        interactive: bool,
    ) -> tuple[LLMAnswer, int, dict[str, Any]]:
        """One answer in ``mode``, asked again without what the provider refuses (see the module's docstring)."""
        while True:
            extra = self._extra(output, mode, logprobs)
            try:
                answer, estimated = self._call_within_limits(options, messages, extra, interactive)
                return replace(answer, mode=mode), estimated, extra
            except FeatureRefused as exc:
                if exc.feature == "logprobs":
                    logprobs = False
                elif output is not None and output.mode == "auto" and exc.feature == mode:
                    mode = NEXT_MODE[mode]
                else:
                    raise LLMError(
                        f"{exc} (output mode {mode}: set OUTPUT_MODE, or output_mode in the project's extra params, "
                        "to auto or to a mode this provider takes)",
                        retryable=False,
                        status_code=400,
                    ) from None
                log.warning(
                    "%s %s refused %s: %s; asking without it", options.provider, options.model, exc.feature, exc
                )
                if exc.lasting and self._memory is not None:
                    self._memory.remember_refusal(endpoint_key(options), exc.feature, self._refusal_memory)
                    self._refusals.pop(endpoint_key(options), None)  # read again at the next call

    def _call_within_limits(
        self, options: LLMOptions, messages: list[dict[str, Any]], extra: dict[str, Any], interactive: bool
    ) -> tuple[LLMAnswer, int]:
        """One call; with a shared rate limit, every retry also waits for its turn in the bucket, and under a
        deadline no retry waits past it.

        (The openai client's own retries would bypass the bucket and the deadline, so here they are ours.)
        """
        if self._limiter is None and deadline.remaining() is None:
            return self._call(options, messages, extra), 0
        unretried = options.model_copy(update={"max_retries": 0})
        for attempt in range(options.max_retries + 1):
            estimated = self._limiter.acquire(options, messages, interactive) if self._limiter else 0
            try:
                return self._call(unretried, messages, extra), estimated
            except LLMError as exc:
                if not exc.retryable or attempt == options.max_retries:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else backoff(attempt, base=0.5)
                deadline.sleep(min(delay, MAX_RETRY_DELAY))
        raise AssertionError("unreachable")

    def _labels(self, options: LLMOptions) -> dict[str, str]:
        return {"provider": options.provider, "model": bounded(options.model, self._models)}

    def _call(self, options: LLMOptions, messages: list[dict[str, Any]], extra: dict[str, Any]) -> LLMAnswer:
        try:
            # The client's own ``post`` (its retries, auth and Azure's deployment path) with plain JSON both
            # ways, not the typed ``chat.completions.create``: that walks every message and the whole schema
            # against its TypedDicts to rename keys that a body built here does not have, then builds models of
            # the answer: a sizeable share of an interactive answer's overhead (bench/README.md).
            completion = self.client(options).post(
                "/chat/completions", body=chat_body(options, messages, extra), cast_to=object
            )
        except openai.APIStatusError as exc:
            refused = _refused_feature(exc, extra)
            if refused is not None:
                raise FeatureRefused(
                    str(provider_error(exc, options)), feature=refused[0], lasting=refused[1]
                ) from None
            raise provider_error(exc, options) from None
        except openai.APITimeoutError:
            raise LLMError(f"{options.provider} did not answer within {options.timeout:g} s", retryable=True) from None
        except openai.APIConnectionError as exc:
            where = options.endpoint or "its default endpoint"
            reason = exc.__cause__ or exc
            raise LLMError(f"cannot reach {options.provider} at {where}: {reason}", retryable=True) from None
        except json.JSONDecodeError as exc:  # a JSON content type over a body that is not JSON
            raise LLMError(f"{options.provider} answered an unreadable body: {exc}", retryable=True) from None
        try:
            return answer_from_completion(completion)
        except ValueError as exc:  # a provider (or a proxy before it) answered 200 with a body of another shape
            raise LLMError(f"{options.provider} answered 200 with {exc}", retryable=True) from None


def answer_from_completion(completion: object) -> LLMAnswer:
    """A chat completion's JSON as an answer: the live path's, and a Batch API output line's (the same body).

    Read as plain JSON, not through the client's models: building those costs more than the whole reading.
    Raises ValueError ("a body that is not a chat completion: …") for a body of another shape.
    """
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choices = choices if isinstance(choices, list) else None
    messages = [choice["message"] for choice in choices or [] if isinstance(choice, dict) and "message" in choice]
    usage = completion.get("usage") if isinstance(completion, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    tokens = [
        usage.get("prompt_tokens") or 0,
        usage.get("completion_tokens") or 0,
        (details.get("cached_tokens") if isinstance(details, dict) else 0) or 0,
    ]
    if (
        choices is None
        or len(messages) != len(choices)
        or not all(isinstance(message, dict) for message in messages)
        or not all(isinstance(count, int) for count in tokens)
    ):
        raise ValueError(f"a body that is not a chat completion: {redact(repr(completion)[:200])}")
    return LLMAnswer(
        texts=[_answer_text(message) for message in messages],
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        cached_tokens=tokens[2],
        logprobs=_token_logprobs(choices[0]) if choices else None,
        refusals=[message.get("refusal") for message in messages],
    )


def _answer_text(message: dict[str, Any]) -> str:
    """The content, or the arguments of the (forced) tool call when there is one."""
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and function.get("arguments"):
            return str(function["arguments"])
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _token_logprobs(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The content's tokens with their log-probabilities (they go into the cache)."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content:
        return None
    return [{"token": token.get("token"), "logprob": token.get("logprob")} for token in content]
