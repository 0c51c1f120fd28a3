"""All configuration in one typed place.

Process-wide settings come from the environment (the variables of the reference ``llm_interactive``
backend plus our own).  Label Studio's per-backend "extra params" then override the LLM and prompt
part per project, so one deployment can serve projects that use different models or templates.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.config import JsonDict
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.domain.endpoints import DEFAULT_OPENAI_ENDPOINT, origin
from shared.domain.errors import ConfigError
from shared.domain.estimation.pricing import DEFAULT_PRICES, Price
from shared.domain.labeling.strict import LARGE_ENUM
from shared.domain.untrusted import TooDeep, loads, lone_surrogate_message, lone_surrogate_path

Provider = Literal["openai", "azure", "ollama"]
OutputMode = Literal["auto", "json_schema", "tools", "text"]
OUTPUT_MODE_HELP = (
    "how the model is asked for its answer: json_schema (a strict JSON schema as response_format), tools "
    "(one forced function call with that schema), text (free text, read for labels), or auto (json_schema "
    "where the provider takes it, else tools, else text)"
)
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
CommaSeparated = Annotated[list[str], NoDecode]  # ``A,B`` in the environment (or a JSON list)
NumResponses = Annotated[int, Field(ge=1, le=20)]
JobPriority = Annotated[int, Field(ge=1, le=10)]
PRIORITY_HELP = (
    "a job's share of the workers' LLM windows against the other jobs running (1 to 10): a job of priority 2 "
    "keeps twice as many chunks queued as one of priority 1, so it gets about twice the calls"
)

# The task's data last, so everything before it is the same for every task and the provider's prefix cache
# bills it at a fraction (see shared.domain.prompts.messages); the reference backend's default puts the data first.
DEFAULT_PROMPT_TEMPLATE = "Task Directive: {prompt}\n\nSource Text: {text}"
REFERENCE_PROMPT_TEMPLATE = "Source Text: {text}\n\nTask Directive: {prompt}"
VisionBoxFormat = Literal["gemini", "pixels", "percent"]  # shared.domain.answers.geometry.BOX_FORMATS
VISION_BOX_FORMAT_HELP = (
    "the coordinate convention a vision model is asked to give shapes on images in (RectangleLabels, "
    "KeyPointLabels, PolygonLabels, OCR's Rectangle and Polygon, BrushLabels as polygons), converted to Label "
    "Studio's percentages: `gemini` (`box_2d` [ymin, xmin, ymax, xmax] normalized to 0-1000, as Gemini answers), "
    "`pixels` (`bbox_2d` [x1, y1, x2, y2] in pixels of the image, "
    "as Qwen2.5-VL answers) or `percent` (`box` [x1, y1, x2, y2] in percent of the width and height)"
)
BatchApiMode = Literal["off", "auto", "on"]
FewShotStrategy = Literal["fixed", "similar", "diverse"]
FewShotCount = Annotated[int, Field(ge=0, le=50)]
FEW_SHOT_EXAMPLES_HELP = (
    "few-shot examples per task, taken from the project's annotated tasks (their ground truth, as `eval` reads "
    "it); `0`: none"
)
FEW_SHOT_STRATEGY_HELP = (
    "which examples: `fixed` (one label-balanced set for every task, in the cached part of the prompt), "
    "`similar` (the nearest to each task by BM25 over its text, or by `SIMILARITY_EMBEDDINGS_MODEL`) or `diverse` "
    "(near ones spread over the labels: "
    "maximal marginal relevance)"
)
BATCH_API_HELP = (
    "the provider's Batch API for batch jobs (`openai` and `azure`; half the price, answers within 24 h): "
    "`off`, `auto` (jobs of at least `BATCH_API_MIN_TASKS` tasks) or `on` (every job)"
)


class LLMOptions(BaseModel):
    """Everything that decides which model answers and how: one openai client per distinct value."""

    model_config = ConfigDict(frozen=True)

    provider: Provider
    model: str
    temperature: Temperature
    num_responses: NumResponses
    api_key: SecretStr | None = None
    base_url: str | None = None
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    azure_api_version: str
    ollama_endpoint: str
    timeout: float
    max_retries: int

    @property
    def endpoint(self) -> str | None:
        """The URL the calls go to: part of the cache key, since two servers may answer differently."""
        return {
            "openai": self.base_url,
            "azure": self.azure_endpoint,
            "ollama": self.ollama_endpoint,
        }[self.provider]


class PromptOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_prefix: str
    use_internal_template: bool
    template: str
    default_prompt: str | None


class FewShotOptions(BaseModel):
    """How many examples from the team's annotations go with each task, and which."""

    model_config = ConfigDict(frozen=True)

    k: int = 0
    strategy: FewShotStrategy = "fixed"
    embeddings_model: str | None = None  # similar and diverse rank by its embeddings instead of BM25


class LabelSelection(BaseModel):
    """Large label sets: a Choices or Taxonomy offering more than ``threshold`` values is narrowed, for each
    task, to the ``k`` values most similar to the task's text (``shared.domain.prompts.label_selection``)."""

    model_config = ConfigDict(frozen=True)

    threshold: int
    k: int
    embeddings_model: str | None = None  # rank by its embeddings instead of BM25 (SIMILARITY_EMBEDDINGS_MODEL)


class ProjectConfig(BaseModel):
    """The settings in force for one project: environment defaults plus that project's extra params."""

    model_config = ConfigDict(frozen=True)

    llm: LLMOptions
    prompt: PromptOptions
    output_mode: OutputMode = "auto"
    batch_api: BatchApiMode = "off"
    label_selection: LabelSelection
    few_shot: FewShotOptions = FewShotOptions()
    vision_box_format: VisionBoxFormat = "gemini"
    priority: JobPriority = 1


