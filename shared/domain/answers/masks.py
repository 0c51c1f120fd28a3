"""A mask (``BrushLabels``) from an outline a vision model gives: the polygon's area, in Label Studio's RLE.

Vision models served through chat endpoints name shapes with coordinates; none of them answers a pixel mask.  So a
mask is asked as a polygon around the object (as ``PolygonLabels`` are) and filled here at the picture's real size:
the mask is the polygon's area (Pillow's fill: the pixels on its outline are in, so it may reach one pixel
beyond the outline on the right and bottom), never finer.  Label Studio stores a brush region as ``format: "rle"`` and
``rle``, the bytes of its own run-length code over the picture's RGBA pixels; the SDK's ``mask2rle`` writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shared.domain.answers.geometry import ImageSize, ShapeError

MASK_VALUE = 255  # a covered pixel, on every channel (the editor reads the alpha channel)


def polygon_mask_rle(points: Sequence[Sequence[float]], size: ImageSize | None) -> list[int]:
    """The RLE of the area inside ``points`` (Label Studio's percent of the width and height), at ``size``."""
    import label_studio_sdk.converter.brush as brush  # heavy: imported when a mask is first made
    import numpy as np
    import PIL.Image
    import PIL.ImageDraw

    mask2rle: Callable[[Any], list[int]] = brush.mask2rle  # the SDK's encoder (untyped)
    if size is None:
        raise ShapeError("a mask is drawn at the image's size, which is unknown for this image")
    mask = PIL.Image.new("L", (size.width, size.height), 0)
    corners = [(x * size.width / 100.0, y * size.height / 100.0) for x, y in points]
    PIL.ImageDraw.Draw(mask).polygon(corners, fill=MASK_VALUE)
    return [int(byte) for byte in mask2rle(np.asarray(mask, dtype=np.uint8))]
