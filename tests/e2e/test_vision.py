"""Boxes from a vision model end to end: a picture uploaded to a real Label Studio 1.23.2, Retrieve Predictions, the
backend fetching the picture from Label Studio and sending it inline, the fake vision model
(tests/fakes/openai_server/vision.py) answering where its objects are in pixels (``vision_box_format`` in the
project's extra params), and Label Studio storing rectangles and keypoints where the objects are; the labeling
screen then draws the rectangle over the object (a screenshot of it is kept).  OCR regions (shape, labels and
transcription under one id) and masks (Label Studio's RLE) go the same way and are read back as pushed."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle
from label_studio_sdk.label_interface import LabelInterface
from PIL import Image
from playwright.sync_api import Page

from tests.e2e.label_studio_server import TOKEN
from tests.e2e.test_browser import log_in
from tests.e2e.test_label_studio import calls_for, connect, retrieve_predictions, wait_for_predictions
from tests.fakes.openai_server.vision import picture_with, shapes_reply, transcription

pytestmark = pytest.mark.timeout(900)  # the first e2e test of a session may install and migrate Label Studio

CONFIG = """<View>
  <Image name="img" value="$image"/>
  <TextArea name="prompt" toName="img"/>
  <RectangleLabels name="boxes" toName="img"><Label value="Car" background="red"/></RectangleLabels>
  <KeyPointLabels name="centres" toName="img"><Label value="Centre" background="blue"/></KeyPointLabels>
</View>"""
WIDTH, HEIGHT = 800, 600
OBJECT = (200, 150, 600, 450)  # the dark object: left, top, right, bottom in pixels
MIDDLE = {"x": 25.0, "y": 25.0, "width": 50.0, "height": 50.0, "rotation": 0}  # the box in the middle, in %


OCR_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <TextArea name="prompt" toName="image"/>
  <Labels name="label" toName="image"><Label value="Text" background="green"/></Labels>
  <Rectangle name="bbox" toName="image"/>
  <TextArea name="transcription" toName="image" perRegion="true" editable="true" displayMode="region-list"/>
</View>"""
MASK_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <TextArea name="prompt" toName="image"/>
  <BrushLabels name="tag" toName="image"><Label value="Car" background="rgba(255, 0, 0, 0.7)"/></BrushLabels>
</View>"""


def upload_picture(label_studio, project) -> None:
    """Import the picture as Label Studio's own upload does: one task whose image is served at /data/upload/…"""
    response = httpx.post(
        f"{label_studio.url}/api/projects/{project.id}/import",
        headers={"Authorization": f"Token {TOKEN}"},
        files={"file": ("street.png", picture_with([OBJECT], WIDTH, HEIGHT), "image/png")},
        timeout=60,
    )
    assert response.status_code == 201, response.text


def test_pixel_boxes_are_stored_and_drawn_where_the_object_is(ls, label_studio, backend, fake_llm, page, tmp_path):
    marker = uuid.uuid4().hex[:10]
    project = ls.projects.create(title=f"vision {marker}", label_config=CONFIG)
    upload_picture(label_studio, project)
    [task] = ls.tasks.list(project=project.id)
    assert task.data["image"].startswith("/data/upload/")
    extra = {
        "default_prompt": f"Mark every car ({marker})",
        "use_internal_prompt_template": False,
        "output_mode": "auto",
        "vision_box_format": "pixels",
    }
    version = connect(ls, project, backend, extra_params=extra).model_version
    fake_llm.reply = shapes_reply("pixels", {"boxes": "Car"}, {"centres": "Centre"})

    retrieve_predictions(ls, project)

    [prediction] = wait_for_predictions(ls, project, 1, backend)
    assert prediction["model_version"] == version
    assert LabelInterface(CONFIG).validate_prediction(prediction, return_errors=True) == []
    by_name = {region["from_name"]: region for region in prediction["result"]}
    box, centre = by_name["boxes"], by_name["centres"]
    assert box["value"] == MIDDLE | {"rectanglelabels": ["Car"]}
    assert (box["original_width"], box["original_height"], box["image_rotation"]) == (WIDTH, HEIGHT, 0)
    assert centre["value"] == {"x": 50.0, "y": 50.0, "width": 0.25, "keypointlabels": ["Centre"]}
    [call] = calls_for(fake_llm, marker)
    assert call.body["messages"][-1]["content"][-1]["image_url"]["url"].startswith("data:image/png;base64,")

    # The labeling screen draws the predicted rectangle over the object: red where the black object's edge is.
    log_in(page, label_studio.url)
    page.goto(f"{label_studio.url}/projects/{project.id}/data?task={task.id}")
    regions = page.locator(".lsf-outliner-item, [class*='outliner-item']")  # the region list, one item a region
    regions.filter(has_text="Car").first.wait_for(timeout=60_000)
    regions.filter(has_text="Centre").first.wait_for(timeout=10_000)  # the keypoint is drawn too
    shot = tmp_path / "rectangle.png"
    assert_red_outline_over_the_object(shot, screenshot_over_the_picture(page, shot))


def predicted_from_pixels(ls, label_studio, backend, fake_llm, config: str, reply_for) -> tuple[dict, str]:
    """The prediction Label Studio holds for an uploaded picture, after Retrieve Predictions with the fake vision
    model answering in pixels (``reply_for``: the reply, given the convention), and the task's labeling screen."""
    marker = uuid.uuid4().hex[:10]
    project = ls.projects.create(title=f"vision {marker}", label_config=config)
    upload_picture(label_studio, project)
    extra = {
        "default_prompt": f"Mark it ({marker})",
        "use_internal_prompt_template": False,
        "output_mode": "auto",
        "vision_box_format": "pixels",
    }
    connect(ls, project, backend, extra_params=extra)
    fake_llm.reply = reply_for("pixels")
    retrieve_predictions(ls, project)
    [prediction] = wait_for_predictions(ls, project, 1, backend)
    assert LabelInterface(config).validate_prediction(prediction, return_errors=True) == []
    [task] = ls.tasks.list(project=project.id)
    return prediction, f"{label_studio.url}/projects/{project.id}/data?task={task.id}"


