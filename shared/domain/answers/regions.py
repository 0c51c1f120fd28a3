"""From the model's answer objects to Label Studio regions, each checked by the SDK.

An answer is a dict shaped by ``schema.answer_schema``: control name → value.  The first answer
gives the labels, spans, ratings and numbers; output TextAreas hold the texts of every answer (one
per ``NUM_RESPONSES``), as in text mode.  Regions are built with the control's own ``label(...)``
and then checked one by one with ``LabelInterface.validate_region``: a region the SDK refuses, or a
value that names no label of the config, is dropped and its reason returned for the caller to log;
the other regions are kept.  The prompt TextArea echoes the prompt, as it always did.

Two SDK quirks are handled here: ``create_regions``/``label`` keep no ``text`` on a span (it is added
to the value, as Label Studio's editor stores it), and the SDK builds a Pairwise region the way Label
Studio's editor does (``to_name`` is the Pairwise tag itself) but its own ``validate_region`` refuses
that ``to_name``; so a Pairwise region is checked as if it pointed to its first object and sent as
the editor writes it.

Shapes on an image arrive in the project's coordinate convention and become Label Studio's percentages
(``geometry.py``); a region also carries the image's size in pixels (``original_width``/``original_height``,
as the editor stores them) where the backend read it from the image, and on an ``<Image valueList>`` the
picture it is on (``item_index``, from 0, as the editor stores it; the model counts them from 1).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.domain.answers.geometry import (
    BOX_FORMATS,
    DEFAULT_BOX_FORMAT,
    BoxFormat,
    ImageSize,
    ShapeError,
    keypoint_width,
)
from shared.domain.answers.html_spans import PageText
from shared.domain.answers.masks import polygon_mask_rle
from shared.domain.answers.score import prediction_score
from shared.domain.answers.spans import UtteranceSpans, locate
from shared.domain.labeling.schema import choice_list, taxonomy_paths
from shared.domain.labeling.sdk_tags import SdkControl
from shared.domain.labeling.spec import (
    CHOICES,
    HTML_SPANS,
    KEYPOINTS,
    MASKS,
    NUMBER,
    OPTION_KINDS,
    PAIRWISE,
    PARAGRAPH_SPANS,
    POLYGONS,
    RATING,
    RECTANGLES,
    SHAPES,
    SPAN_KINDS,
    SPANS,
    TAXONOMY,
    TEXT,
    LabelingSpec,
    Option,
    Output,
)

LABEL_KINDS = (CHOICES, *SPAN_KINDS, TAXONOMY, PAIRWISE, *SHAPES)

V = TypeVar("V")


@dataclass
class Filled:
    """The regions of one prediction, what was dropped and why, and what scores it."""

    regions: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)  # one per chosen label: how well it matched
    labels: list[str] = field(default_factory=list)  # the chosen labels as the model wrote them
    label_controls: list[str] = field(default_factory=list)  # one per chosen label: the control that chose it
    asks_for_labels: bool = False

    def score(self, tokens: Sequence[Any] | None = None) -> float:
        """The prediction's score, from the answer's token log-probabilities when given (see score.py)."""
        return prediction_score(self.confidences, self.asks_for_labels, tokens, self.labels)

    def scored_regions(self, tokens: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """The regions, each with its own control's ``score`` when labels were chosen by several controls.

        A control's score follows the prediction's rules on that control's labels alone, so an evaluation
        calibrates each control by how sure the model was of it, not of the whole answer.  With one such
        control the prediction's score says it all and the regions are left as they are.
        """
        controls = list(dict.fromkeys(self.label_controls))
        if len(controls) < 2:
            return self.regions
        scores = {}
        for name in controls:
            mine = [index for index, owner in enumerate(self.label_controls) if owner == name]
            labels, confidences = [self.labels[i] for i in mine], [self.confidences[i] for i in mine]
            scores[name] = prediction_score(confidences, True, tokens, labels)
        return [
            {**region, "score": scores[region["from_name"]]} if region.get("from_name") in scores else region
            for region in self.regions
        ]


class _Refused(ValueError):
    """A value of the answer that cannot become a region; the message says why."""


def _region(output: Output, **value: Any) -> dict[str, Any]:
    region: dict[str, Any] = json.loads(output.control.label(**value).to_json())
    return region


def _match(written: object, choices: Mapping[str, V]) -> V:
    """What Label Studio stores for the label the model wrote: exact, else ignoring case and spacing."""
    if not isinstance(written, str):
        raise _Refused(f"expected a label, got {written!r}")
    if written in choices:
        return choices[written]
    folded = " ".join(written.split()).casefold()
    for shown, stored in choices.items():
        if " ".join(shown.split()).casefold() == folded:
            return stored
    known = list(choices)
    listed = str(known) if len(known) <= 20 else f"{str(known[:20])[:-1]}, … ({len(known)} in all)]"
    raise _Refused(f"{written!r} is not one of {listed}")


def _quote(item: Mapping[str, Any], in_html: bool) -> str:
    """The quote to look for: in a page's text, character references are its characters (a model quoting
    the page's source may write ``AT&amp;T`` for ``AT&T``)."""
    quote = str(item.get("text") or "")
    return html.unescape(quote) if in_html else quote


