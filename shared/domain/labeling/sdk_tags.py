"""What this backend reads of a labeling config parsed by ``label_studio_sdk.label_interface``.

The SDK's ``LabelInterface.controls``, ``.objects`` and most of its methods carry no type hints, and its tag
models declare every field Optional because they are built empty and filled while parsing; once
``LabelInterface`` has parsed a config, each tag has its name, its tag and its attributes.  These protocols
state that contract, so mypy checks every use of a parsed tag instead of letting it pass as ``Any``.
"""

from __future__ import annotations

from typing import Any, Protocol


class SdkRegion(Protocol):
    """A region the SDK built (``label_studio_sdk.label_interface.region.Region``)."""

    def to_json(self) -> str: ...


class SdkObject(Protocol):
    """An object tag (``<Text>``, ``<Paragraphs>``, ``<Image>`` …): what the annotator and the model read."""

    name: str
    tag: str
    attr: dict[str, Any]
    value: str  # ``$field`` for task data, else the fixed text itself

    @property
    def value_name(self) -> str:
        """``value`` without its ``$``: the task data field."""

    @property
    def value_is_variable(self) -> bool:
        """True when ``value`` names a task data field (``$text``)."""


class SdkControl(Protocol):
    """A control tag (``<Choices>``, ``<Labels>``, ``<TextArea>`` …): what the annotator fills."""

    name: str
    tag: str
    attr: dict[str, Any]
    to_name: list[str]
    objects: list[SdkObject]
    labels: list[str]

    def label(self, *args: Any, **kwargs: Any) -> SdkRegion: ...

    def to_json_schema(self) -> dict[str, Any]: ...

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> SdkControl: ...


class SdkInterface(Protocol):
    """A parsed labeling config (``label_studio_sdk.label_interface.LabelInterface``)."""

    @property
    def controls(self) -> list[SdkControl]: ...

    @property
    def objects(self) -> list[SdkObject]: ...

    def get_control(self, name: str | None = None) -> SdkControl:
        """The control of that name; the SDK raises a bare ``Exception`` for an unknown one."""

    def validate_region(
        self,
        region: dict[str, Any],
        return_errors: bool = False,
        region_index: int = 0,
        context: dict[str, Any] | None = None,
    ) -> Any:
        """True or False, or with ``return_errors`` the list of what is wrong with ``region``; ``context``
        (``result``: the regions beside it, ``region``: itself) lets a ``labels`` result validate against the
        shape sharing its id."""
