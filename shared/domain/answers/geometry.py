"""Shapes a vision model names on an image, in the coordinate convention it was trained on, as Label Studio
stores them.

Label Studio keeps image regions in percent of the image's width and height (0–100 from the top-left corner):
a rectangle's ``x``, ``y``, ``width``, ``height``, a keypoint's ``x``, ``y``, a polygon's ``points``.  Vision
models answer in conventions of their own, and a model asked for another one than it learnt places its boxes
badly, so the convention is declared (``VISION_BOX_FORMAT``) and the schema asks for it, under the key and in
the order the model knows:

- ``gemini``: ``box_2d`` ``[ymin, xmin, ymax, xmax]`` normalized to 0–1000, points ``[y, x]`` (Gemini's form);
- ``pixels``: ``bbox_2d`` ``[x1, y1, x2, y2]`` in pixels of the image, points ``[x, y]`` (Qwen2.5-VL's form);
  only this one needs the image's size to convert;
- ``percent``: ``box`` ``[x1, y1, x2, y2]`` in percent of the width and height, points ``[x, y]``.

Every coordinate is clamped to the image; a box written corner for corner the wrong way round is put right; a
shape left with no area (or a polygon of fewer than three points) is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple


class ImageSize(NamedTuple):
    """An image's size in pixels, as the annotator sees it (EXIF orientation applied)."""

    width: int
    height: int


class ShapeError(ValueError):
    """A shape the model wrote that cannot become a region; the message says why."""


@dataclass(frozen=True)
class BoxFormat:
    """A coordinate convention: where a box and a point are written, in which order and on which scale."""

    name: str
    box_key: str
    point_key: str
    y_first: bool  # [y, x] order (Gemini) rather than [x, y]
    full_scale: float | None  # the value that stands for the whole width or height; None: the image's pixels
    unit: str  # in words, for the model

    @property
    def box_order(self) -> str:
        return "[ymin, xmin, ymax, xmax]" if self.y_first else "[x1, y1, x2, y2] (top-left, then bottom-right)"

    @property
    def point_order(self) -> str:
        return "[y, x]" if self.y_first else "[x, y]"

    def _percent(self, value: Any, pixels: int | None, what: str) -> float:
        if type(value) not in (int, float):
            raise ShapeError(f"expected a number for {what}, got {value!r}")
        if self.full_scale is not None:
            scale = self.full_scale
        elif pixels:
            scale = pixels
        else:
            raise ShapeError(f"{self.name} coordinates need the image's size, which is unknown for this image")
        return min(100.0, max(0.0, float(value) * 100.0 / scale))

    def point(self, values: Any, size: ImageSize | None) -> tuple[float, float]:
        """A point in this convention → Label Studio's percent (x, y), clamped to the image."""
        if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != 2:
            raise ShapeError(f"a point is {self.point_order}, got {values!r}")
        first, second = values
        x, y = (second, first) if self.y_first else (first, second)
        return (
            self._percent(x, size.width if size else None, "x"),
            self._percent(y, size.height if size else None, "y"),
        )

    def rectangle(self, values: Any, size: ImageSize | None) -> dict[str, float]:
        """A box in this convention → Label Studio's percent x, y, width, height (no rotation), clamped."""
        if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != 4:
            raise ShapeError(f"a box is {self.box_order}, got {values!r}")
        one = self.point(values[:2], size)
        other = self.point(values[2:], size)
        left, right = sorted((one[0], other[0]))
        top, bottom = sorted((one[1], other[1]))
        if right <= left or bottom <= top:
            raise ShapeError(f"the box {list(values)} has no area within the image")
        return {"x": left, "y": top, "width": right - left, "height": bottom - top, "rotation": 0}

    def polygon(self, values: Any, size: ImageSize | None) -> list[list[float]]:
        """A polygon's points in this convention → Label Studio's percent points, clamped."""
        if not isinstance(values, Sequence) or isinstance(values, str):
            raise ShapeError(f"a polygon is a list of points {self.point_order}, got {values!r}")
        points = [list(self.point(point, size)) for point in values]
        if len({tuple(point) for point in points}) < 3:
            raise ShapeError(f"a polygon needs three distinct points within the image, got {list(values)!r}")
        return points


KEYPOINT_STROKE = 2.0  # pixels: Label Studio's default strokeWidth of a KeyPoint(Labels) control
NOMINAL_WIDTH = 1000  # pixels, for a picture whose size is unknown


def keypoint_width(stroke_width: Any, size: ImageSize | None) -> float:
    """A keypoint's ``width``, which Label Studio's editor requires to draw it (a point without one is not
    shown): the control's ``strokeWidth`` in pixels, in percent of the picture's width (or of a nominal one),
    as the editor stores a point drawn by hand."""
    try:
        stroke = float(stroke_width) if stroke_width is not None else KEYPOINT_STROKE
    except ValueError:
        stroke = KEYPOINT_STROKE
    return stroke * 100.0 / (size.width if size else NOMINAL_WIDTH)


BOX_FORMATS = {
    fmt.name: fmt
    for fmt in (
        BoxFormat("gemini", "box_2d", "point", y_first=True, full_scale=1000.0, unit="normalized to 0-1000"),
        BoxFormat("pixels", "bbox_2d", "point_2d", y_first=False, full_scale=None, unit="in pixels of the image"),
        BoxFormat("percent", "box", "point", y_first=False, full_scale=100.0, unit="in percent (0-100)"),
    )
}
DEFAULT_BOX_FORMAT = "gemini"
