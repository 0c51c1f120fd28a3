"""A task's text as a report quotes it beside a disagreement: what the model read, on one line, cut short.

The text is the one the prompt's ``{text}`` receives (``prompts.messages.task_text``: the objects' contents, dialogues
as ``speaker: line``, images as a mention), so a reviewer sees what the model saw.  A report quotes up to a
hundred tasks per control and keeps them in the run's record, hence the bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.domain.errors import TaskError
from shared.domain.evaluation.scorers import shorten
from shared.domain.labeling.spec import LabelingSpec
from shared.domain.prompts.messages import task_text

EXCERPT_CHARS = 240


def task_excerpt(spec: LabelingSpec, data: Mapping[str, Any], limit: int = EXCERPT_CHARS) -> str:
    """The task's text with its whitespace collapsed, at most ``limit`` characters; empty when it has none."""
    try:
        text = task_text(spec, data)
    except TaskError:  # the data lacks the prompt's field: nothing the model could read either
        return ""
    return shorten(" ".join(text.split()), limit)