def test_an_ocr_region_is_stored_as_shape_labels_and_text_under_one_id(ls, label_studio, backend, fake_llm, page):
    def reply(convention):
        return shapes_reply(convention, {"bbox": "Text"}, transcribed=frozenset({"bbox"}))

    prediction, screen = predicted_from_pixels(ls, label_studio, backend, fake_llm, OCR_CONFIG, reply)
    by_name = {region["from_name"]: region for region in prediction["result"]}
    box, label, text = by_name["bbox"], by_name["label"], by_name["transcription"]
    assert (box["type"], label["type"], text["type"]) == ("rectangle", "labels", "textarea")
    assert box["id"] == label["id"] == text["id"]
    assert box["value"] == MIDDLE
    assert label["value"] == MIDDLE | {"labels": ["Text"]}
    assert text["value"] == MIDDLE | {"text": [transcription(0)]}

    # The labeling screen shows the region with its transcription (displayMode="region-list": in the region list,
    # in the region's own text field).
    log_in(page, label_studio.url)
    page.goto(screen)
    field = page.locator("[data-testid='textarea-region-input']").first
    field.wait_for(timeout=60_000)
    assert field.input_value() == transcription(0)


def test_a_mask_is_stored_in_label_studios_rle_and_drawn_over_the_object(
    ls, label_studio, backend, fake_llm, page, tmp_path
):
    def reply(convention):
        return shapes_reply(convention, outlines={"tag": "Car"})

    prediction, screen = predicted_from_pixels(ls, label_studio, backend, fake_llm, MASK_CONFIG, reply)
    [mask] = [region for region in prediction["result"] if region["from_name"] == "tag"]
    assert mask["type"] == "brushlabels" and mask["value"]["format"] == "rle"
    assert mask["value"]["brushlabels"] == ["Car"]
    assert (mask["original_width"], mask["original_height"]) == (WIDTH, HEIGHT)
    covered = decode_rle(mask["value"]["rle"]).reshape(HEIGHT, WIDTH, 4)[:, :, 3] > 0
    left, top, right, bottom = OBJECT
    inside = np.zeros_like(covered)
    inside[top:bottom, left:right] = True
    grown = np.zeros_like(covered)
    grown[top - 1 : bottom + 1, left - 1 : right + 1] = True
    assert (covered >= inside).all() and (covered <= grown).all(), "the mask is the object's pixels"

    # The labeling screen paints the mask (the label's red) over the object, and not beside it.
    log_in(page, label_studio.url)
    page.goto(screen)
    page.locator(".lsf-outliner-item, [class*='outliner-item']").filter(has_text="Car").first.wait_for(timeout=60_000)
    shot = tmp_path / "mask.png"
    shown = screenshot_over_the_picture(page, shot)
    screen_pixels = Image.open(shot).convert("RGB")
    scale = shown["width"] / WIDTH

    def on_screen(x: float, y: float) -> tuple[int, int, int]:
        return screen_pixels.getpixel((round(shown["x"] + x * scale), round(shown["y"] + y * scale)))

    middle = ((left + right) / 2, (top + bottom) / 2)
    assert _reddish(on_screen(*middle)), f"no mask over the object's middle in {shot}"
    assert not _reddish(on_screen(left / 2, top / 2)), f"a mask beside the object in {shot}"


def screenshot_over_the_picture(page: Page, shot: Path, timeout: float = 30) -> dict:
    """A screenshot of the labeling screen into ``shot``, and where the picture is on it: taken once the picture
    has loaded and the editor has stopped resizing its stage to it (it draws the regions before that, and a box read
    meanwhile is not where the picture ends up), and again if the picture moved while it was taken."""
    image = page.locator("img[alt='image']")  # the picture the editor draws on (its canvases lie over it)
    image.wait_for(timeout=timeout * 1000)
    page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=image.element_handle())
    deadline = time.monotonic() + timeout
    shown, before = image.bounding_box(), None
    while shown != before:
        assert time.monotonic() < deadline, f"the picture kept moving for {timeout} s: {before} then {shown}"
        page.wait_for_timeout(250)
        page.screenshot(path=shot, full_page=True)
        before, shown = shown, image.bounding_box()
    assert shown, "the picture is not shown"
    return shown


def assert_red_outline_over_the_object(shot: Path, shown: dict) -> None:
    """The screenshot has red (the label's colour) along the object's top edge, where the picture is shown."""
    scale = shown["width"] / WIDTH
    left, top, right, _bottom = (value * scale for value in OBJECT)
    screen = Image.open(shot).convert("RGB")
    y = round(shown["y"] + top)
    reds = [
        x
        for x in range(round(shown["x"] + left), round(shown["x"] + right))
        for dy in (-2, -1, 0, 1, 2)
        if _reddish(screen.getpixel((x, y + dy)))
    ]
    assert len(reds) > (right - left) / 2, f"no red rectangle edge along the object's top in {shot}"


def _reddish(pixel: tuple[int, int, int]) -> bool:
    red, green, blue = pixel
    return red > 150 and green < 100 and blue < 100