def _companion(region: dict[str, Any], control: SdkControl, kind: str, **value: Any) -> dict[str, Any]:
    """A result of ``control`` on the same region (same id and shape), as Label Studio's editor stores an OCR
    region's labels and transcription: the shape's value with the control's own key added."""
    geometry = {key: field for key, field in region["value"].items() if key != region["type"]}
    return {**region, "from_name": control.name, "type": kind, "value": {**geometry, **value}}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _label_map(options: Sequence[Option]) -> dict[str, str]:
    mapping = {option.shown: option.label for option in options}
    mapping.update({option.label: option.label for option in options if option.label not in mapping})
    return mapping


class _Builder:
    def __init__(
        self,
        spec: LabelingSpec,
        data: Mapping[str, Any],
        filled: Filled,
        confidences: Mapping[str, Mapping[str, float]],
        box_format: BoxFormat,
        image_sizes: Mapping[str, Sequence[ImageSize | None]],
    ) -> None:
        self.spec = spec
        self.data = data
        self.filled = filled
        self.confidences = confidences
        self.box_format = box_format
        self.image_sizes = image_sizes

    def drop(self, output: Output, reason: str) -> None:
        self.filled.dropped.append(f"{output.name}: {reason}")

    def keep(
        self,
        output: Output,
        region: dict[str, Any],
        labels: Sequence[str] = (),
        confidence: float | None = None,
        companions: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Keep ``region`` (and the ``companions`` sharing its id: its labels, its transcription) if the SDK
        accepts them for this config, each checked beside the others as ``validate_prediction`` does.

        Each label scores ``confidence`` if given, else how surely it was read (1.0 for a structured answer).
        """
        checked = dict(region)
        if output.kind == PAIRWISE:
            checked["to_name"] = output.control.to_name[0]
        group = [checked, *companions]
        errors = [
            error
            for part in group
            for error in self.spec.interface.validate_region(
                part, return_errors=True, context={"result": group, "region": part}
            )
        ]
        if errors:
            self.drop(output, "; ".join(errors))
            return
        self.filled.regions.extend([region, *companions])
        self.filled.labels.extend(labels)
        self.filled.label_controls.extend(output.name for _ in labels)
        read = self.confidences.get(output.name, {})
        self.filled.confidences.extend(read.get(label, 1.0) if confidence is None else confidence for label in labels)

    # --- one function per output kind: the first answer's value → regions ----------------------------
    def choices(self, output: Output, value: Any) -> None:
        mapping = _label_map(output.options_for(self.data))
        written = [item for item in _as_list(value) if item is not None]
        if not output.multiple:
            written = written[:1]
        chosen: dict[str, str] = {}
        for item in written:
            try:
                chosen.setdefault(_match(item, mapping), item)
            except _Refused as exc:
                self.drop(output, str(exc))
        if chosen:
            self.keep(output, _region(output, label=list(chosen)), labels=list(chosen.values()))

    def taxonomy(self, output: Output, value: Any) -> None:
        options = output.options_for(self.data)
        paths = taxonomy_paths(output, options)
        stored = {tuple(path): path for path in paths.values()}
        chosen: dict[tuple[str, ...], str] = {}
        for item in _as_list(value):
            if isinstance(item, list) and tuple(item) in stored:  # the SDK's own form: a list of labels
                chosen.setdefault(tuple(item), " / ".join(item))
                continue
            try:
                chosen.setdefault(tuple(_match(item, paths)), item)
            except _Refused as exc:
                self.drop(output, str(exc))
        if chosen:
            region = _region(output, taxonomy=[list(path) for path in chosen])
            self.keep(output, region, labels=list(chosen.values()))

    def spans(self, output: Output, value: Any) -> None:
        """Labels on Text, and on HyperText (``HTML_SPANS``): each quote placed in the text, the region at its
        offsets; in a page's text, with the XPath range and global offsets Label Studio's editor stores."""
        source = self.data.get(output.target.field or "")
        if not isinstance(source, str):
            self.drop(output, f"task data field {output.target.field!r} holds no text to find spans in")
            return
        page = PageText(source, output.target.tag.attr.get("inline") == "true") if output.kind == HTML_SPANS else None
        text = source if page is None else page.text
        mapping = _label_map(output.options_for(self.data))
        items = []
        for item in _as_list(value):
            try:
                if not isinstance(item, Mapping):
                    raise _Refused(f"expected {{text, label, start}}, got {item!r}")
                hint = item.get("start")
                items.append((item, _match(item.get("label"), mapping), hint if type(hint) is int else None))
            except _Refused as exc:
                self.drop(output, str(exc))
        placed = locate(text, [(_quote(item, page is not None), hint) for item, _label, hint in items])
        for (item, label, _hint), span in zip(items, placed, strict=True):
            where = None if span is None or page is None else page.xpath_range(span.start, span.end)
            if span is None or (page is not None and where is None):
                quote = item.get("text")
                self.drop(output, f"{quote!r} is not in the text of {output.target.name} (or not that often)")
                continue
            region = _region(output, label=[label], start=span.start, end=span.end)
            region["value"].update(where or {})
            region["value"]["text"] = span.text
            self.keep(output, region, labels=[item["label"]], confidence=span.confidence)

    def paragraph_spans(self, output: Output, value: Any) -> None:
        utterances = self.data.get(output.target.field or "")
        if not isinstance(utterances, list):
            self.drop(output, f"task data field {output.target.field!r} holds no list of utterances")
            return
        text_key = output.target.tag.attr.get("textKey", "text")
        texts = [str(item.get(text_key, "")) if isinstance(item, Mapping) else "" for item in utterances]
        dialogue = UtteranceSpans(texts)
        mapping = _label_map(output.options_for(self.data))
        for item in _as_list(value):
            try:
                if not isinstance(item, Mapping):
                    raise _Refused(f"expected {{paragraph, text, label}}, got {item!r}")
                label = _match(item.get("label"), mapping)
            except _Refused as exc:
                self.drop(output, str(exc))
                continue
            quote, said = str(item.get("text") or ""), item.get("paragraph")
            found = dialogue.place(quote, said if type(said) is int else None)  # the named utterance first
            if found is None:
                self.drop(output, f"{quote!r} is in no utterance of {output.target.name} (or not that often)")
                continue
            index, span = found
            region = _region(
                output, label=[label], start=str(index), end=str(index), startOffset=span.start, endOffset=span.end
            )
            region["value"]["text"] = span.text
            self.keep(output, region, labels=[item["label"]], confidence=span.confidence)

    def picture(self, output: Output, item: Mapping[str, Any]) -> int | None:
        """The index (from 0) of the picture of an ``<Image valueList>`` a shape is on; None on a single image."""
        if not output.target.image_list:
            return None
        pictures = self.data.get(output.target.field or "")
        count = len(pictures) if isinstance(pictures, list) else 0
        number = item.get("image")
        if type(number) is not int or not 1 <= number <= count:
            raise _Refused(
                f"image must be the number of one of the {count} pictures of {output.target.name}, got {number!r}"
            )
        return number - 1

    def shapes(self, output: Output, value: Any) -> None:
        """Boxes, points, polygons or masks, each with its label (and transcription), from the project's convention."""
        sizes = self.image_sizes.get(output.target.name, ())
        mapping = _label_map(output.options_for(self.data))
        for item in _as_list(value):
            try:
                if not isinstance(item, Mapping):
                    raise _Refused(f"expected an object with a label and its coordinates, got {item!r}")
                label = _match(item.get("label"), mapping)
                index = self.picture(output, item)
                size = sizes[index or 0] if len(sizes) > (index or 0) else None
                where = self.geometry(output, item, size)
                text = item.get("text")
                if output.transcribed_by is not None and not (isinstance(text, str) and text.strip()):
                    raise _Refused(f"expected the region's text, got {text!r}")
            except (_Refused, ShapeError) as exc:
                self.drop(output, str(exc))
                continue
            region = _region(output, **({} if output.labels_from else {"label": [label]}), **where)
            if output.kind == KEYPOINTS:  # the editor needs the point's size; the SDK's value drops it
                region["value"]["width"] = keypoint_width(output.control.attr.get("strokeWidth"), size)
            if size is not None:
                region.update(original_width=size.width, original_height=size.height, image_rotation=0)
            if index is not None:
                region["item_index"] = index
            companions = []
            if output.labels_from is not None:
                companions.append(_companion(region, output.labels_from, "labels", labels=[label]))
            if output.transcribed_by is not None:
                companions.append(_companion(region, output.transcribed_by, "textarea", text=[text]))
            self.keep(output, region, labels=[item["label"]], companions=companions)

    def geometry(self, output: Output, item: Mapping[str, Any], size: ImageSize | None) -> dict[str, Any]:
        """One shape's value in Label Studio's form (a mask's RLE, drawn from its polygon at the picture's size)."""
        fmt = self.box_format
        if output.kind == RECTANGLES:
            return fmt.rectangle(item.get(fmt.box_key), size)
        if output.kind == KEYPOINTS:
            x, y = fmt.point(item.get(fmt.point_key), size)
            return {"x": x, "y": y}
        points = fmt.polygon(item.get("points"), size)
        if output.kind == MASKS:
            return {"format": "rle", "rle": polygon_mask_rle(points, size)}
        return {"points": points}

    def rating(self, output: Output, value: Any) -> None:
        top = int(output.control.attr.get("maxRating", 5))
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is not int or not 1 <= value <= top:
            self.drop(output, f"a rating must be a whole number from 1 to {top}, got {value!r}")
            return
        self.keep(output, _region(output, rating=value))

    def number(self, output: Output, value: Any) -> None:
        if type(value) not in (int, float):
            self.drop(output, f"expected a number, got {value!r}")
            return
        low, high = (output.control.attr.get(bound) for bound in ("min", "max"))
        if (low is not None and value < float(low)) or (high is not None and value > float(high)):
            self.drop(output, f"{value} is outside [{low}, {high}]")
            return
        self.keep(output, _region(output, number=value))

    def pairwise(self, output: Output, value: Any) -> None:
        if value not in ("left", "right"):
            self.drop(output, f'expected "left" or "right", got {value!r}')
            return
        self.keep(output, json.loads(output.control.label(value).to_json()), labels=[value])

    def text(self, output: Output, answers: Sequence[Mapping[str, Any]]) -> None:
        texts = [
            item
            for answer in answers
            for item in _as_list(answer.get(output.name))
            if isinstance(item, str) and item.strip()
        ]
        if texts:
            self.keep(output, _region(output, text=texts))


def _no_options(output: Output) -> str:
    if output.narrowed_from:
        return f"none of its {output.narrowed_from} labels shares a word with the task's text (label selection)"
    return f"the task has no options in {output.dynamic_field!r}"


def prose_answers(
    spec: LabelingSpec, texts: Sequence[str], read: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Text mode's answers in the shape ``regions_from_answers`` takes: each output TextArea holds every
    prose answer, and ``read`` (what was read out of the first answer's prose, shaped like the answer
    schema: control name → labels, spans …) joins the first."""
    answers: list[dict[str, Any]] = [{tag.name: text for tag in spec.text_outputs} for text in texts]
    if read:
        first = answers[0] if answers else {}
        answers[:1] = [{**read, **first}]
    return answers


def regions_from_answers(
    spec: LabelingSpec,
    answers: Sequence[Mapping[str, Any]],
    data: Mapping[str, Any],
    prompt: str | None,
    confidences: Mapping[str, Mapping[str, float]] | None = None,
    box_format: str = DEFAULT_BOX_FORMAT,
    image_sizes: Mapping[str, Sequence[ImageSize | None]] | None = None,
) -> Filled:
    """The regions of one prediction from its answers (see the module's docstring).

    ``confidences``: for labels read out of prose, how surely each was read (control name → label as it
    stands in the answer → confidence); they score the prediction when there are no logprobs.
    ``box_format``: the convention shapes on images were asked in; ``image_sizes``: the size in pixels of each
    picture of an Image object (by object name; None where it is unknown).
    """
    filled = Filled(asks_for_labels=any(output.kind in LABEL_KINDS for output in spec.outputs))
    builder = _Builder(spec, data, filled, confidences or {}, BOX_FORMATS[box_format], image_sizes or {})
    first = answers[0] if answers else {}
    for output in spec.outputs:
        if output.kind == TEXT:
            builder.text(output, answers)
            continue
        value = first.get(output.name)
        if value is None or value == []:
            continue
        if output.kind in OPTION_KINDS and not choice_list(output, output.options_for(data)):
            builder.drop(output, _no_options(output))
            continue
        handler = {
            CHOICES: builder.choices,
            TAXONOMY: builder.taxonomy,
            SPANS: builder.spans,
            HTML_SPANS: builder.spans,
            PARAGRAPH_SPANS: builder.paragraph_spans,
            RATING: builder.rating,
            NUMBER: builder.number,
            PAIRWISE: builder.pairwise,
            RECTANGLES: builder.shapes,
            KEYPOINTS: builder.shapes,
            POLYGONS: builder.shapes,
            MASKS: builder.shapes,
        }[output.kind]
        handler(output, value)
    if prompt:
        filled.regions.append(spec.region(spec.prompt, text=[prompt]))
    return filled
