"""Model versions: derived from everything that shapes a prediction, never counted."""

from __future__ import annotations

import hashlib
import json

from shared.domain.config import ProjectConfig


def model_version(config: ProjectConfig, label_config: str, project_prompt: str | None) -> str:
    """A version that changes whenever anything that shapes the predictions does.

    Derived rather than counted, so every API and worker process agrees on it without coordination,
    and Label Studio's "skip tasks that already hold this version" is exactly right.
    """
    llm = config.llm
    decisive = {
        "provider": llm.provider,
        "endpoint": llm.endpoint,
        "model": llm.model,
        "deployment": llm.azure_deployment,
        "temperature": llm.temperature,
        "n": llm.num_responses,
        "prompt_options": config.prompt.model_dump(),
        "label_config": label_config,
        "prompt": project_prompt,
    }
    digest = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:10]
    return f"{llm.model}-{digest}"
