"""The JSON schema of the model's answer, in OpenAI's strict subset, and the words that explain it.

The answer is one JSON object with a property per filled control, named as the control.  Choices,
Rating, Number, TextArea and Pairwise start from the SDK's ``to_json_schema()``, rewritten by
``strict.to_strict``.  Two kinds get a shape of their own, because the SDK's would make the model do
what it does badly:

- spans (``Labels`` on Text, ``ParagraphLabels``, ``HyperTextLabels``): the model quotes each entity as
  written, with its label (and a start hint, or the utterance index), and ``spans.py`` finds the offsets
  (``html_spans.py`` the XPaths of a HyperText page's); models are good at quoting and bad at counting
  characters;
- Taxonomy: one string per chosen path ("Bias / Gender"), from the list of valid paths, instead of
  arrays of any labels in any order;
- shapes on an image (``RectangleLabels``, ``KeyPointLabels``, ``PolygonLabels``, ``BrushLabels`` as polygons,
  unlabelled ``Rectangle``/``Polygon`` with the labels of a ``Labels``): each with its label (and, under a
  per-region ``TextArea``, its transcription), in the coordinate convention the vision model was trained on
  (``geometry.BoxFormat``), which ``geometry.py`` converts to Label Studio's percentages; the SDK's asks for those
  percentages (or a mask's RLE bytes), which no model is taught.

Dynamic options (``<Choices value="$options">``) come from the task's data, so the schema of such a
config depends on the task; everything else about it is fixed by the labeling config.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from shared.domain.answers.geometry import BOX_FORMATS, DEFAULT_BOX_FORMAT, BoxFormat
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
from shared.domain.labeling.strict import LARGE_ENUM, MAX_ENUM_VALUES, MAX_LARGE_ENUM_STRING, nullable, to_strict

DEFAULT_PATH_SEPARATOR = " / "
SPAN_TEXT_RULE = "the exact text as written in the source (same characters, same case), not paraphrased"
TRANSCRIPTION_RULE = "the text written in that region of the image, transcribed as written"


def path_separator(output: Output) -> str:
    return output.control.attr.get("pathSeparator") or DEFAULT_PATH_SEPARATOR


def selectable_paths(output: Output, options: Sequence[Option]) -> list[tuple[Option, ...]]:
    """The selectable nodes of a Taxonomy, each as the options on its path (with ``leafsOnly``, leaves only)."""
    leafs_only = output.control.attr.get("leafsOnly") == "true"
    paths: list[tuple[Option, ...]] = []

    def visit(children: Sequence[Option], above: tuple[Option, ...]) -> None:
        for node in children:
            path = (*above, node)
            if node.children:
                visit(node.children, path)
            if not node.children or not leafs_only:
                paths.append(path)

    visit(options, ())
    return paths


def taxonomy_nodes(output: Output, options: Sequence[Option]) -> list[tuple[list[str], list[str]]]:
    """The selectable nodes of a Taxonomy, each as (its path as shown, its path as Label Studio stores it)."""
    return [
        ([node.shown for node in path], [node.label for node in path]) for path in selectable_paths(output, options)
    ]


def taxonomy_paths(output: Output, options: Sequence[Option]) -> dict[str, list[str]]:
    """The selectable paths as the model names them ("A / B") → the label path Label Studio stores."""
    separator = path_separator(output)
    paths: dict[str, list[str]] = {}
    for shown, stored in taxonomy_nodes(output, options):
        paths.setdefault(separator.join(shown), stored)
    return paths


def _shown(options: Sequence[Option]) -> list[str]:
    return list(dict.fromkeys(option.shown for option in options))


def choice_list(output: Output, options: Sequence[Option]) -> list[str]:
    """What the model picks from: the labels as shown, or the Taxonomy's paths."""
    return list(taxonomy_paths(output, options)) if output.kind == TAXONOMY else _shown(options)


