"""What a labeling config asks of the LLM: which TextArea holds the prompt, what the task shows, what it fills.

Parsing goes through ``label_studio_sdk.label_interface.LabelInterface`` so that regions are built the
way Label Studio itself expects them.  Every control that an LLM reading the task's text (or image) can
fill becomes an ``Output``; every other control is listed in ``unfilled`` with the reason, so a config
with, say, a RectangleLabels beside its Choices still works and says what it leaves to the annotator.
Configs repeat on every request, so parsed specs are cached, within a budget of config bytes: a parsed
config takes up to about 50 times its text in memory, and ``/setup`` takes configs from anyone.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree
from defusedxml import DefusedXmlException

from shared.domain.config import setting_default
from shared.domain.errors import LabelingConfigError
from shared.domain.labeling.sdk_tags import SdkControl, SdkInterface, SdkObject

SUPPORTED_OBJECTS = ("Text", "HyperText", "Paragraphs", "Image")

# Output kinds: what the model is asked for, and how its answer becomes a region.
CHOICES = "choices"
SPANS = "spans"  # Labels on Text: quoted entities
PARAGRAPH_SPANS = "paragraph_spans"  # ParagraphLabels on Paragraphs: quoted entities in one utterance
HTML_SPANS = "html_spans"  # HyperTextLabels (or Labels) on HyperText: quoted entities in the page's text
SPAN_KINDS = (SPANS, PARAGRAPH_SPANS, HTML_SPANS)
TAXONOMY = "taxonomy"
RATING = "rating"
NUMBER = "number"
TEXT = "text"  # an output TextArea
PAIRWISE = "pairwise"
RECTANGLES = "rectangles"  # RectangleLabels on Image: labelled boxes (shared.domain.answers.geometry)
KEYPOINTS = "keypoints"  # KeyPointLabels on Image: labelled points
POLYGONS = "polygons"  # PolygonLabels on Image: labelled outlines (also unlabelled Rectangle/Polygon + Labels)
MASKS = "masks"  # BrushLabels on Image: outlines, filled into a mask (shared.domain.answers.masks)
SHAPES = (RECTANGLES, KEYPOINTS, POLYGONS, MASKS)
# Kinds whose answer is a list of items, each checked on its own; an empty list says "none in this task".
ITEM_KINDS = (*SPAN_KINDS, *SHAPES)
# Kinds that pick from labels: the config's, or a task's (``value="$field"``).
OPTION_KINDS = (CHOICES, TAXONOMY, *SPAN_KINDS, *SHAPES)

_KIND_OF_TAG = {
    "Choices": CHOICES,
    "Taxonomy": TAXONOMY,
    "Rating": RATING,
    "Number": NUMBER,
    "TextArea": TEXT,
    "Pairwise": PAIRWISE,
}
_SHAPE_OF_TAG = {
    "RectangleLabels": RECTANGLES,
    "KeyPointLabels": KEYPOINTS,
    "PolygonLabels": POLYGONS,
    "BrushLabels": MASKS,
    "Rectangle": RECTANGLES,  # unlabelled: labelled by a <Labels> on the same Image (``Output.labels_from``)
    "Polygon": POLYGONS,
}
UNLABELLED_SHAPE_TAGS = ("Rectangle", "Polygon")
_OPTION_TAGS = ("Choice", "Label")
_GEOMETRY_TAGS = {
    "Ellipse",
    "EllipseLabels",
    "KeyPoint",
    "Brush",
    "BitMask",
    "BitmaskLabels",
    "MagicWand",
    "Vector",
    "VectorLabels",
    "OcrLabels",
}


@dataclass(frozen=True)
class Option:
    """One label a control offers: ``label`` is what Label Studio stores (the alias, if any), ``shown`` what
    the annotator (and the model) reads, ``hint`` what the annotator reads on hovering it; Taxonomy options nest.

    The alias and the hint are the config's own other names for the label: a free-text answer may use them."""

    label: str
    shown: str
    children: tuple[Option, ...] = ()
    hint: str = ""

    @property
    def synonyms(self) -> tuple[str, ...]:
        """The label's other names: its alias and its hint, where given."""
        return tuple(name for name in dict.fromkeys((self.label, self.hint)) if name and name != self.shown)


