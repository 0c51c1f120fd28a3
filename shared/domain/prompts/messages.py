"""From a task and a prompt to the chat messages the LLM receives.

Two modes, as in the reference backend: the internal template (``PROMPT_TEMPLATE`` with ``{text}``
and ``{prompt}``) wraps the annotator's prompt; the user template mode treats the prompt itself
(or ``DEFAULT_PROMPT``) as the template, filled from the task's data fields and ``{labels}``
(rendered as the reference does, the Python list: ``['sports', 'politics']``).
Placeholders are plain names only: ``{text.__class__}`` and the like are refused, since prompts
come from annotators.

``{text}`` is the task's input: the prompt's object alone, or, when the config shows several
objects, each of them under its name.

Messages are laid out for providers' prefix caching (an identical prefix of 1,024+ tokens is billed
at a fraction): ``compose_messages`` puts what is the same for every task in a system message (the
instructions about the answer and, in internal mode, the template up to its first task-data
placeholder, which holds the prompt) and the task's own data last, in the user message.  The
default template (``Task Directive: {prompt}\n\nSource Text: {text}``) is the reference's two parts
in the other order, for this; a template that puts the data first (the reference's default,
``REFERENCE_PROMPT_TEMPLATE``) is kept as written, and only the instructions can then be cached.
In user template mode the prompt is kept as written, in the user message.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.domain.config import PromptOptions
from shared.domain.errors import TaskError
from shared.domain.labeling.spec import CHOICES, PARAGRAPH_SPANS, LabelingSpec, TaskObject

IMAGE_PLACEHOLDER_TEXT = "(the attached image)"
_SAME_FOR_EVERY_TASK = frozenset({"prompt", "labels"})  # placeholders that do not depend on the task

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


def _render(template: str, values: Mapping[str, str], what: str) -> list[tuple[str, str | None]]:
    """The template's pieces, each with the placeholder it came from (None for literal text)."""
    try:
        parsed = list(_formatter.parse(template))
    except ValueError as exc:
        raise TaskError(f"{what} has an unmatched brace ({exc}); write {{{{ and }}}} for literal braces") from None
    pieces: list[tuple[str, str | None]] = []
    for literal, field, _spec, _conversion in parsed:
        pieces.append((literal, None))
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
        pieces.append((values[field], field))
    return pieces


def fill_template(template: str, values: Mapping[str, str], what: str) -> str:
    """``str.format`` restricted to plain names, with errors that say what to fix."""
    return "".join(text for text, _field in _render(template, values, what))


def split_template(template: str, values: Mapping[str, str], what: str) -> tuple[str, str]:
    """The filled template cut before its first placeholder that depends on the task's data:
    (the part that is the same for every task, the rest).

    The words that introduce that placeholder on its line ("Source Text: ") go with the data.
    """
    pieces = _render(template, values, what)
    depends_on_task = [index for index, (_, field) in enumerate(pieces) if field and field not in _SAME_FOR_EVERY_TASK]
    if not depends_on_task:
        return "".join(text for text, _ in pieces), ""
    cut = depends_on_task[0]
    before = "".join(text for text, _ in pieces[: cut - 1])
    introduction = pieces[cut - 1][0]  # the literal text right before the placeholder
    line_start = introduction.rfind("\n") + 1
    fixed = before + introduction[:line_start]
    return fixed, introduction[line_start:] + "".join(text for text, _ in pieces[cut:])


def _object_text(obj: TaskObject, value: Any, numbered: bool) -> str:
    if obj.kind == "Paragraphs":
        return _dialogue(value, obj.tag.attr, numbered)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _dialogue(value: Any, attr: Mapping[str, str], numbered: bool = False) -> str:
    name_key, text_key = attr.get("nameKey", "author"), attr.get("textKey", "text")
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise TaskError("Paragraphs data must be a list of objects")
    lines = (f"{item.get(name_key, '')}: {item.get(text_key, '')}".strip() for item in value)
    # ParagraphLabels answers name the utterance by this number
    return "\n".join(f"[{index}] {line}" if numbered else line for index, line in enumerate(lines))


def object_texts(spec: LabelingSpec, data: Mapping[str, Any]) -> dict[str, str]:
    """Each object's content as the model reads it, by object name, in config order.

    The prompt's object must have its data (TaskError otherwise); another object whose field the task
    lacks is left out.  Paragraphs become a "speaker: line" dialogue (numbered when ParagraphLabels
    quote from it), Images a mention (the image itself travels as a message part).
    """
    numbered = {output.target.name for output in spec.outputs if output.kind == PARAGRAPH_SPANS}
    images = image_mentions(spec, data)
    source = spec.source
    texts: dict[str, str] = {}
    for obj in spec.objects:
        if obj.kind == "Image" and obj.name in images:
            texts[obj.name] = images[obj.name]
            continue
        if obj.field is None:
            texts[obj.name] = _object_text(obj, obj.tag.value, obj.name in numbered)
            continue
        if data.get(obj.field) is None:
            if obj.name == source.name:
                raise TaskError(f'task data has no field "{obj.field}" (read by <{obj.kind} name="{obj.name}">)')
            continue
        texts[obj.name] = _object_text(obj, data[obj.field], obj.name in numbered)
    return texts