def _span_item(output: Output, labels: list[str]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if output.kind == PARAGRAPH_SPANS:
        properties["paragraph"] = {
            "type": "integer",
            "minimum": 0,
            "description": f"the number of the utterance in {output.target.name} that holds the text",
        }
    properties["text"] = {"type": "string", "description": SPAN_TEXT_RULE}
    properties["label"] = {"type": "string", "enum": labels}
    if output.kind == SPANS:
        properties["start"] = nullable(
            {"type": "integer", "minimum": 0, "description": "the character offset where the text starts, if known"}
        )
    return {"type": "object", "properties": properties, "required": list(properties)}


def _coordinates(box_format: BoxFormat, count: int) -> dict[str, Any]:
    """``count`` numbers on the convention's scale (0 up to its full scale; pixels have no bound known here)."""
    number: dict[str, Any] = {"type": "number", "minimum": 0}
    if box_format.full_scale is not None:
        number["maximum"] = box_format.full_scale
    return {"type": "array", "items": number, "minItems": count, "maxItems": count}


def _shape_item(output: Output, labels: list[str], box_format: BoxFormat) -> dict[str, Any]:
    properties: dict[str, Any] = {"label": {"type": "string", "enum": labels}}
    if output.target.image_list:
        properties["image"] = {"type": "integer", "minimum": 1, "description": _picture_number(output)}
    if output.kind == RECTANGLES:
        properties[box_format.box_key] = _coordinates(box_format, 4)
    elif output.kind == KEYPOINTS:
        properties[box_format.point_key] = _coordinates(box_format, 2)
    else:
        properties["points"] = {"type": "array", "items": _coordinates(box_format, 2), "minItems": 3}
    if output.transcribed_by is not None:
        properties["text"] = {"type": "string", "description": TRANSCRIPTION_RULE}
    return {"type": "object", "properties": properties, "required": list(properties)}


def _picture_number(output: Output) -> str:
    return f"which of the pictures of `{output.target.name}` it is on, counted from 1 among its own pictures in order"


def shape_words(output: Output, box_format: BoxFormat) -> str:
    """How one shape of this output is written, in words (its keys, order and unit)."""
    fmt = box_format
    picture = ", image" if output.target.image_list else ""
    text = ", text" if output.transcribed_by is not None else ""
    if output.kind == RECTANGLES:
        words = f"{{label{picture}, {fmt.box_key}{text}}}: {fmt.box_key} is {fmt.box_order} {fmt.unit}"
    elif output.kind == KEYPOINTS:
        words = f"{{label{picture}, {fmt.point_key}}}: {fmt.point_key} is {fmt.point_order} {fmt.unit}"
    else:
        words = (
            f"{{label{picture}, points{text}}}: points are the outline's corners in order, each {fmt.point_order} "
            f"{fmt.unit}"
        )
    if text:
        words += f"; text is {TRANSCRIPTION_RULE}"
    return f"{words}; image is {_picture_number(output)}" if picture else words


def _shared_with(output: Output) -> str:
    """For an unlabelled shape whose labels another shape tool on the image shares (OCR's Rectangle and Polygon):
    which of the two a region goes to, so the model does not mark the same region twice."""
    if output.shares_labels_with is None:
        return ""
    if output.kind == POLYGONS:
        return f"; only regions a box fits badly (slanted or curved), the others go to `{output.shares_labels_with}`"
    return f"; regions a box fits well, slanted or curved ones go to `{output.shares_labels_with}` instead"


def output_schema(output: Output, options: Sequence[Option], box_format: BoxFormat) -> dict[str, Any]:
    """One control's part of the answer schema (before the strict rewrite)."""
    control = output.control
    if output.kind in SPAN_KINDS:
        schema: dict[str, Any] = {"type": "array", "items": _span_item(output, _shown(options))}
    elif output.kind in SHAPES:
        schema = {"type": "array", "items": _shape_item(output, _shown(options), box_format)}
    elif output.kind == TAXONOMY:
        schema = {"type": "array", "items": {"type": "string", "enum": choice_list(output, options)}}
    elif output.kind == CHOICES:
        schema = control.model_copy(update={"labels": _shown(options)}).to_json_schema()
    else:
        schema = control.to_json_schema()
    if output.kind == RATING:
        schema["minimum"] = 1
    schema["description"] = describe(output, options, box_format, list_labels=False)
    return schema


def describe(output: Output, options: Sequence[Option], box_format: BoxFormat, list_labels: bool = True) -> str:
    """What to put in one field, in words: the instructions' line, and (without the label lists, which
    the enum already holds) the schema's description."""
    target = f"`{output.target.name}`"
    if not list_labels:
        labels = "the enum's values"
    elif output.narrowed_from:
        labels = "the options listed with the task"
    elif options or output.dynamic_field is None:
        labels = str(choice_list(output, options))
    else:
        labels = "the options listed with the task"
    kind = output.kind
    if kind == CHOICES:
        if output.multiple:
            return f"the labels that apply to {target}: any of {labels} (an empty list if none applies)"
        return f"the label that applies to {target}: one of {labels}, or null if none applies"
    if kind == TAXONOMY:
        return f"the categories that apply to {target}, each a path from {labels}"
    if kind == SPANS:
        return (
            f"every mention in {target} to label, each as {{text, label, start}}: text is {SPAN_TEXT_RULE}; "
            f"label one of {labels}; start the character offset if known, else null; list a repeated "
            "mention once per occurrence"
        )
    if kind == HTML_SPANS:
        return (
            f"every mention in the text of the HTML page {target} to label (its words as displayed, not its tags), "
            f"each as {{text, label}}: text is {SPAN_TEXT_RULE}; label one of {labels}; list a repeated mention "
            "once per occurrence"
        )
    if kind == PARAGRAPH_SPANS:
        return (
            f"every mention in the utterances of {target} to label, each as {{paragraph, text, label}}: "
            f"paragraph is the utterance's number, text is {SPAN_TEXT_RULE}, within that utterance; "
            f"label one of {labels}"
        )
    if kind in SHAPES:
        shape = {RECTANGLES: "box", KEYPOINTS: "point", POLYGONS: "polygon", MASKS: "polygon around its area"}[kind]
        things = "region of text" if output.transcribed_by is not None else "object"
        return (
            f"every {things} in the image {target} to mark, each as a {shape} {shape_words(output, box_format)}; "
            f"label one of {labels} (an empty list if there is none){_shared_with(output)}"
        )
    if kind == RATING:
        return f"a rating of {target} from 1 to {int(output.control.attr.get('maxRating', 5))}, or null"
    if kind == NUMBER:
        low, high = output.control.attr.get("min"), output.control.attr.get("max")
        bounds = f" between {low} and {high}" if low is not None and high is not None else ""
        return f"a number for {target}{bounds}, or null"
    if kind == TEXT:
        return f"your text answer about {target}"
    if kind == PAIRWISE:
        left, right = output.control.to_name[:2]
        return f'which is better: "left" for `{left}` or "right" for `{right}`, or null'
    raise ValueError(f"unknown output kind {kind!r}")


def _enum_nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list):
            yield node
        for value in node.values():
            yield from _enum_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _enum_nodes(value)