@dataclass(frozen=True)
class TaskObject:
    """An object tag the LLM reads: its name, tag and the task data field it shows (None for a fixed value)."""

    tag: SdkObject

    @property
    def name(self) -> str:
        return self.tag.name

    @property
    def kind(self) -> str:
        return self.tag.tag

    @property
    def field(self) -> str | None:
        return self.tag.value_name if self.tag.value_is_variable else None

    @property
    def image_list(self) -> bool:
        """An ``<Image valueList="$pages">``: several pictures (pages) in one task, regions naming theirs."""
        return self.kind == "Image" and bool(self.tag.attr.get("valueList"))


@dataclass(frozen=True)
class Output:
    """A control the LLM fills, on the object it annotates (``target``).

    ``options`` are the labels the config lists; ``dynamic_field`` names the task data field that holds
    them instead (``<Choices value="$options">``), so they are known only per task.  ``narrowed_from`` is set
    when ``options`` are one task's candidates out of a large label set (``label_selection``): how many
    values there were; like dynamic options, they are then listed with the task, not in the instructions.
    """

    control: SdkControl
    kind: str
    target: TaskObject
    options: tuple[Option, ...] = ()
    dynamic_field: str | None = None
    narrowed_from: int = 0
    # An unlabelled <Rectangle>/<Polygon>: the <Labels> on the same Image whose labels its shapes carry (OCR)
    labels_from: SdkControl | None = None
    # A shape control whose regions a per-region <TextArea> on the same Image transcribes (OCR)
    transcribed_by: SdkControl | None = None
    # The other unlabelled shape control on the same Image sharing those labels: a region goes to one of the two
    shares_labels_with: str | None = None

    @property
    def companions(self) -> tuple[SdkControl, ...]:
        """The controls filled with this one's regions, sharing their ids: its labels and transcription."""
        return tuple(tag for tag in (self.labels_from, self.transcribed_by) if tag is not None)

    @property
    def per_task(self) -> bool:
        """Whether the options differ from task to task: dynamic, or narrowed for this task."""
        return self.dynamic_field is not None or self.narrowed_from > 0

    @property
    def name(self) -> str:
        return self.control.name

    @property
    def multiple(self) -> bool:
        """Several labels at once: multiple Choices and Taxonomy (which is multi-select in Label Studio)."""
        return self.kind == TAXONOMY or self.control.attr.get("choice") == "multiple"

    @property
    def required(self) -> bool:
        return str(self.control.attr.get("required", "false")).lower() == "true"

    def options_for(self, data: Mapping[str, Any]) -> tuple[Option, ...]:
        """The options for one task: the config's, or those in the task's data for dynamic options."""
        if self.dynamic_field is None:
            return self.options
        return options_from_data(data.get(self.dynamic_field))


@dataclass(frozen=True)
class Unfilled:
    """A control this backend leaves to the annotator, and why."""

    name: str
    tag: str
    reason: str


@dataclass(frozen=True)
class LabelingSpec:
    """The parts of a labeling config this backend reads and writes.

    ``prompt`` is the TextArea the annotator types into, ``objects`` every object the LLM can read
    (in config order), ``outputs`` the controls it fills and ``unfilled`` the others.
    """

    interface: SdkInterface
    prompt: SdkControl
    objects: tuple[TaskObject, ...]
    outputs: tuple[Output, ...]
    unfilled: tuple[Unfilled, ...]
    # What is derived from the config alone, kept with it (specs are cached per config): e.g. the answer's schema.
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def dynamic(self) -> bool:
        """Whether some control's options differ from task to task (then the schema is per task)."""
        return any(output.per_task for output in self.outputs)

    @property
    def source(self) -> SdkObject:
        """The object tag the prompt TextArea points to."""
        return next(obj.tag for obj in self.objects if obj.name in self.prompt.to_name)

    @property
    def source_field(self) -> str:
        """The task data key that the source tag reads (``$text`` → ``text``)."""
        return self.source.value_name

    @property
    def text_outputs(self) -> tuple[SdkControl, ...]:
        """The output TextAreas' tags."""
        return tuple(output.control for output in self.outputs if output.kind == TEXT)

    @property
    def choices(self) -> tuple[SdkControl, ...]:
        """The Choices tags whose labels are the same for every task (the config lists them all)."""
        return tuple(output.control for output in self.outputs if output.kind == CHOICES and not output.per_task)

    @property
    def labels(self) -> list[str]:
        """Every label the Choices tags offer, in config order, for the ``{labels}`` placeholder."""
        seen: dict[str, None] = {}
        for tag in self.choices:
            seen.update(dict.fromkeys(tag.labels))
        return list(seen)

    @property
    def filled_names(self) -> set[str]:
        """Every control a prediction can fill: the outputs and the companions filled with their regions."""
        return {tag.name for output in self.outputs for tag in (output.control, *output.companions)}

    def output(self, name: str) -> Output:
        return next(output for output in self.outputs if output.name == name)

    def region(self, tag: SdkControl, **value: Any) -> dict[str, Any]:
        """A result region as Label Studio stores it."""
        region: dict[str, Any] = json.loads(tag.label(**value).to_json())
        return region