class ExtraParams(BaseModel):
    """Label Studio's per-backend "extra params": the overrides a project may set.

    Keys are accepted in the short form (``model``) or as the environment variable that they
    override (``OPENAI_MODEL``), in any case; an unknown key is an error rather than silently ignored.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    provider: Provider | None = Field(None, validation_alias=AliasChoices("provider", "openai_provider"))
    model: str | None = Field(None, validation_alias=AliasChoices("model", "openai_model"))
    temperature: Temperature | None = None
    num_responses: NumResponses | None = None
    api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("api_key", "openai_api_key"))
    base_url: str | None = Field(None, validation_alias=AliasChoices("base_url", "openai_base_url"))
    azure_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices("azure_endpoint", "azure_resource_endpoint", "resource_endpoint"),
    )
    azure_deployment: str | None = Field(
        None,
        validation_alias=AliasChoices("azure_deployment", "azure_deployment_name", "deployment_name"),
    )
    azure_api_version: str | None = Field(None, validation_alias=AliasChoices("azure_api_version", "api_version"))
    ollama_endpoint: str | None = None
    prompt_template: str | None = None
    use_internal_prompt_template: bool | None = None
    default_prompt: str | None = None
    output_mode: OutputMode | None = Field(None, description=OUTPUT_MODE_HELP)
    batch_api: BatchApiMode | None = Field(None, description=BATCH_API_HELP)
    few_shot_examples: FewShotCount | None = Field(None, description=FEW_SHOT_EXAMPLES_HELP)
    few_shot_strategy: FewShotStrategy | None = Field(None, description=FEW_SHOT_STRATEGY_HELP)
    vision_box_format: VisionBoxFormat | None = Field(None, description=VISION_BOX_FORMAT_HELP)
    priority: JobPriority | None = Field(None, description=PRIORITY_HELP)

    @classmethod
    def parse(cls, raw: Any) -> ExtraParams:
        """Validate Label Studio's extra params; keys are case-insensitive."""
        try:
            return cls.model_validate({str(key).lower(): value for key, value in decode_extra_params(raw).items()})
        except ValidationError as exc:
            message = describe_validation_error(exc, prefix="extra_params.")
            if any(error["type"] == "extra_forbidden" for error in exc.errors()):
                message += f" (accepted keys: {', '.join(cls.accepted_keys())})"
            raise ConfigError(message) from None

    @classmethod
    def accepted_keys(cls) -> list[str]:
        keys: list[str] = []
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            choices = alias.choices if isinstance(alias, AliasChoices) else [name]
            keys.extend(choice for choice in choices if isinstance(choice, str))  # an AliasPath names no key
        return keys


