"""A vision model for the fake: it looks at the picture it was sent and answers where the object is.

The test draws dark objects on a light picture; ``seen_objects`` finds each one's bounding box in the picture the
request carries (a ``data:`` URI, as the backend inlines it), and ``shapes_reply`` answers them as a model of a
given family would: Gemini's ``box_2d`` ``[ymin, xmin, ymax, xmax]`` normalized to 0-1000 and ``point``
``[y, x]``; Qwen2.5-VL's ``bbox_2d`` ``[x1, y1, x2, y2]`` and ``point_2d`` ``[x, y]`` in pixels; or percentages.
The conventions are written out here on their own, from the providers' documentation, not taken from the
backend, so a conversion the backend gets wrong puts a region in the wrong place and the test sees it.
"""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw, ImageOps

from tests.fakes.openai_server.chat import Reply

Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels (right and bottom exclusive)


def picture_with(objects: list[Box], width: int, height: int, fmt: str = "PNG") -> bytes:
    """A light picture with a dark object filling each box: what the tests show the fake model."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for left, top, right, bottom in objects:
        draw.rectangle((left, top, right - 1, bottom - 1), fill="black")
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def pictures_of(messages: list[dict]) -> list[Image.Image]:
    """The images of the request's messages in order, decoded (they must be inlined: the fake fetches no URL)."""
    found = []
    for message in messages:
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                assert url.startswith("data:"), f"the fake model sees only inlined pictures, not {url[:80]}"
                found.append(Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))))
    assert found, "the request carries no picture"
    return found


def seen_objects(picture: Image.Image) -> list[Box]:
    """The bounding box of each dark object on the light picture, left to right (objects do not overlap)."""
    ink = ImageOps.invert(ImageOps.exif_transpose(picture).convert("L")).point(lambda value: 255 if value > 128 else 0)
    boxes: list[Box] = []
    columns = [x for x in range(ink.width) if ink.crop((x, 0, x + 1, ink.height)).getbbox()]
    runs: list[tuple[int, int]] = []
    for x in columns:
        if runs and runs[-1][1] == x:
            runs[-1] = (runs[-1][0], x + 1)
        else:
            runs.append((x, x + 1))
    for left, right in runs:
        _, top, _, bottom = ink.crop((left, 0, right, ink.height)).getbbox()
        boxes.append((left, top, right, bottom))
    return boxes


def _box(convention: str, box: Box, width: int, height: int) -> tuple[str, list[float]]:
    left, top, right, bottom = box
    if convention == "gemini":
        return "box_2d", [
            round(v * 1000 / s) for v, s in ((top, height), (left, width), (bottom, height), (right, width))
        ]
    if convention == "pixels":
        return "bbox_2d", [left, top, right, bottom]
    return "box", [left * 100 / width, top * 100 / height, right * 100 / width, bottom * 100 / height]


def _point(convention: str, box: Box, width: int, height: int) -> tuple[str, list[float]]:
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    if convention == "gemini":
        return "point", [round(y * 1000 / height), round(x * 1000 / width)]
    if convention == "pixels":
        return "point_2d", [x, y]
    return "point", [x * 100 / width, y * 100 / height]


def _outline(convention: str, box: Box, width: int, height: int) -> tuple[str, list[list[float]]]:
    left, top, right, bottom = box
    corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
    return "points", [_point(convention, (x, y, x, y), width, height)[1] for x, y in corners]


def transcription(order: int) -> str:
    """What the fake reads in the ``order``-th object from the left (from 0)."""
    return f"text of object {order + 1}"


def shapes_reply(
    convention: str,
    boxes: dict[str, str] | None = None,
    points: dict[str, str] | None = None,
    outlines: dict[str, str] | None = None,
    answer: dict | None = None,
    numbered: frozenset[str] = frozenset(),
    transcribed: frozenset[str] = frozenset(),
) -> Reply:
    """A reply that names every object of the first picture, to each control (name → the label its shapes get)
    as ``boxes``, as ``points`` (the objects' centres) or as ``outlines`` (polygons through the boxes' corners);
    a control in ``numbered`` (on an ``<Image valueList>``) gets the objects of every picture, each shape with
    its picture's number (``image``, from 1); a control in ``transcribed`` (OCR) gives each shape the text it
    reads there: ``transcription(n)`` for the n-th object from the left.  ``answer`` holds the other controls'
    values."""
    shapes = [
        (kind, control, label)
        for kind, given in ((_box, boxes), (_point, points), (_outline, outlines))
        for control, label in (given or {}).items()
    ]

    def reply(messages: list[dict], index: int) -> dict:
        pictures = list(enumerate(pictures_of(messages), start=1))
        found = dict(answer or {})
        for shape, control, label in shapes:
            found[control] = []
            for number, picture in pictures if control in numbered else pictures[:1]:
                width, height = ImageOps.exif_transpose(picture).size
                for order, box in enumerate(seen_objects(picture)):
                    item = dict([("label", label), shape(convention, box, width, height)])
                    if control in transcribed:
                        item["text"] = transcription(order)
                    found[control].append(item | {"image": number} if control in numbered else item)
        return found

    return reply