def options_from_data(raw: Any) -> tuple[Option, ...]:
    """Dynamic options as Label Studio reads them from task data: a list of ``{"value", "alias"?,
    "children"?}`` objects (or plain strings); anything else yields no options."""
    if not isinstance(raw, list):
        return ()
    options = []
    for item in raw:
        if isinstance(item, str) and item:
            options.append(Option(item, item))
        elif isinstance(item, Mapping) and isinstance(item.get("value"), str) and item["value"]:
            alias, hint = item.get("alias"), item.get("hint")
            label = alias if isinstance(alias, str) and alias else item["value"]
            children = options_from_data(item.get("children"))
            options.append(Option(label, item["value"], children, hint if isinstance(hint, str) else ""))
    return tuple(options)


def _options_in(element: Element) -> tuple[Option, ...]:
    """The Choice/Label elements under a control, nested as they are (wrappers such as <View> are skipped)."""
    options: list[Option] = []
    for child in element:
        if child.tag in _OPTION_TAGS:
            value = child.attrib.get("value")
            if value:
                alias, hint = child.attrib.get("alias") or value, child.attrib.get("hint", "")
                options.append(Option(alias, value, _options_in(child), hint))
        else:
            options.extend(_options_in(child))
    return tuple(options)


def _check_xml_is_safe(config: str, max_bytes: int) -> Element:
    if len(config.encode("utf-8")) > max_bytes:
        raise LabelingConfigError(f"labeling config is larger than {max_bytes} bytes")
    try:
        return defusedxml.ElementTree.fromstring(config, forbid_dtd=True)
    except DefusedXmlException:
        raise LabelingConfigError("labeling config must not declare a DTD or entities") from None
    except defusedxml.ElementTree.ParseError as exc:
        raise LabelingConfigError(f"labeling config is not valid XML: {exc}") from None


def _find_prompt(interface: SdkInterface, prompt_prefix: str) -> SdkControl:
    prompt = next(
        (
            tag
            for tag in interface.controls
            if tag.tag == "TextArea"
            and tag.name.startswith(prompt_prefix)
            and any(obj.tag in SUPPORTED_OBJECTS for obj in tag.objects)
        ),
        None,
    )
    if prompt is None:
        raise LabelingConfigError(
            f'labeling config has no prompt: add a <TextArea name="{prompt_prefix}…" toName="…"/> '
            f"pointing to one of <{'>, <'.join(SUPPORTED_OBJECTS)}> (the name must start with "
            f"PROMPT_PREFIX={prompt_prefix!r})"
        )
    source = next(obj for obj in prompt.objects if obj.tag in SUPPORTED_OBJECTS)
    if not source.value_is_variable:
        raise LabelingConfigError(f'<{source.tag} name="{source.name}"> needs value="$field" to read task data')
    return prompt


def _image_companion(controls: list[SdkControl], tag: str, target: TaskObject) -> SdkControl | None:
    """The first ``tag`` control (``Labels``, or a per-region ``TextArea``) on the Image ``target`` alone."""
    for control in controls:
        per_region = control.attr.get("perRegion") == "true"
        if control.tag == tag and list(control.to_name or []) == [target.name] and per_region == (tag == "TextArea"):
            return control
    return None