def _too_big(enum: list[Any]) -> bool:
    return len(enum) > LARGE_ENUM and sum(len(str(value)) for value in enum) > MAX_LARGE_ENUM_STRING


def _fit_enum_limits(schema: dict[str, Any]) -> None:
    """Drop the largest enums (the field becomes a plain string) until the schema is within OpenAI's limits.

    A safety net: label selection (``label_selection.py``) keeps each large control within them, but several
    controls below its threshold may still add up to more.  The labels stay in the description and the
    instructions, and an answer naming something else is refused when it becomes regions.
    """
    nodes = sorted(_enum_nodes(schema), key=lambda node: len(node["enum"]), reverse=True)
    total = sum(len(node["enum"]) for node in nodes)
    for node in nodes:
        if total <= MAX_ENUM_VALUES and not _too_big(node["enum"]):
            continue
        total -= len(node.pop("enum"))


def answer_schema(spec: LabelingSpec, data: Mapping[str, Any], box_format: str = DEFAULT_BOX_FORMAT) -> dict[str, Any]:
    """The strict JSON schema of the answer for one task (the task matters only for dynamic options), with
    shapes on images in the project's ``box_format`` (``VISION_BOX_FORMAT``).

    Outputs whose dynamic options this task does not provide are left out.  Without dynamic options it is the
    config's alone, built once (every task asks for it twice): the same dict each time, not to be changed.
    """
    if spec.dynamic:
        return _answer_schema(spec, data, BOX_FORMATS[box_format])
    key = f"answer_schema:{box_format}"
    if key not in spec.derived:
        spec.derived[key] = _answer_schema(spec, data, BOX_FORMATS[box_format])
    schema: dict[str, Any] = spec.derived[key]
    return schema


def _answer_schema(spec: LabelingSpec, data: Mapping[str, Any], box_format: BoxFormat) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for output in spec.outputs:
        options = output.options_for(data)
        if output.kind in OPTION_KINDS and not options:
            continue
        properties[output.name] = output_schema(output, options, box_format)
    # A control the config marks required="true" must be answered; any other may stay empty (null).
    required = [name for name in properties if spec.output(name).required]
    schema = to_strict({"type": "object", "properties": properties, "required": required})
    _fit_enum_limits(schema)
    return schema


def answer_instructions(spec: LabelingSpec, box_format: str = DEFAULT_BOX_FORMAT) -> str:
    """The system message's part about the answer: the same for every task of a labeling config."""
    lines = ["Answer with one JSON object that has these fields:"]
    shapes = BOX_FORMATS[box_format]
    lines.extend(f'- "{output.name}": {describe(output, output.options, shapes)}' for output in spec.outputs)
    return "\n".join(lines)


def task_instructions(spec: LabelingSpec, data: Mapping[str, Any]) -> str | None:
    """The options of this task for dynamic-option (and narrowed) controls, to go with the task's data."""
    lines = [
        f'Options for "{output.name}": {choice_list(output, output.options_for(data))}'
        for output in spec.outputs
        if output.per_task and output.options_for(data)
    ]
    return "\n".join(lines) or None