def decode_extra_params(raw: Any) -> dict[str, Any]:
    """Accept what Label Studio sends: nothing, an object, or that object as a JSON string."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = loads(raw)
        except TooDeep as exc:
            raise ConfigError(f"extra_params is refused: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"extra_params is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"extra_params must be a JSON object, got {type(raw).__name__}")
    bad_text = lone_surrogate_path(raw, "extra_params")
    if bad_text:
        raise ConfigError(lone_surrogate_message(bad_text))
    return raw


def section(title: str) -> JsonDict:
    """Marks the first setting of a group: the docs and ``.env.example`` start a new heading there."""
    return {"section": title}


class Settings(BaseSettings):
    """Process-wide settings, read from the environment once at start-up.

    Each setting is defined here once, with its help text: ``llm-backend settings`` renders them as
    the reference in docs/settings.md and as .env.example (``make docs``; a test fails when they drift).
    """

    # ``VAR=`` (as compose files write "not set") means the default, not an empty value.
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True, env_ignore_empty=True)

    # --- the reference backend's variables -------------------------------------------------------
    openai_provider: Provider = Field(
        "openai", description="`openai`, `azure` or `ollama`", json_schema_extra=section("The LLM")
    )
    openai_api_key: SecretStr | None = Field(None, description="API key for OpenAI or Azure (Ollama needs none)")
    openai_model: str = Field(
        "gpt-3.5-turbo", description="model name (for Ollama e.g. `llama3`; for Azure the deployment's model)"
    )
    openai_base_url: str | None = Field(
        None, description="another OpenAI-compatible endpoint for the `openai` provider (a proxy, vLLM, …)"
    )
    temperature: Temperature = Field(0.7, description="sampling temperature, 0 to 2")
    num_responses: NumResponses = Field(1, description="answers per task (1 to 20), all put into the output TextArea")
    azure_resource_endpoint: str | None = Field(
        None, description="Azure resource endpoint, e.g. `https://NAME.openai.azure.com`"
    )
    azure_deployment_name: str | None = Field(None, description="Azure deployment name (default: `OPENAI_MODEL`)")
    azure_api_version: str = Field("2023-05-15", description="Azure API version")
    ollama_endpoint: str = Field(
        "http://localhost:11434/v1",
        description="Ollama's OpenAI-compatible endpoint (from a container: `http://host.docker.internal:11434/v1`); "
        "when unset, no project may switch to Ollama and `OPENAI_API_KEY` is not sent to the default address",
    )
    prompt_prefix: str = Field(
        "prompt",
        description="the prompt is the `<TextArea>` whose name starts with this",
        json_schema_extra=section("Prompts"),
    )
    use_internal_prompt_template: bool = Field(
        True,
        description="`1`: wrap the annotator's prompt in `PROMPT_TEMPLATE`; `0`: the prompt itself is the template",
    )
    prompt_template: str = Field(
        DEFAULT_PROMPT_TEMPLATE,
        description="internal template: `{text}` is the task's input, `{prompt}` the annotator's prompt; "
        "`{labels}` and task data fields work too",
    )
    default_prompt: str | None = Field(
        None,
        description="a prompt (or a path to a file holding one) used until an annotator submits one; a user "
        "template, so it needs `USE_INTERNAL_PROMPT_TEMPLATE=0`, e.g. "
        "`Classify this text as sarcastic or not. Text: {text}, Labels: {labels}`",
    )
    few_shot_examples: FewShotCount = Field(0, description=FEW_SHOT_EXAMPLES_HELP)
    few_shot_strategy: FewShotStrategy = Field("fixed", description=FEW_SHOT_STRATEGY_HELP)
    few_shot_refresh: Annotated[float, Field(ge=0)] = Field(
        300.0,
        description="seconds the few-shot example pool read from Label Studio serves requests before it is read "
        "again (a batch job reads it when it starts)",
    )
    basic_auth_user: str | None = Field(
        None,
        description="with `BASIC_AUTH_PASS`: every API route requires HTTP basic auth",
        json_schema_extra=section("Access"),
    )
    basic_auth_pass: SecretStr | None = Field(None, description="the password for `BASIC_AUTH_USER`")
    flower_basic_auth: SecretStr | None = Field(
        None, description="`user:password` for Flower; required to start it (Flower shows every task)"
    )
    allow_unauthenticated: bool = Field(
        False,
        description="`true`: `llm-backend api` may listen on an address other than loopback without "
        "`BASIC_AUTH_USER`/`BASIC_AUTH_PASS` (whoever reaches it can then use it: see docs/security.md)",
    )
    allowed_hosts: CommaSeparated = Field(
        [],
        description="comma-separated names the `Host` header may carry, beside loopback names (`localhost`) and IP "
        "addresses, which are always accepted: the name Label Studio is given for this backend, e.g. "
        "`llm-backend.example` for `http://llm-backend.example:9090` (compose sets `api,host.docker.internal`); "
        "`*` accepts any name (no protection against DNS rebinding)",
    )
    allowed_origins: CommaSeparated = Field(
        [],
        description="comma-separated origins (`https://app.example`) whose browser pages may call the API; a "
        "request with any other `Origin` header is refused (Label Studio's own calls carry none)",
    )
    allowed_llm_endpoints: CommaSeparated = Field(
        [],
        description="comma-separated LLM endpoints (beside `OPENAI_BASE_URL`, `AZURE_RESOURCE_ENDPOINT`, "
        "`OLLAMA_ENDPOINT`) that a project's extra params may name; they receive `OPENAI_API_KEY` unless the "
        "project gives its own `api_key`. No other endpoint is used, with or without a key of its own",
    )
    allowed_models: CommaSeparated = Field(
        [],
        description="comma-separated models (and Azure deployments) that a project's extra params may choose "
        "beside `OPENAI_MODEL` (and `AZURE_DEPLOYMENT_NAME`); `*`: any",
    )
    max_num_responses: NumResponses | None = Field(
        None,
        description="the most answers per task a project's extra params may ask for (`num_responses`); default: "
        "`NUM_RESPONSES`",
    )
    allowed_private_hosts: CommaSeparated = Field(
        [],
        description="comma-separated host names or addresses that requests may name although they are on a "
        "loopback or private network (a Label Studio that `/setup` names, image URLs), e.g. `localhost` for a "
        "Label Studio on this machine without `LABEL_STUDIO_URL`",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="`DEBUG`, `INFO`, `WARNING`, `ERROR`", json_schema_extra=section("Running")
    )

    # --- ours ------------------------------------------------------------------------------------
    log_format: Literal["text", "json"] = Field(
        "text", description="`json`: one JSON object a line, with `job_id`, `chunk` and `task_id` where there is one"
    )
    redis_url: str = Field(
        "redis://localhost:6379/0",
        description="Redis for state, queue and cache (`redis://:password@host:6379/0` with a password; "
        "`rediss://user:password@host:6380/0` for TLS and an ACL user; compose sets `redis://redis:6379/0`)",
    )
    redis_tls_ca_file: str | None = Field(
        None,
        description="with a `rediss://` `REDIS_URL`: the CA certificates (PEM file) that the Redis server's "
        "certificate must chain to; unset: the system's trusted CAs",
    )
    redis_tls_cert_file: str | None = Field(
        None,
        description="with a `rediss://` `REDIS_URL`: this backend's client certificate (PEM file), for a Redis that "
        "asks clients for one (`tls-auth-clients yes`)",
    )
    redis_tls_key_file: str | None = Field(
        None, description="the private key (PEM file) of `REDIS_TLS_CERT_FILE`, when that file does not hold it"
    )
    redis_tls_cert_reqs: Literal["required", "optional", "none"] = Field(
        "required",
        description="with a `rediss://` `REDIS_URL`: `required` (the server's certificate must be valid and name its "
        "host), `optional` (for a client the same as `required`, as Python's `ssl` defines it: the server always "
        "sends its certificate, and it is checked), or `none` (not checked: anyone between here and Redis can read "
        "and change everything)",
    )
    redis_key_prefix: str = Field(
        "llm-backend", description="prefix of every key, so several deployments can share one Redis"
    )
    redis_socket_timeout: Annotated[float, Field(ge=2, le=600)] = Field(
        30.0,
        description="seconds a Redis connection attempt or command may go unanswered before the connection counts as "
        "lost and is made again; bounds every wait on a Redis that went silent without closing the connection (a "
        "failover, a NAT or load balancer that dropped it), a worker's warm shutdown included",
    )
    broker_outage_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        60.0,
        description="seconds a worker keeps trying to send a message (a chunk's retry, a job's next chunks, a Batch "
        "API poll) while Redis is away, a restart or a failover, rather than dropping it: a message not sent waits "
        "for the watchdog's `JOB_STALL_SECONDS`; the API does not wait (it answers 503 at once)",
    )
    redis_spare_connections: Annotated[int, Field(ge=8, le=10_000)] = Field(
        64,
        description="Redis connections a process may open beyond one per LLM call in flight (`LLM_CONCURRENCY`), "
        "for its other threads: a push loop per project, the tracker, the watchdog, claim keepers, metrics; when all "
        "are taken a thread waits up to `REDIS_POOL_WAIT` for one",
    )
    redis_pool_wait: Annotated[float, Field(gt=0, le=600)] = Field(
        30.0,
        description="seconds a thread that finds every Redis connection of its process taken waits for one before "
        "it fails (a burst waits; a process that leaks connections fails instead of hanging)",
    )
    label_studio_url: str | None = Field(
        None,
        description="how to reach Label Studio (pushing predictions, fetching uploaded images); when unset, the "
        "`hostname` Label Studio sends to `/setup`",
    )
    label_studio_api_key: SecretStr | None = Field(
        None, description="Label Studio API key; when unset, the `access_token` Label Studio sends to `/setup`"
    )
    label_studio_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        60.0,
        description="seconds a call to Label Studio other than a push (reading tasks, predictions, few-shot "
        "examples) may wait for it to connect or send the next bytes; 60 is its SDK's own default (pushes: "
        "`PUSH_TIMEOUT_MIN`, `PUSH_TIMEOUT_MAX`)",
    )
    label_studio_url_bytes: Annotated[int, Field(ge=1024, le=65_536)] = Field(
        6000,
        description="the longest URL of a read narrowed to task ids (they go in its query), which then takes several "
        "pages: proxies in front of Label Studio refuse longer ones (nginx: 8 KB with its other headers)",
    )
    llm_prices: dict[str, Price] = Field(
        {},
        description='JSON `{"model": [input, output]}` or `[input, output, cached input]` in USD per million '
        "tokens, over the built-in table (gpt-3.5-turbo, gpt-4o, gpt-4o-mini, gpt-4.1, -mini, -nano); cached "
        "input is what the provider bills for prompt prefixes it served from its cache (default: the input "
        "price); a model without a price has no cost estimate",
    )
    llm_batch_discount: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="the share of the price table's prices that the provider's Batch API bills"
    )
    auto_predict_on_import: bool = Field(
        False,
        description="`1`: tasks imported into Label Studio (its `TASKS_CREATED` webhook) become a batch job at once",
    )
    api_workers: Annotated[int, Field(ge=1)] = Field(
        2,
        description="gunicorn worker processes of `llm-backend api` (its `--workers` overrides it): the API's own "
        "work (JSON, regions, the openai client) is CPU, so about one per core",
        json_schema_extra=section("The API server (`llm-backend api`)"),
    )
    api_threads: Annotated[int, Field(ge=3)] = Field(
        32,
        description="threads per API process (`--threads` overrides it): each request waiting for the LLM holds "
        "one, and 2 are kept for `/health`, `/setup` and the like, so at most this many less 2 wait for the LLM "
        "and one more gets 503. Leave headroom: annotators' keep-alive connections stay with one process, and "
        "the kernel does not spread them evenly (bench/README.md)",
    )
    api_timeout: Annotated[int, Field(ge=1)] = Field(
        120,
        description="seconds an API process may stop reporting to gunicorn's master (a hung process) before it is "
        "killed and replaced; requests run in threads, so a slow LLM call does not count",
    )
    api_graceful_timeout: Annotated[int, Field(ge=0)] = Field(
        30,
        description="seconds an API process told to stop (SIGTERM: docker stop, Kubernetes) lets its requests in "
        "flight finish before it is killed",
    )
    api_keepalive: Annotated[int, Field(ge=0)] = Field(
        5,
        description="seconds an idle keep-alive connection to the API stays open; behind a load balancer that "
        "reuses connections, keep it above the balancer's idle timeout, or the balancer may send a request on a "
        "connection the API has just closed; `0`: none",
    )
    cache_ttl: Annotated[int, Field(ge=0)] = Field(
        7 * 24 * 3600,
        description="seconds an LLM answer stays cached (key: provider, endpoint, model, temperature, n, "
        "messages); `0` disables the cache",
        json_schema_extra=section("LLM calls"),
    )
    llm_timeout: Annotated[float, Field(gt=0)] = Field(
        120.0, description="seconds an LLM call may wait for the provider to connect or send the next bytes"
    )
    interactive_deadline: Annotated[float, Field(gt=0, lt=100)] = Field(
        60.0,
        description="seconds a `/predict` that an annotator (or Label Studio) waits for may take in all: "
        "connect, reads, retries and rate-limit waits; then it answers 504. Label Studio gives up at 100 s",
    )
    llm_max_retries: Annotated[int, Field(ge=0, le=20)] = Field(
        5,
        description="retries of 408/409/429/5xx, timeouts and connection errors (exponential backoff with jitter, "
        "`Retry-After` honoured); 400/401/403 fail at once",
    )
    llm_concurrency: Annotated[int, Field(ge=1, le=1024)] = Field(
        100,
        description="LLM calls in flight at once per process (API or worker); a worker process keeps this many in "
        "flight across chunks for as long as it has tasks",
    )
    llm_rpm: Annotated[int, Field(ge=0)] = Field(
        0,
        description="requests per minute to the provider, shared by every process (per provider, endpoint and "
        "model); `0` = no limit",
    )
    llm_tpm: Annotated[int, Field(ge=0)] = Field(
        0,
        description="tokens per minute, likewise (estimated before a call, corrected by the usage the provider "
        "reports)",
    )
    llm_interactive_share: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.2, description="share of the rate-limit bucket that batch work leaves for annotators' interactive requests"
    )
    llm_rate_wait: Annotated[float, Field(gt=0)] = Field(
        60.0, description="seconds a call waits for the rate limit before giving up (a batch chunk then retries later)"
    )
    llm_refusal_memory: Annotated[int, Field(ge=60)] = Field(
        7 * 24 * 3600,
        description="seconds an endpoint's refusal of a feature (`json_schema`, `tools`, `logprobs`) is "
        "remembered, so that calls go the way it accepts without being refused first; an upgraded endpoint gets "
        "asked again after this (a week: upgrades are rare, a refusal costs a call each time)",
    )
    llm_burst_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        1.0,
        description="seconds' worth of `LLM_RPM` and `LLM_TPM` that may go out at once after a pause (at least 2 "
        "requests or tokens); 1 keeps to the rate without the bursts a provider refuses within its minute",
    )
    choice_match_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.8, description="how similar (0–1) a line of the answer must be to a label when it does not match exactly"
    )
    output_mode: OutputMode = Field("auto", description=OUTPUT_MODE_HELP)
    long_text_chars: Annotated[int, Field(ge=0)] = Field(
        20_000,
        description="a text longer than this many characters that `Labels` quote from is predicted in parts, split "
        "on sentence boundaries with a twentieth of overlap, and its spans merged (an NER answer grows with the "
        "text: 20,000 characters of dense news give about 8,000 answer tokens, half of a 16,384-token output "
        "limit); 0 never splits",
    )
    label_selection_threshold: Annotated[int, Field(ge=1)] = Field(
        LARGE_ENUM,  # where OpenAI's strict schemas start to limit one enum
        description="a `Choices` or `Taxonomy` offering more values than this (labels, or a Taxonomy's selectable "
        "paths) is narrowed for each task to the `LABEL_SELECTION_K` values most similar to the task's text (BM25 "
        "over each value's text, alias and hint, computed locally; or by `SIMILARITY_EMBEDDINGS_MODEL`). 250 is where "
        "OpenAI's strict schemas start to "
        "limit one enum: its guide (developers.openai.com/api/docs/guides/structured-outputs, supported schemas) "
        "allows at most 1,000 enum values in a schema, 15,000 characters in all for a string enum of more than 250 "
        "values, and 120,000 characters of names and values (500 enum values in 2024, which older deployments "
        "may still hold to). Set it above your largest label set to send every label",
    )
    label_selection_k: Annotated[int, Field(ge=1)] = Field(
        50,
        description="how many values a narrowed `Choices` or `Taxonomy` offers the model for one task, at most "
        "(only values sharing a word with the task; no more than `LABEL_SELECTION_THRESHOLD`); an answer outside "
        "them is refused like any label not in the config",
    )
    similarity_embeddings_model: str | None = Field(
        None,
        description="an embeddings model (e.g. `text-embedding-3-small`) that label selection and the `similar` and "
        "`diverse` few-shot strategies rank by, cosine similarity of its embeddings, asked through the project's "
        "provider, endpoint and key like its chat calls (`embeddings.create`); each text's vector is kept in Redis "
        "by endpoint, model and the text's SHA-256, so a label set is embedded once and each task costs one "
        "embedding of its text. The operator's choice (not a project's extra param), so `ALLOWED_MODELS`, which "
        "bounds what projects choose, does not apply. Unset: BM25 over the words, computed locally (no call)",
    )
    vision_box_format: VisionBoxFormat = Field("gemini", description=VISION_BOX_FORMAT_HELP)
    batch_min_tasks: Annotated[int, Field(ge=2)] = Field(
        2,
        description="a `/predict` without an annotator's prompt and with at least this many tasks becomes a batch job",
        json_schema_extra=section("Batch jobs"),
    )
    batch_chunk_size: Annotated[int, Field(ge=1, le=10_000)] = Field(
        100, description="Label Studio tasks per Celery message"
    )
    batch_max_attempts: Annotated[int, Field(ge=1, le=1000)] = Field(
        30,
        description="runs of a chunk (with backoff up to `BATCH_RETRY_MAX_DELAY`) before its open tasks are "
        "marked failed",
    )
    batch_retry_max_delay: Annotated[float, Field(ge=1)] = Field(
        60.0,
        description="the longest wait between two runs of a chunk with open tasks (backoff 1, 2, 4 … s, jittered)",
    )
    job_queued_chunks: Annotated[int, Field(ge=1, le=1000)] = Field(
        2,
        description="chunk messages each running job keeps in the queue, times its priority; each one a worker "
        "takes is replaced by the job's next, so the workers share their windows among the jobs running (a small "
        "job waits behind a few chunks of each other job, not behind all of them)",
    )
    batch_max_usd: Annotated[float, Field(ge=0)] = Field(
        0.0,
        description="what one batch job may spend on the LLM, at `LLM_PRICES` (`llm-backend batch --max-usd` sets "
        "it per job): a job about to exceed it pauses with the reason in its status until it is resumed with a "
        "higher budget (`llm-backend jobs resume ID --max-usd X`); `0` = no cap",
    )
    batch_claim_seconds: Annotated[int, Field(ge=3)] = Field(
        30,
        description="how long a task stays claimed by a worker that stopped answering (claims are renewed while "
        "it works)",
    )
    worker_drain_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        20.0,
        description="how long a worker sent SIGTERM (docker stop, Kubernetes, KEDA) waits for its LLM calls in flight "
        "to answer and their predictions to be pushed before it exits; what it has not started is handed to the "
        "other workers at once. Keep it below the time the platform waits before SIGKILL (Kubernetes' "
        "`terminationGracePeriodSeconds`, 30 s by default; compose's `stop_grace_period`)",
    )
    chunk_time_limit: Annotated[int, Field(ge=10)] = Field(
        900, description="seconds one chunk may run (soft limit; the hard limit is 60 s more); an overrun is retried"
    )
    job_ttl: Annotated[int, Field(ge=60)] = Field(
        7 * 24 * 3600, description="seconds job records and the exactly-once ledger are kept"
    )
    job_stall_seconds: Annotated[float, Field(ge=5)] = Field(
        1200.0,
        description="a job with unfinished chunks and no progress for this long gets them sent again (a lost "
        "message; keep it above `CHUNK_TIME_LIMIT`)",
    )
    handover_grace: Annotated[float, Field(ge=0)] = Field(
        10.0,
        description="seconds Label Studio (or a worker) may take to store a prediction it was handed before the "
        "backend checks whether it did (recovery after a crash mid-push; the answer to a task opened meanwhile)",
    )
    push_target_seconds: Annotated[float, Field(gt=0)] = Field(
        10.0,
        description="seconds one `import/predictions` call to Label Studio should take: the pusher sizes its calls "
        "(between `PUSH_MIN_PREDICTIONS` and `PUSH_MAX_PREDICTIONS`) from what the project's last calls cost",
    )
    push_timeout_min: Annotated[float, Field(gt=0)] = Field(
        60.0,
        description="the shortest read timeout of a push to Label Studio; each call gets four times what the "
        "project's last calls predict it costs, between this and `PUSH_TIMEOUT_MAX`",
    )
    push_timeout_max: Annotated[float, Field(gt=0)] = Field(
        900.0,
        description="the longest read timeout of a push; a push that times out is not sent again before the "
        "backend has read back from Label Studio which of its predictions landed",
    )
    push_min_predictions: Annotated[int, Field(ge=1, le=100_000)] = Field(
        100,
        description="the fewest predictions a call is sized for (a job's last call may carry fewer): Label Studio's "
        "work per call grows with the project, so smaller calls would cost nearly as much each",
    )
    push_max_predictions: Annotated[int, Field(ge=1, le=100_000)] = Field(
        5000,
        description="the most predictions in one `import/predictions` call: 5,000 are about 1.5 MB of JSON, far "
        "below what Label Studio accepts (250 MB, its `DATA_UPLOAD_MAX_MEMORY_SIZE`), and enough that a large "
        "project's per-call work is shared by many (docs/operating.md)",
    )
    push_backlog_limit: Annotated[int, Field(ge=1)] = Field(
        10_000,
        description="predictions of a project waiting to be pushed above which a worker's chunks stop asking the "
        "LLM (until the pusher catches up): two calls' worth, so a slow Label Studio bounds what waits in Redis",
    )
    push_max_interval: Annotated[float, Field(gt=0, le=3600)] = Field(
        8.0,
        description="the longest a prediction waits for the next push while a job runs (pushes wait as long as the "
        "last call took, at least a second, at most this): how often new predictions appear for annotators",
    )
    push_lock_seconds: Annotated[float, Field(ge=3, le=3600)] = Field(
        30.0,
        description="seconds after which a pusher that died leaves its projects to another worker's; it renews "
        "its lock every third of this, so shorter hands projects over sooner but lets a process stalled that long "
        "(swapping, a paused container) lose them",
    )
    push_patience: Annotated[float, Field(gt=0)] = Field(
        120.0,
        description="seconds a chunk's predictions may wait to be pushed while its project's pusher lands nothing "
        "(Label Studio away) before the chunk runs again; while calls land it keeps waiting",
    )
    stream_silence: Annotated[float, Field(ge=10)] = Field(
        900.0,
        description="a job still taking its tasks (`llm-backend batch` adds them page by page as it reads them from "
        "Label Studio) that gets none for this many seconds is failed: the command adding them stopped. Keep it "
        "above the longest read of a page of tasks from Label Studio",
    )
    watchdog_recent_jobs: Annotated[int, Field(ge=1, le=100_000)] = Field(
        500,
        description="the latest jobs each worker's watchdog looks through for chunks whose worker stopped, Batch API "
        "polls overdue and stalled jobs (a few Redis reads each, every third of `BATCH_CLAIM_SECONDS`): a live job "
        "with more than this many jobs started after it is not looked at, so keep it above the jobs started while "
        "one runs",
    )
    metrics_recent_jobs: Annotated[int, Field(ge=1, le=100_000)] = Field(
        1000,
        description="the latest jobs `/metrics` counts by state and sums the tasks still to predict over (the "
        "backlog an autoscaler reads), read at each scrape",
    )
    job_errors_kept: Annotated[int, Field(ge=1, le=100_000)] = Field(
        100,
        description="a job's latest task errors kept in its status (`llm-backend jobs show`, `GET /jobs/<id>`); "
        "older ones count in `failed` only, so a job failing every task keeps a small record",
    )
    opened_task_wait: Annotated[float, Field(gt=0, le=60)] = Field(
        15.0,
        description="a task opened in the labeling screen while a batch job predicts it waits this long for the "
        "job's answer (so the LLM is asked once); after that it gets none and the job pushes it",
    )
    broker_visibility_timeout: Annotated[int, Field(ge=5)] = Field(
        3600, description="seconds after which a message taken by a worker that died is delivered again"
    )
    batch_confirm_usd: Annotated[float, Field(ge=0)] | None = Field(
        None,
        description="`llm-backend batch` asks before starting a job whose estimated cost is above this many USD "
        "(or unknown), and refuses without a terminal unless given `--yes`; so does `llm-backend improve` for a "
        'run (`POST /improvements` unless its body says `"confirm": true`); unset: never asks',
    )
    teacher_model: str | None = Field(
        None,
        description="the model `llm-backend improve` asks for a revised prompt (through the project's provider and "
        "endpoint); a model the request names must be this one, the project's or in `ALLOWED_MODELS`; unset: the "
        "project's model",
    )
    batch_api: BatchApiMode = Field("off", description=BATCH_API_HELP, json_schema_extra=section("Batch API"))
    batch_api_min_tasks: Annotated[int, Field(ge=1)] = Field(
        1000, description="with `BATCH_API=auto`: the smallest job (tasks to ask the LLM about) sent through it"
    )
    batch_api_max_requests: Annotated[int, Field(ge=1, le=50_000)] = Field(
        50_000,
        description="requests per Batch API input file (the provider takes at most 50,000, and 100 MB); a larger "
        "job is split into several batches",
    )
    batch_api_poll_first: Annotated[float, Field(gt=0)] = Field(
        10.0, description="seconds after submitting a job's batches before their state is first looked at"
    )
    batch_api_poll_max: Annotated[float, Field(gt=0)] = Field(
        300.0,
        description="the longest wait between two looks at a job's batches (the wait doubles from "
        "`BATCH_API_POLL_FIRST` up to this); no worker is busy while waiting",
    )
    max_request_bytes: Annotated[int, Field(ge=1024)] = Field(
        200 * 1024 * 1024,
        description="larger request bodies are refused with 413",
        json_schema_extra=section("Limits"),
    )
    max_tasks_per_request: Annotated[int, Field(ge=1)] = Field(
        100_000,
        description="a `/predict` or import webhook with more tasks is refused with 413 and nothing is stored (Label "
        "Studio sends every selected task of Retrieve Predictions in one request: select at most this many)",
    )
    max_active_jobs_per_project: Annotated[int, Field(ge=1)] = Field(
        5,
        description="queued or running batch jobs a project may have at once; one more is refused with 429 until "
        "one finishes or is cancelled (`POST /jobs/<id>/cancel?project=<id>`)",
    )
    project_daily_usd: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description="what one project may spend on the LLM per UTC day, at `LLM_PRICES`; once reached, "
        "interactive requests and new jobs get 429 and a running job's remaining tasks fail, until 00:00 UTC "
        "(calls to a model without a price are not counted); unset: no limit",
    )
    evaluation_concurrency: Annotated[int, Field(ge=1)] = Field(
        2,
        description="`POST /evaluations` (and `POST /improvements`) running at once per API process; one more is "
        "refused with 429",
    )
    max_image_bytes: Annotated[int, Field(ge=1024)] = Field(
        20 * 1024 * 1024, description="larger images are refused for that task"
    )
    max_label_config_bytes: Annotated[int, Field(ge=1024)] = Field(
        1024 * 1024, description="larger labeling configs are refused"
    )
    label_config_cache_bytes: Annotated[int, Field(ge=0)] = Field(
        2 * 1024 * 1024,
        description="parsed labeling configs kept per process, counted in bytes of config text (a parsed config "
        "takes up to about 50 times its text in memory); `0` parses every time",
    )

    @field_validator(
        "allowed_llm_endpoints",
        "allowed_models",
        "allowed_private_hosts",
        "allowed_hosts",
        "allowed_origins",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return json.loads(value) if value.startswith("[") else [part.strip() for part in value.split(",")]
        return value

    @field_validator(
        "allowed_llm_endpoints", "allowed_models", "allowed_private_hosts", "allowed_hosts", "allowed_origins"
    )
    @classmethod
    def _drop_blanks(cls, value: list[str]) -> list[str]:
        return [item for item in value if item]

    @field_validator("label_selection_k")
    @classmethod
    def _k_within_threshold(cls, value: int, info: ValidationInfo) -> int:
        threshold = info.data.get("label_selection_threshold")
        if threshold is not None and value > threshold:
            raise ValueError(
                f"must be at most LABEL_SELECTION_THRESHOLD ({threshold}): a narrowed label set is smaller"
            )
        return value

    @field_validator("push_max_predictions")
    @classmethod
    def _max_above_min(cls, value: int, info: ValidationInfo) -> int:
        smallest = info.data.get("push_min_predictions")
        if smallest is not None and value < smallest:
            raise ValueError(f"must be at least PUSH_MIN_PREDICTIONS ({smallest})")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("default_prompt")
    @classmethod
    def _read_prompt_file(cls, value: str | None) -> str | None:
        """The reference accepts the prompt itself or a path to a file holding it."""
        if value and os.path.isfile(value):
            with open(value, encoding="utf-8") as handle:
                return handle.read().strip()
        return value

    @cached_property
    def prices(self) -> dict[str, Price]:
        """USD per million input and output tokens: the built-in table with LLM_PRICES over it."""
        return DEFAULT_PRICES | self.llm_prices

    @cached_property
    def operator_llm_origins(self) -> frozenset[str]:
        """The operator's LLM endpoints, the only ones projects may use and ``OPENAI_API_KEY`` may go to: those it
        configured, and ALLOWED_LLM_ENDPOINTS.  Of the default addresses only api.openai.com counts, and only for
        OPENAI_PROVIDER=openai; Ollama's default port is whatever happens to listen there."""
        configured = [
            self.openai_base_url or (DEFAULT_OPENAI_ENDPOINT if self.openai_provider == "openai" else None),
            self.azure_resource_endpoint,
            self.ollama_endpoint if "ollama_endpoint" in self.model_fields_set else None,
            *self.allowed_llm_endpoints,
        ]
        return frozenset(filter(None, map(origin, configured)))

    @cached_property
    def defaults(self) -> ProjectConfig:
        return self.for_project(ExtraParams())

    def for_project(self, extra: ExtraParams) -> ProjectConfig:
        """Merge a project's extra params over the environment's defaults; ConfigError when they ask for more than
        the operator allows."""
        llm = LLMOptions(
            provider=extra.provider or self.openai_provider,
            model=extra.model or self.openai_model,
            temperature=self.temperature if extra.temperature is None else extra.temperature,
            num_responses=extra.num_responses or self.num_responses,
            api_key=extra.api_key,
            base_url=extra.base_url or self.openai_base_url,
            azure_endpoint=extra.azure_endpoint or self.azure_resource_endpoint,
            azure_deployment=extra.azure_deployment or self.azure_deployment_name,
            azure_api_version=extra.azure_api_version or self.azure_api_version,
            ollama_endpoint=extra.ollama_endpoint or self.ollama_endpoint,
            timeout=self.llm_timeout,
            max_retries=self.llm_max_retries,
        )
        self._check_endpoints(extra, llm)
        self._check_model_and_answers(extra)
        if extra.api_key is None:
            llm = llm.model_copy(update={"api_key": self._operator_key_for(llm)})
        use_internal = (
            self.use_internal_prompt_template
            if extra.use_internal_prompt_template is None
            else extra.use_internal_prompt_template
        )
        prompt = PromptOptions(
            prompt_prefix=self.prompt_prefix,
            use_internal_template=use_internal,
            template=extra.prompt_template or self.prompt_template,
            default_prompt=extra.default_prompt or self.default_prompt,
        )
        return ProjectConfig(
            llm=llm,
            prompt=prompt,
            output_mode=extra.output_mode or self.output_mode,
            batch_api=extra.batch_api or self.batch_api,
            few_shot=FewShotOptions(
                k=self.few_shot_examples if extra.few_shot_examples is None else extra.few_shot_examples,
                strategy=extra.few_shot_strategy or self.few_shot_strategy,
                embeddings_model=self.similarity_embeddings_model,
            ),
            label_selection=LabelSelection(
                threshold=self.label_selection_threshold,
                k=self.label_selection_k,
                embeddings_model=self.similarity_embeddings_model,
            ),
            vision_box_format=extra.vision_box_format or self.vision_box_format,
            priority=extra.priority or 1,
        )

    def _check_endpoints(self, extra: ExtraParams, llm: LLMOptions) -> None:
        """Where a project's prompts and task texts go is the operator's decision, whoever's key pays: an endpoint
        the project names, or the one a provider it switches to would use, must be one of the operator's."""
        for key in ("base_url", "azure_endpoint", "ollama_endpoint"):
            endpoint = getattr(extra, key)
            if endpoint and origin(endpoint) not in self.operator_llm_origins:
                raise ConfigError(
                    f"extra_params.{key}: the endpoint {endpoint} is not used: projects' data goes only to the LLM "
                    "endpoints this backend's operator configured, with or without a project's own api_key; the "
                    "operator may add it to ALLOWED_LLM_ENDPOINTS"
                )
        if extra.provider and extra.provider != self.openai_provider:
            endpoint = _reached(llm)
            if origin(endpoint) not in self.operator_llm_origins:
                raise ConfigError(
                    f"extra_params.provider={extra.provider!r} is not used: the operator has not configured that "
                    f"provider's endpoint ({endpoint or 'none'}); the operator may set "
                    f"{_ENDPOINT_SETTING[extra.provider]} (or add an endpoint to ALLOWED_LLM_ENDPOINTS)"
                )

    def _check_model_and_answers(self, extra: ExtraParams) -> None:
        """Which model answers and how many answers a call asks for set the bill: the operator bounds both."""
        defaults = {"model": self.openai_model, "azure_deployment": self.azure_deployment_name or self.openai_model}
        for key, default in defaults.items():
            chosen = getattr(extra, key)
            if chosen and chosen != default and chosen not in self.allowed_models and "*" not in self.allowed_models:
                allowed = ", ".join(dict.fromkeys([default, *self.allowed_models]))
                raise ConfigError(
                    f"extra_params.{key}={chosen!r} is not allowed: this backend's operator allows {allowed}; the "
                    "operator may add it to ALLOWED_MODELS"
                )
        cap = self.max_num_responses or self.num_responses
        if extra.num_responses and extra.num_responses > cap:
            raise ConfigError(
                f"extra_params.num_responses={extra.num_responses} is over this backend's cap of {cap} answers per "
                "task; the operator may raise MAX_NUM_RESPONSES (default: NUM_RESPONSES)"
            )

    def _operator_key_for(self, llm: LLMOptions) -> SecretStr | None:
        """OPENAI_API_KEY for the operator's endpoints (``_check_endpoints`` allows no other); none for its own
        provider at a default address it did not configure (Ollama's, which needs no key)."""
        endpoint = _reached(llm)
        return self.openai_api_key if endpoint is None or origin(endpoint) in self.operator_llm_origins else None


def _reached(llm: LLMOptions) -> str | None:
    """The endpoint the calls reach: the openai client's default without a base_url."""
    return llm.endpoint or (DEFAULT_OPENAI_ENDPOINT if llm.provider == "openai" else None)


_ENDPOINT_SETTING = {"openai": "OPENAI_BASE_URL", "azure": "AZURE_RESOURCE_ENDPOINT", "ollama": "OLLAMA_ENDPOINT"}
_SECRET_FIELDS = {"openai_api_key", "basic_auth_pass", "label_studio_api_key", "api_key"}


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line naming each offending setting, its value (unless secret) and what it accepts."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        name = f"{prefix}{field}" if prefix else field.upper()
        if error["type"] == "extra_forbidden":
            parts.append(f"{name}: unknown key")
            continue
        shown = "" if field in _SECRET_FIELDS or "input" not in error else f"={error['input']!r}"
        parts.append(f"{name}{shown}: {error['msg']}")
    return "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment, turning pydantic's multi-line report into one ConfigError line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {describe_validation_error(exc)}") from None


def setting_default(name: str) -> Any:
    """A setting's default (``name`` as the field is called), for what is built without the settings (tests,
    tools): the value is written once, in its field, never again by hand."""
    return Settings.model_fields[name].default