def _classify(control: SdkControl, elements: Mapping[str, Element], controls: list[SdkControl]) -> Output | Unfilled:
    """What this backend does with one control: fill it (an Output) or leave it (Unfilled, with the reason)."""
    tag = control.tag
    labels_from: SdkControl | None = None

    def unfilled(reason: str) -> Unfilled:
        return Unfilled(control.name, tag, reason)

    if control.attr.get("perRegion") == "true":
        return unfilled("per-region controls describe one region each; they are not predicted")
    if tag in _GEOMETRY_TAGS:
        return unfilled(
            "only boxes, points, polygons and masks drawn as polygons (RectangleLabels, KeyPointLabels, PolygonLabels, "
            "BrushLabels; Rectangle and Polygon labelled by a Labels) are predicted on an image: vision models name "
            "those; ellipses, unlabelled points, pixel masks and vectors they do not"
        )
    objects = list(control.objects or [])
    if not objects:
        return unfilled(f'toName="{",".join(control.to_name or [])}" matches no object tag')
    readable = [obj for obj in objects if obj.tag in SUPPORTED_OBJECTS]
    if len(readable) < len(objects) or (tag == "Pairwise" and len(readable) != 2):
        other = next((obj for obj in objects if obj.tag not in SUPPORTED_OBJECTS), None)
        where = f"<{other.tag}>" if other else "other than two objects"
        return unfilled(f"attached to {where}, which the LLM does not read")
    target = TaskObject(readable[0])
    if tag == "HyperTextLabels" or (tag == "Labels" and target.kind == "HyperText"):
        if target.kind != "HyperText":
            return unfilled(f"<HyperTextLabels> need <HyperText>, not <{target.kind}>")
        if target.tag.attr.get("valueType") == "url" or target.tag.attr.get("encoding") not in (None, "none"):
            return unfilled("the page is loaded (or decoded) by the browser, so the LLM cannot quote from it")
        kind = HTML_SPANS
    elif tag == "Labels":
        if target.kind == "Image":
            return unfilled("<Labels> on <Image> label shapes of a geometry tool, and none on it is predicted")
        if target.kind != "Text":
            return unfilled(f"spans are read from <Text> only, not <{target.kind}> (use <ParagraphLabels> there)")
        kind = SPANS
    elif tag == "ParagraphLabels":
        if target.kind != "Paragraphs":
            return unfilled(f"<ParagraphLabels> need <Paragraphs>, not <{target.kind}>")
        kind = PARAGRAPH_SPANS
    elif tag in _SHAPE_OF_TAG:
        if target.kind != "Image":
            return unfilled(f"<{tag}> need <Image>, not <{target.kind}>")
        kind = _SHAPE_OF_TAG[tag]
        if tag in UNLABELLED_SHAPE_TAGS:
            labels_from = _image_companion(controls, "Labels", target)
            if labels_from is None:
                return unfilled(f"an unlabelled <{tag}> is predicted only with a <Labels> on the same <Image>")
    elif tag in _KIND_OF_TAG:
        kind = _KIND_OF_TAG[tag]
    else:
        return unfilled(f"<{tag}> is not filled by this backend")
    labelled_by = labels_from or control  # the control whose labels the regions carry
    if labelled_by.attr.get("apiUrl"):
        return unfilled("its options are loaded from apiUrl while annotating, so the LLM cannot see them")
    value = labelled_by.attr.get("value", "")
    dynamic_field = value[1:] if kind in OPTION_KINDS and value.startswith("$") else None
    options = _options_in(elements[labelled_by.name]) if labelled_by.name in elements else ()
    if kind in OPTION_KINDS and not options and dynamic_field is None:
        return unfilled(f"<{labelled_by.tag}> lists no options")
    return Output(
        control=control,
        kind=kind,
        target=target,
        options=options,
        dynamic_field=dynamic_field,
        labels_from=labels_from,
        transcribed_by=_image_companion(controls, "TextArea", target) if kind in (RECTANGLES, POLYGONS) else None,
        shares_labels_with=_sharing_labels(control, controls) if labels_from else None,
    )


