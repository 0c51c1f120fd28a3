"""Model versions: derived from everything that shapes a prediction, never counted."""

from __future__ import annotations

from typing import Any

from shared.domain.config import ProjectConfig
from shared.domain.digests import digest, llm_fields
from shared.domain.errors import LabelingConfigError
from shared.domain.labeling.schema import answer_instructions, answer_schema
from shared.domain.labeling.spec import parse_labeling_config
from shared.domain.prompts.label_selection import selects

# The generation of the message layout (prompts.py) and of how answers become regions: bump it when
# that code changes what the model is sent or what a prediction holds, and every project predicts again.
# The answer's schema and instructions need no bump: they are part of the version themselves.
ANSWER_FORMAT_VERSION = "structured-2"


def answer_format(config: ProjectConfig, label_config: str) -> dict[str, Any] | None:
    """What the model is told about its answer for this config: the schema (without a task's dynamic
    options), the instructions and, where large label sets are narrowed per task, the rule (threshold, k).
    None for a config that cannot be parsed (it predicts nothing)."""
    # The size limit was enforced when the request was accepted; here it must not depend on the cache.
    size = len(label_config.encode("utf-8")) if isinstance(label_config, str) else 0
    try:
        spec = parse_labeling_config(label_config, config.prompt.prompt_prefix, max_bytes=size)
    except LabelingConfigError:
        return None
    box_format = config.vision_box_format
    told: dict[str, Any] = {
        "schema": answer_schema(spec, {}, box_format),
        "instructions": answer_instructions(spec, box_format),
    }
    if selects(spec, config.label_selection):  # only where it narrows: other configs keep their versions
        told["label_selection"] = config.label_selection.model_dump(exclude_none=True)  # BM25: as before
    return told


def model_version(
    config: ProjectConfig, label_config: str, project_prompt: str | None, few_shot_pool: str | None = None
) -> str:
    """A version that changes whenever anything that shapes the predictions does.

    Derived rather than counted, so every API and worker process agrees on it without coordination,
    and Label Studio's "skip tasks that already hold this version" is exactly right.  It covers the
    output mode and the answer's schema, so changing either (or the code that builds the schema)
    predicts again.

    With few-shot examples on, it also covers their number, the strategy and ``few_shot_pool``, the digest of
    the examples the pool holds (``few_shot.examples_digest``): new or changed ground truth makes a new version
    once the pool is read again.  With them off (the default) the version is what it was without them.
    """
    decisive = {
        **llm_fields(config.llm),
        "prompt_options": config.prompt.model_dump(),
        "label_config": label_config,
        "prompt": project_prompt,
        "output_mode": config.output_mode,
        "answer_format": answer_format(config, label_config),
        "answer_format_version": ANSWER_FORMAT_VERSION,
    }
    if config.few_shot.k:
        few_shot: dict[str, str | int | None] = {
            "k": config.few_shot.k,
            "strategy": config.few_shot.strategy,
            "pool": few_shot_pool,
        }
        if config.few_shot.embeddings_model and config.few_shot.strategy != "fixed":  # fixed ranks nothing
            few_shot["embeddings_model"] = config.few_shot.embeddings_model
        decisive["few_shot"] = few_shot
    return f"{config.llm.model}-{digest(decisive)[:10]}"