def task_text(spec: LabelingSpec, data: Mapping[str, Any]) -> str:
    """``{text}``: the prompt's object's content, or every object's under its name when there are several."""
    texts = object_texts(spec, data)
    if len(texts) == 1:
        return next(iter(texts.values()))
    kinds = {obj.name: obj.kind for obj in spec.objects}
    return "\n\n".join(f"### {name} ({kinds[name]})\n{text}" for name, text in texts.items())


def task_labels(spec: LabelingSpec, data: Mapping[str, Any]) -> list[str]:
    """``{labels}``: every label the Choices offer, in config order, including this task's dynamic options (and
    its candidates, where a large label set was narrowed)."""
    seen = dict.fromkeys(spec.labels)
    for output in spec.outputs:
        if output.kind == CHOICES and output.per_task:
            seen.update(dict.fromkeys(option.shown for option in output.options_for(data)))
    return list(seen)


def _template_values(spec: LabelingSpec, data: Mapping[str, Any]) -> dict[str, str]:
    values = {
        key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for key, value in data.items()
        if isinstance(key, str)
    }
    texts = object_texts(spec, data)
    values.update({obj.field: texts[obj.name] for obj in spec.objects if obj.field and obj.name in texts})
    values["labels"] = str(task_labels(spec, data))
    return values


def _user_message(text: str, image_urls: Sequence[str]) -> dict[str, Any]:
    if not image_urls:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts.extend({"type": "image_url", "image_url": {"url": url}} for url in image_urls)
    return {"role": "user", "content": parts}


def compose_messages(
    spec: LabelingSpec,
    options: PromptOptions,
    prompt: str,
    data: Mapping[str, Any],
    instructions: str | None = None,
    task_notes: str | None = None,
    image_urls: Sequence[str] = (),
    fixed_examples: str | None = None,
    task_examples: str | None = None,
) -> list[dict[str, Any]]:
    """The messages for one task, laid out for prefix caching (see the module's docstring).

    ``instructions`` (about the answer, the same for every task of the config) open the system
    message; ``task_notes`` (this task's dynamic options) follow its data; images are parts of the
    user message.  Few-shot examples that are the same for every task (``fixed_examples``) close the system
    message, where the prefix cache serves them; those chosen for this task (``task_examples``) open the user
    message, before its data.  Without instructions, examples and with nothing task-independent before the
    data, this is the reference's single user message.
    """
    values = _template_values(spec, data)
    if options.use_internal_template:
        values.update(text=task_text(spec, data), prompt=prompt)
        fixed, task = split_template(options.template, values, "PROMPT_TEMPLATE")
        if fixed.strip():
            fixed, task = fixed.rstrip(), task.lstrip()
    else:
        values.setdefault("text", task_text(spec, data))
        fixed, task = "", fill_template(prompt, values, "the prompt")
    system = "\n\n".join(part for part in (fixed.strip() and fixed, instructions, fixed_examples) if part)
    if task_notes:
        task = f"{task}\n\n{task_notes}"
    if task_examples:
        task = f"{task_examples}\n\n{task}"
    messages = [{"role": "system", "content": system}] if system else []
    messages.append(_user_message(task, image_urls))
    return messages


def image_mentions(spec: LabelingSpec, data: Mapping[str, Any]) -> dict[str, str]:
    """How the text names each Image object's pictures: "(the attached image)" when the task has one,
    else by their numbers among the attached parts, so the model can tell which picture is which object."""
    counts = [(obj.name, len(value) if isinstance(value, list) else 1) for obj, value in task_images(spec, data)]
    if sum(count for _name, count in counts) <= 1:
        return {name: IMAGE_PLACEHOLDER_TEXT for name, _count in counts}
    mentions, first = {}, 1
    for name, count in counts:
        last = first + count - 1
        mentions[name] = f"(attached image {first})" if count == 1 else f"(attached images {first} to {last})"
        first = last + 1
    return mentions


def task_images(spec: LabelingSpec, data: Mapping[str, Any]) -> list[tuple[TaskObject, Any]]:
    """The Image objects of this task with their data (a URL, or a list for ``valueList``), in config
    order: their pictures go to the model beside the text, in this order, as ``image_urls``."""
    return [
        (obj, data[obj.field] if obj.field else obj.tag.value)
        for obj in spec.objects
        if obj.kind == "Image" and (obj.field is None or data.get(obj.field) is not None)
    ]