def _sharing_labels(control: SdkControl, controls: list[SdkControl]) -> str | None:
    """The other unlabelled shape tool on the same Image (OCR's Rectangle beside its Polygon), if any."""
    return next(
        (
            other.name
            for other in controls
            if other.tag in UNLABELLED_SHAPE_TAGS and other.tag != control.tag and other.to_name == control.to_name
        ),
        None,
    )


def _build_spec(config: str, root: Element, prompt_prefix: str) -> LabelingSpec:
    from label_studio_sdk.label_interface.interface import LabelInterface  # heavy: import only when first needed

    try:
        interface = LabelInterface(config)
    except Exception as exc:  # the SDK raises bare Exceptions of its own for malformed configs
        raise LabelingConfigError(f"labeling config cannot be parsed: {exc}") from None

    prompt = _find_prompt(interface, prompt_prefix)
    elements = {element.attrib["name"]: element for element in root.iter() if "name" in element.attrib}
    outputs: list[Output] = []
    unfilled: list[Unfilled] = []
    controls = list(interface.controls)
    for control in controls:
        if control.name == prompt.name:
            continue
        verdict = _classify(control, elements, controls)
        if isinstance(verdict, Output):
            outputs.append(verdict)
        else:
            unfilled.append(verdict)
    companions = {tag.name for output in outputs for tag in output.companions}
    unfilled = [item for item in unfilled if item.name not in companions]
    if not outputs:
        raise LabelingConfigError(
            f'labeling config has nowhere to put the answer: add a <TextArea> (other than "{prompt.name}"), '
            f"<Choices>, <Labels>, <Taxonomy>, <Rating> or <Number> pointing to one of "
            f"<{'>, <'.join(SUPPORTED_OBJECTS)}> (or <RectangleLabels>, <KeyPointLabels>, <PolygonLabels>, "
            "<BrushLabels> on an <Image>)"
            + (f" (not filled: {'; '.join(f'{u.name}: {u.reason}' for u in unfilled)})" if unfilled else "")
        )
    objects = tuple(TaskObject(obj) for obj in interface.objects if obj.tag in SUPPORTED_OBJECTS)
    return LabelingSpec(
        interface=interface, prompt=prompt, objects=objects, outputs=tuple(outputs), unfilled=tuple(unfilled)
    )


# Until ``shared.services`` configures them, and for callers without settings: the settings' defaults.
DEFAULT_CACHE_BYTES: int = setting_default("label_config_cache_bytes")
DEFAULT_MAX_BYTES: int = setting_default("max_label_config_bytes")


class _SpecCache:
    """An LRU of parsed configs, bounded in entries and in bytes of config text: parsing costs milliseconds
    (seconds for a megabyte) and every /predict repeats it."""

    def __init__(self, size: int = 256, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._size = size
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[LabelingSpec, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, config: str, prompt_prefix: str, max_bytes: int) -> LabelingSpec:
        key = hashlib.sha256(f"{prompt_prefix}\0{config}".encode("utf-8", "surrogatepass")).hexdigest()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        root = _check_xml_is_safe(config, max_bytes)
        spec = _build_spec(config, root, prompt_prefix)
        cost = len(config)
        if cost > self.max_bytes:
            return spec  # parsed for this request only
        with self._lock:
            if key not in self._items:
                self._items[key] = (spec, cost)
                self._bytes += cost
            while len(self._items) > self._size or self._bytes > self.max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted
        return spec


_cache = _SpecCache()


def configure_spec_cache(max_bytes: int) -> None:
    """LABEL_CONFIG_CACHE_BYTES: set once per process at start-up (``shared.services``)."""
    with _cache._lock:
        _cache.max_bytes = max_bytes


def require_label_config(config: object) -> str:
    """The labeling config's text; LabelingConfigError when a request has none."""
    if not isinstance(config, str) or not config.strip():
        raise LabelingConfigError("labeling config is missing: send it as label_config (or schema in /setup)")
    return config


def parse_labeling_config(config: object, prompt_prefix: str, max_bytes: int = DEFAULT_MAX_BYTES) -> LabelingSpec:
    """Find the prompt, the objects and the outputs; raise LabelingConfigError naming what is missing."""
    return _cache.get(require_label_config(config), prompt_prefix, max_bytes)
