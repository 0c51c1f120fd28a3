"""From the model's messages to one prediction, however well the model kept to the output mode.

1. Each message's answer object is taken where the mode puts it (``output_modes.read_answer``): the
   content in json_schema mode, the forced call's arguments in tools mode, a JSON object written in the
   prose in text mode.
2. An answer object that names the config's controls is checked field by field against the answer's
   schema.  A valid value is kept as it is; an invalid one is read again as prose (a label written
   ``"Sarcastic."`` is still Sarcastic), except spans and shapes, whose items ``regions`` checks one by one.
3. A message without such an object (the model ignored the schema, or wrote prose in text mode) is read
   as prose with the readers of ``prose.py``; output TextAreas hold its text, as in the reference.
4. ``regions.regions_from_answers`` makes the regions and drops, with the reason, what Label
   Studio would refuse.

A model that declines ("I cannot determine the sentiment", "None of these categories fit") gives a prediction,
not a failure: its controls stay empty, or hold the config's own none/other choice (``prose.read_labels``),
and ``Reading.abstention`` says so for the log and the metrics.  Only when nothing at all can be read, the answer
does not decline and no output TextArea can hold the text does the task fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from shared.domain.answers.geometry import DEFAULT_BOX_FORMAT, ImageSize
from shared.domain.answers.output_modes import AnswerFormatError, read_answer
from shared.domain.answers.prose import (
    declining_phrase,
    read_labels,
    read_number,
    read_rating,
    read_taxonomy,
    taxonomy_declines,
)
from shared.domain.answers.regions import Filled, prose_answers, regions_from_answers
from shared.domain.labeling.schema import answer_schema, choice_list, path_separator, taxonomy_nodes
from shared.domain.labeling.spec import (
    CHOICES,
    ITEM_KINDS,
    NUMBER,
    PAIRWISE,
    RATING,
    TAXONOMY,
    TEXT,
    LabelingSpec,
    Output,
)

PAIRWISE_SIDES = ("left", "right")


@dataclass(frozen=True)
class ProseReading:
    """What a free-text answer says, shaped like the answer schema (control name → value), and how surely
    each label was read (control name → label → confidence, on the scale of ``prose.py``)."""

    values: dict[str, Any] = field(default_factory=dict)
    confidences: dict[str, dict[str, float]] = field(default_factory=dict)
    none_chosen: set[str] = field(default_factory=set)  # controls given their none/other choice: the answer declined


EMPTY = "empty"  # an abstention's outcome for a control: left without a region
NONE_CHOICE = "none_choice"  # or given the config's own none/other choice


@dataclass(frozen=True)
class Abstention:
    """The model declined to answer: the words it declined with, and per control (name → (tag, outcome)) what
    the prediction holds instead: nothing (``EMPTY``) or the config's none/other choice (``NONE_CHOICE``)."""

    reason: str
    controls: dict[str, tuple[str, str]]


