"""From a task and a prompt to the chat messages the LLM receives.

Two modes, as in the reference backend: the internal template (``PROMPT_TEMPLATE`` with ``{text}``
and ``{prompt}``) wraps the annotator's prompt; the user template mode treats the prompt itself
(or ``DEFAULT_PROMPT``) as the template, filled from the task's data fields and ``{labels}``.
Placeholders are plain names only: ``{text.__class__}`` and the like are refused, since prompts
come from annotators.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Mapping
from typing import Any

from shared.domain.config import PromptOptions
from shared.domain.errors import TaskError
from shared.domain.labeling import LabelingSpec

IMAGE_PLACEHOLDER_TEXT = "(the attached image)"

_formatter = string.Formatter()


def prompt_from_regions(regions: Iterable[Any] | None, prompt_name: str) -> str | None:
    """The text typed into the prompt TextArea, from a context or an annotation's ``result``."""
    lines: list[str] = []
    for region in regions or []:
        if not isinstance(region, Mapping) or region.get("from_name") != prompt_name:
            continue
        value = region.get("value")
        texts = value.get("text") if isinstance(value, Mapping) else None
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(texts, list):
            lines.extend(str(text) for text in texts if text is not None)
    prompt = "\n".join(lines).strip()
    return prompt or None


def choose_prompt(context_prompt: str | None, stored_prompt: str | None, options: PromptOptions) -> str:
    """The annotator's prompt wins, then the project's last submitted prompt, then DEFAULT_PROMPT."""
    if context_prompt:
        return context_prompt
    if stored_prompt:
        return stored_prompt
    if options.default_prompt:
        if options.use_internal_template:
            raise TaskError(
                "no prompt: DEFAULT_PROMPT is set but is only used with USE_INTERNAL_PROMPT_TEMPLATE=0, "
                "and no annotator has submitted a prompt for this project yet"
            )
        return options.default_prompt
    raise TaskError(
        f'no prompt: type one into the "{options.prompt_prefix}" TextArea and press Shift+Enter, submit an '
        "annotation with a prompt, or set DEFAULT_PROMPT (with USE_INTERNAL_PROMPT_TEMPLATE=0)"
    )


def fill_template(template: str, values: Mapping[str, str], what: str) -> str:
    """``str.format`` restricted to plain names, with errors that say what to fix."""
    try:
        parsed = list(_formatter.parse(template))
    except ValueError as exc:
        raise TaskError(f"{what} has an unmatched brace ({exc}); write {{{{ and }}}} for literal braces") from None
    out: list[str] = []
    for literal, field, _spec, _conversion in parsed:
        out.append(literal)
        if field is None:
            continue
        if not field.isidentifier():
            raise TaskError(
                f"{what} has an unsupported placeholder {{{field}}}: use plain names such as {{text}}; "
                "write {{ and }} for literal braces"
            )
        if field not in values:
            raise TaskError(
                f"{what} uses {{{field}}} but the task has no such field (available: {', '.join(sorted(values))})"
            )
        out.append(values[field])
    return "".join(out)


def source_text(spec: LabelingSpec, data: Mapping[str, Any]) -> str:
    """The task's input as text: Paragraphs become a "speaker: line" dialogue, Images a mention."""
    field = spec.source_field
    if field not in data or data[field] is None:
        raise TaskError(f'task data has no field "{field}" (read by <{spec.source.tag} name="{spec.source.name}">)')
    value = data[field]
    if spec.source.tag == "Image":
        return IMAGE_PLACEHOLDER_TEXT
    if spec.source.tag == "Paragraphs":
        return _dialogue(value, spec.source.attr)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _dialogue(value: Any, attr: Mapping[str, str]) -> str:
    name_key, text_key = attr.get("nameKey", "author"), attr.get("textKey", "text")
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise TaskError("Paragraphs data must be a list of objects")
    return "\n".join(f"{item.get(name_key, '')}: {item.get(text_key, '')}".strip() for item in value)


def render_prompt(spec: LabelingSpec, options: PromptOptions, prompt: str, data: Mapping[str, Any]) -> str:
    """The text of the user message for one task."""
    text = source_text(spec, data)
    values = {
        key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for key, value in data.items()
        if isinstance(key, str)
    }
    values[spec.source_field] = text
    values["labels"] = ", ".join(spec.labels)
    if options.use_internal_template:
        values.update(text=text, prompt=prompt)
        return fill_template(options.template, values, "PROMPT_TEMPLATE")
    values.setdefault("text", text)
    return fill_template(prompt, values, "the prompt")


def build_messages(user_text: str, image_url: str | None = None) -> list[dict]:
    """One user message; an image travels beside the text as a vision ``image_url`` part."""
    if image_url is None:
        return [{"role": "user", "content": user_text}]
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": user_text},
                {"type": "image_url", "image_url": {"url": image_url}},
            ],
        }
    ]
