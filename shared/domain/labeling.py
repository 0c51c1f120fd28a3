"""What a labeling config asks of the LLM: which TextArea holds the prompt, what it reads, what it fills.

Parsing goes through ``label_studio_sdk.label_interface.LabelInterface`` so that regions are built the
way Label Studio itself expects them.  Configs repeat on every request, so parsed specs are cached.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import defusedxml.ElementTree
from defusedxml import DefusedXmlException

from shared.domain.errors import LabelingConfigError

SUPPORTED_OBJECTS = ("Text", "HyperText", "Paragraphs", "Image")


@dataclass(frozen=True)
class LabelingSpec:
    """The parts of a labeling config this backend reads and writes.

    ``prompt`` is the TextArea the annotator types into, ``source`` the object tag it points to,
    ``text_outputs`` the other TextAreas on that object and ``choices`` its Choices tags.
    """

    prompt: Any
    source: Any
    text_outputs: tuple[Any, ...]
    choices: tuple[Any, ...]

    @property
    def source_field(self) -> str:
        """The task data key that the source tag reads (``$text`` → ``text``)."""
        return self.source.value_name

    @property
    def labels(self) -> list[str]:
        """Every label the Choices tags offer, in config order, for the ``{labels}`` placeholder."""
        seen: dict[str, None] = {}
        for tag in self.choices:
            seen.update(dict.fromkeys(tag.labels))
        return list(seen)

    def region(self, tag: Any, **value: Any) -> dict:
        """A result region as Label Studio stores it."""
        return json.loads(tag.label(**value).to_json())


def _check_xml_is_safe(config: str, max_bytes: int) -> None:
    if len(config.encode("utf-8")) > max_bytes:
        raise LabelingConfigError(f"labeling config is larger than {max_bytes} bytes")
    try:
        defusedxml.ElementTree.fromstring(config)
    except DefusedXmlException:
        raise LabelingConfigError("labeling config must not declare a DTD or entities") from None
    except defusedxml.ElementTree.ParseError as exc:
        raise LabelingConfigError(f"labeling config is not valid XML: {exc}") from None


def _build_spec(config: str, prompt_prefix: str) -> LabelingSpec:
    from label_studio_sdk.label_interface import LabelInterface  # heavy: import only when first needed

    try:
        interface = LabelInterface(config)
    except Exception as exc:  # the SDK raises bare Exceptions of its own for malformed configs
        raise LabelingConfigError(f"labeling config cannot be parsed: {exc}") from None

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
    if not source.value_name:
        raise LabelingConfigError(f'<{source.tag} name="{source.name}"> needs value="$field" to read task data')

    def on_source(tag: Any) -> bool:
        return source.name in (tag.to_name or [])

    text_outputs = tuple(
        tag for tag in interface.controls if tag.tag == "TextArea" and tag.name != prompt.name and on_source(tag)
    )
    choices = tuple(tag for tag in interface.controls if tag.tag == "Choices" and on_source(tag))
    if not text_outputs and not choices:
        raise LabelingConfigError(
            f'labeling config has nowhere to put the answer: add a <TextArea> (other than "{prompt.name}") '
            f'or a <Choices> with toName="{source.name}"'
        )
    return LabelingSpec(prompt=prompt, source=source, text_outputs=text_outputs, choices=choices)


class _SpecCache:
    """A small LRU of parsed configs: parsing costs milliseconds and every /predict repeats it."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[str, LabelingSpec] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, config: str, prompt_prefix: str, max_bytes: int) -> LabelingSpec:
        key = hashlib.sha256(f"{prompt_prefix}\0{config}".encode()).hexdigest()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        _check_xml_is_safe(config, max_bytes)
        spec = _build_spec(config, prompt_prefix)
        with self._lock:
            self._items[key] = spec
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return spec


_cache = _SpecCache()


def parse_labeling_config(config: Any, prompt_prefix: str, max_bytes: int = 1024 * 1024) -> LabelingSpec:
    """Find the prompt, its source object and the outputs; raise LabelingConfigError naming what is missing."""
    if not isinstance(config, str) or not config.strip():
        raise LabelingConfigError("labeling config is missing: send it as label_config (or schema in /setup)")
    return _cache.get(config, prompt_prefix, max_bytes)