@dataclass(frozen=True)
class Reading:
    """One prediction's regions, how its answer was read where it was not as asked (for the log), and whether
    the model declined."""

    filled: Filled
    notes: list[str]
    abstention: Abstention | None = None


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
    of the spec's by default).  Spans and shapes are not read from prose: without quotes or coordinates they
    cannot be placed."""
    reading = ProseReading()
    for output in spec.outputs if outputs is None else outputs:
        options = output.options_for(data)
        value: Any = None
        if output.kind == CHOICES:
            labels = choice_list(output, options)
            synonyms = {option.shown: option.synonyms for option in options if option.synonyms}
            matches = read_labels(
                text, labels, multiple=output.multiple, threshold=threshold, name=output.name, synonyms=synonyms
            )
            if matches:
                value = [match.label for match in matches]
                reading.confidences[output.name] = {match.label: match.confidence for match in matches}
                if all(match.declined for match in matches):
                    reading.none_chosen.add(output.name)
        elif output.kind == TAXONOMY:
            shown = [path for path, _stored in taxonomy_nodes(output, options)]
            paths = read_taxonomy(text, shown, multiple=output.multiple, threshold=threshold)
            value = [path_separator(output).join(path) for path in paths] or None
            if value and taxonomy_declines(text, shown, threshold=threshold):
                reading.none_chosen.add(output.name)
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
    spec: LabelingSpec,
    answer: Mapping[str, Any],
    data: Mapping[str, Any],
    threshold: float,
    notes: list[str],
    box_format: str,
) -> tuple[ProseReading, dict[str, str]]:
    """The answer's fields that fit the schema, the others read again as prose (see the module's docstring),
    and the words with which such fields declined ("None of these"), by control name."""
    properties = answer_schema(spec, data, box_format)["properties"]
    checked = ProseReading()
    declined: dict[str, str] = {}
    for output in spec.outputs:
        if output.name not in answer:
            continue
        value = answer[output.name]
        node = properties.get(output.name)  # none for dynamic options the task lacks: answer_regions says so
        error = _schema_error(node, value) if node is not None else None
        if error is None or output.kind in ITEM_KINDS:
            checked.values[output.name] = value
        elif output.kind == TEXT:
            checked.values[output.name] = _as_text(value)
            notes.append(f"{output.name}: {error}; kept as text")
        else:
            reread = read_prose(spec, _as_text(value), data, threshold, [output])
            found = reread.values.get(output.name)
            notes.append(f"{output.name}: {error}; read as prose: {found!r}")
            if found is not None:
                checked.values[output.name] = found
                checked.confidences.update(reread.confidences)
                checked.none_chosen.update(reread.none_chosen)
            phrase = declining_phrase(_as_text(value)) if found is None or reread.none_chosen else None
            if phrase:
                declined[output.name] = phrase
    return checked, declined


STRUCTURED_DECLINE = "null for every control"  # how a structured answer declines: the schema's own empty answer
_UNSPOKEN: tuple[object, ...] = (None, [])  # a control's value that holds no answer: null, or an empty list


def _abstention(spec: LabelingSpec, read: ProseReading, reason: str | None) -> Abstention | None:
    """The abstention of a prose answer that declines (``reason``, its declining phrase) and holds nothing else,
    or None."""
    asked = [output for output in spec.outputs if output.kind != TEXT]
    if reason is None or any(
        read.values.get(output.name) not in _UNSPOKEN and output.name not in read.none_chosen for output in asked
    ):
        return None
    return _declined(reason, asked, read)


def _structured_abstention(
    spec: LabelingSpec, answer: Mapping[str, Any], read: ProseReading, declines: Mapping[str, str]
) -> Abstention | None:
    """The abstention of a structured answer that holds nothing but declines, or None.

    It declines with null (an empty list) for every control that picks something, the schema's own empty answer,
    or with a value that declines when read as prose ("None of these"); an empty list of spans or shapes is an
    answer (no entity in the text, no object in the image), and a value that neither fits nor declines (a rating
    of 9 out of 5) is no decline."""
    asked = [output for output in spec.outputs if output.kind != TEXT]
    picking = [output for output in asked if output.kind not in ITEM_KINDS]
    if not picking or any(
        read.values.get(output.name) not in _UNSPOKEN and output.name not in read.none_chosen for output in asked
    ):
        return None
    if not all(answer.get(output.name) in _UNSPOKEN or output.name in declines for output in picking):
        return None
    return _declined(next(iter(declines.values()), STRUCTURED_DECLINE), picking, read)


def _declined(reason: str, outputs: Sequence[Output], read: ProseReading) -> Abstention:
    """The abstention of these controls: each left empty, or given its none/other choice."""
    return Abstention(
        reason,
        {
            output.name: (output.control.tag, NONE_CHOICE if output.name in read.none_chosen else EMPTY)
            for output in outputs
        },
    )


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
    box_format: str = DEFAULT_BOX_FORMAT,
    image_sizes: Mapping[str, Sequence[ImageSize | None]] | None = None,
) -> Reading:
    """The regions of one prediction from the model's messages (one per choice) in a resolved output mode;
    shapes on images as asked in ``box_format``, converted with the sizes of each Image object's pictures (by
    object name) where known.

    Raises AnswerFormatError when nothing can be read, the answer does not decline and no output TextArea can
    hold the text.
    """
    notes: list[str] = []
    texts = [str(message.get("content") or "") for message in messages]
    objects = [
        _answer_object(spec, message, mode, notes if index == 0 else []) for index, message in enumerate(messages)
    ]
    first = objects[0] if objects else None
    if first is None:
        reading = read_prose(spec, texts[0] if texts else "", data, threshold)
        refused = messages[0].get("refusal") if messages and mode != "text" else None  # a structured mode's refusal
        reason = (declining_phrase(texts[0]) if texts else None) or (
            f"refused: {str(refused)[:200]}" if refused else None
        )
        abstention = _abstention(spec, reading, reason)
        if not reading.values and not spec.text_outputs and abstention is None:
            shown = repr(texts[0][:200]) if texts else "no answer"
            raise AnswerFormatError(f"nothing in the model's answer fits this labeling config: {shown}")
        answers = prose_answers(spec, texts, reading.values)
    else:
        reading, declines = _checked(spec, first, data, threshold, notes, box_format)
        abstention = _structured_abstention(spec, first, reading, declines)
        prose_of = [{tag.name: text for tag in spec.text_outputs} for text in texts]
        others = [found if found is not None else prose for found, prose in zip(objects[1:], prose_of[1:], strict=True)]
        answers = [reading.values, *others]
    filled = regions_from_answers(spec, answers, data, prompt, reading.confidences, box_format, image_sizes)
    return Reading(filled, notes, abstention)
