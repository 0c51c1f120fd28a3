"""From the model's messages to one prediction, however well the model kept to the output mode.

1. Each message's answer object is taken where the mode puts it (``output_modes.read_answer``): the
   content in json_schema mode, the forced call's arguments in tools mode, a JSON object written in the
   prose in text mode.
2. An answer object that names the config's controls is checked field by field against the answer's
   schema.  A valid value is kept as it is; an invalid one is read again as prose (a label written
   ``"Sarcastic."`` is still Sarcastic), except spans, whose items ``answer_regions`` checks one by one.
3. A message without such an object (the model ignored the schema, or wrote prose in text mode) is read
   as prose with the readers of ``answers.py``; output TextAreas hold its text, as in the reference.
4. ``answer_regions.regions_from_answers`` makes the regions and drops, with the reason, what Label
   Studio would refuse.

Only when nothing at all can be read and no output TextArea can hold the text does the task fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from shared.domain.answer_regions import Filled, prose_answers, regions_from_answers
from shared.domain.answers import read_labels, read_number, read_rating, read_taxonomy
from shared.domain.labeling import (
    CHOICES,
    NUMBER,
    PAIRWISE,
    PARAGRAPH_SPANS,
    RATING,
    SPANS,
    TAXONOMY,
    TEXT,
    LabelingSpec,
    Output,
)
from shared.domain.output_modes import AnswerFormatError, read_answer
from shared.domain.schema import answer_schema, choice_list, path_separator, taxonomy_nodes

PAIRWISE_SIDES = ("left", "right")


@dataclass(frozen=True)
class ProseReading:
    """What a free-text answer says, shaped like the answer schema (control name → value), and how surely
    each label was read (control name → label → confidence, on the scale of ``answers.py``)."""

    values: dict[str, Any] = field(default_factory=dict)
    confidences: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Reading:
    """One prediction's regions, and how its answer was read where it was not as asked (for the log)."""

    filled: Filled
    notes: list[str]


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def read_prose(
    spec: LabelingSpec,
    text: str,
    data: Mapping[str, Any],
    threshold: float,
    outputs: Iterable[Output] | None = None,
) -> ProseReading:
    """Labels, Taxonomy paths, ratings, numbers and Pairwise sides named in ``text``, for ``outputs`` (all
    of the spec's by default).  Spans are not read from prose: without quotes they cannot be placed."""
    reading = ProseReading()
    for output in spec.outputs if outputs is None else outputs:
        options = output.options_for(data)
        value: Any = None
        if output.kind == CHOICES:
            labels = choice_list(output, options)
            matches = read_labels(text, labels, multiple=output.multiple, threshold=threshold, name=output.name)
            if matches:
                value = [match.label for match in matches]
                reading.confidences[output.name] = {match.label: match.confidence for match in matches}
        elif output.kind == TAXONOMY:
            shown = [path for path, _stored in taxonomy_nodes(output, options)]
            paths = read_taxonomy(text, shown, multiple=output.multiple, threshold=threshold)
            value = [path_separator(output).join(path) for path in paths] or None
        elif output.kind == RATING:
            value = read_rating(text, int(output.control.attr.get("maxRating", 5)))
        elif output.kind == NUMBER:
            attr = output.control.attr
            value = read_number(text, _float(attr.get("min")), _float(attr.get("max")))
        elif output.kind == PAIRWISE:
            sides = dict(zip(output.control.to_name[:2], PAIRWISE_SIDES, strict=False))
            sides.update({side: side for side in PAIRWISE_SIDES})
            matches = read_labels(text, list(sides), multiple=False, threshold=threshold, name=output.name)
            if matches:
                value = sides[matches[0].label]
                reading.confidences[output.name] = {value: matches[0].confidence}
        if value is not None:
            reading.values[output.name] = value
    return reading


def _schema_error(node: dict[str, Any], value: Any) -> str | None:
    error = best_match(Draft202012Validator(node).iter_errors(value))
    return None if error is None else error.message[:200]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _checked(
    spec: LabelingSpec, answer: Mapping[str, Any], data: Mapping[str, Any], threshold: float, notes: list[str]
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The answer's fields that fit the schema, the others read again as prose (see the module's docstring)."""
    properties = answer_schema(spec, data)["properties"]
    kept: dict[str, Any] = {}
    confidences: dict[str, dict[str, float]] = {}
    for output in spec.outputs:
        if output.name not in answer:
            continue
        value = answer[output.name]
        node = properties.get(output.name)  # none for dynamic options the task lacks: answer_regions says so
        error = _schema_error(node, value) if node is not None else None
        if error is None or output.kind in (SPANS, PARAGRAPH_SPANS):
            kept[output.name] = value
        elif output.kind == TEXT:
            kept[output.name] = _as_text(value)
            notes.append(f"{output.name}: {error}; kept as text")
        else:
            reread = read_prose(spec, _as_text(value), data, threshold, [output])
            found = reread.values.get(output.name)
            notes.append(f"{output.name}: {error}; read as prose: {found!r}")
            if found is not None:
                kept[output.name] = found
                confidences.update(reread.confidences)
    return kept, confidences


def _answer_object(
    spec: LabelingSpec, message: Mapping[str, Any], mode: str, notes: list[str]
) -> dict[str, Any] | None:
    """The message's answer object when it names a control of the config; None to read the message as prose."""
    try:
        found = read_answer(message, mode)
    except AnswerFormatError as exc:
        notes.append(f"{exc}; read as prose")
        return None
    if found is None:
        return None
    if not any(output.name in found for output in spec.outputs):
        if mode != "text":
            notes.append(f"the answer object names no control of the config ({sorted(found)[:10]}); read as prose")
        return None
    return found


def read_prediction(
    spec: LabelingSpec,
    data: Mapping[str, Any],
    prompt: str | None,
    messages: Sequence[Mapping[str, Any]],
    mode: str,
    threshold: float,
) -> Reading:
    """The regions of one prediction from the model's messages (one per choice) in a resolved output mode.

    Raises AnswerFormatError when nothing can be read and no output TextArea can hold the text.
    """
    notes: list[str] = []
    texts = [str(message.get("content") or "") for message in messages]
    objects = [
        _answer_object(spec, message, mode, notes if index == 0 else []) for index, message in enumerate(messages)
    ]
    first = objects[0] if objects else None
    if first is None:
        reading = read_prose(spec, texts[0] if texts else "", data, threshold)
        if not reading.values and not spec.text_outputs:
            shown = repr(texts[0][:200]) if texts else "no answer"
            raise AnswerFormatError(f"nothing in the model's answer fits this labeling config: {shown}")
        answers = prose_answers(spec, texts, reading.values)
        confidences = reading.confidences
    else:
        kept, confidences = _checked(spec, first, data, threshold, notes)
        prose_of = [{tag.name: text for tag in spec.text_outputs} for text in texts]
        others = [found if found is not None else prose for found, prose in zip(objects[1:], prose_of[1:], strict=True)]
        answers = [kept, *others]
    filled = regions_from_answers(spec, answers, data, prompt, confidences)
    return Reading(filled, notes)
