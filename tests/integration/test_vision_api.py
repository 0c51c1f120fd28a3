"""Shapes on images through the API: a picture Label Studio serves is fetched and inlined, the fake vision model
(tests/fakes/openai_server/vision.py) finds the objects drawn on it and answers their boxes in each convention,
over HTTP through the real openai client, and ``/predict`` returns Label Studio regions where the objects are."""

from __future__ import annotations

import base64
import logging

import pytest
from label_studio_sdk.label_interface import LabelInterface

from tests.fakes.label_studio import FakeLabelStudio
from tests.fakes.openai_server.vision import picture_with, shapes_reply

PROJECT = "11.1700000000"
CONFIG = """<View>
  <Image name="img" value="$image"/>
  <TextArea name="prompt" toName="img"/>
  <RectangleLabels name="boxes" toName="img"><Label value="Car"/><Label value="Person"/></RectangleLabels>
  <KeyPointLabels name="points" toName="img"><Label value="Centre"/></KeyPointLabels>
  <PolygonLabels name="outlines" toName="img"><Label value="Car"/></PolygonLabels>
  <Choices name="scene" toName="img"><Choice value="Day"/><Choice value="Night"/></Choices>
</View>"""
WIDTH, HEIGHT = 800, 600
# Two dark objects (left, top, right, bottom, right and bottom exclusive), and where Label Studio shows them (%)
OBJECTS = [(200, 150, 600, 450), (650, 60, 750, 120)]
PERCENT = [
    {"x": 25.0, "y": 25.0, "width": 50.0, "height": 50.0},
    {"x": 81.25, "y": 10.0, "width": 12.5, "height": 10.0},
]
CENTRES = [{"x": 50.0, "y": 50.0}, {"x": 87.5, "y": 15.0}]
OUTLINES = [[25, 25, 75, 25, 75, 75, 25, 75], [81.25, 10, 93.75, 10, 93.75, 20, 81.25, 20]]  # corners, clockwise
UPLOAD = "/data/upload/1/street.png"
PNG_KEYS = {"gemini": "box_2d", "pixels": "bbox_2d", "percent": "box"}


def picture() -> bytes:
    return picture_with(OBJECTS, WIDTH, HEIGHT)


@pytest.fixture
def label_studio():
    with FakeLabelStudio(token="ls-token-vision") as fake:
        fake.files[UPLOAD] = (picture(), "image/png")
        yield fake


def predict(client, image: str, project: str = PROJECT):
    context = {"result": [{"from_name": "prompt", "to_name": "img", "type": "textarea", "value": {"text": ["Mark"]}}]}
    body = {"tasks": [{"id": 1, "data": {"image": image}}], "project": project, "label_config": CONFIG}
    response = client.post("/predict", json=body | {"params": {"context": context}})
    assert response.status_code == 200, response.json
    [prediction] = response.json["results"]
    assert LabelInterface(CONFIG).validate_prediction(prediction, return_errors=True) == []
    return prediction


def regions(prediction, name):
    return [region for region in prediction["result"] if region["from_name"] == name]


def placed(region) -> dict:
    return {key: region["value"][key] for key in ("x", "y", "width", "height") if key in region["value"]}


@pytest.mark.parametrize("convention", ["gemini", "pixels", "percent"])
def test_boxes_in_each_convention_land_where_the_objects_are(
    make_client, make_settings, fake_llm, label_studio, convention
):
    settings = make_settings(label_studio_url=label_studio.url, label_studio_api_key="ls-token-vision")
    client = make_client(settings.model_copy(update={"vision_box_format": convention}))
    fake_llm.reply = shapes_reply(
        convention, {"boxes": "Car"}, {"points": "Centre"}, {"outlines": "Car"}, {"scene": "Day"}
    )

    prediction = predict(client, UPLOAD)

    boxes = regions(prediction, "boxes")
    assert [placed(box) for box in boxes] == [pytest.approx(where, abs=0.1) for where in PERCENT]
    assert {(box["original_width"], box["original_height"], box["value"]["rotation"]) for box in boxes} == {
        (WIDTH, HEIGHT, 0)
    }
    assert [box["value"]["rectanglelabels"] for box in boxes] == [["Car"], ["Car"]]
    points = regions(prediction, "points")
    assert [{"x": point["value"]["x"], "y": point["value"]["y"]} for point in points] == [
        pytest.approx(where, abs=0.1) for where in CENTRES
    ]
    assert {point["value"]["width"] for point in points} == {0.25}  # Label Studio's default 2 px of 800
    outlines = [
        [value for point in region["value"]["points"] for value in point] for region in regions(prediction, "outlines")
    ]
    assert outlines == [pytest.approx(corners, abs=0.1) for corners in OUTLINES]
    [request] = fake_llm.chat_requests
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["boxes"]["anyOf"][0]["items"]["required"] == ["label", PNG_KEYS[convention]]
    assert PNG_KEYS[convention] in request.body["messages"][0]["content"]  # the instructions name it too


def test_a_projects_extra_param_chooses_its_convention_and_its_model_version(
    make_client, make_settings, fake_llm, label_studio
):
    client = make_client(make_settings(label_studio_url=label_studio.url, label_studio_api_key="ls-token-vision"))
    setup = {"project": PROJECT, "schema": CONFIG, "hostname": label_studio.url, "access_token": "ls-token-vision"}
    default = client.post("/setup", json=setup).json["model_version"]
    pixels = client.post("/setup", json=setup | {"extra_params": {"vision_box_format": "pixels"}})
    assert pixels.status_code == 200 and pixels.json["model_version"] != default
    fake_llm.reply = shapes_reply(
        "pixels", {"boxes": "Person"}, {"points": "Centre"}, answer={"scene": None, "outlines": []}
    )

    prediction = predict(client, UPLOAD)

    assert [placed(box) for box in regions(prediction, "boxes")] == PERCENT
    assert prediction["model_version"] == pixels.json["model_version"]
    refused = client.post("/setup", json=setup | {"extra_params": {"vision_box_format": "inches"}})
    assert refused.status_code == 400 and "vision_box_format" in refused.json["error"]


def test_an_inline_picture_is_measured_and_a_public_url_is_not(make_client, make_settings, fake_llm, caplog):
    caplog.set_level(logging.WARNING, logger="shared.predictor")
    client = make_client(make_settings().model_copy(update={"vision_box_format": "pixels"}))
    fake_llm.reply = shapes_reply(
        "pixels", {"boxes": "Car"}, {"points": "Centre"}, answer={"scene": "Night", "outlines": []}
    )
    inline = "data:image/png;base64," + base64.b64encode(picture()).decode()

    assert [placed(box) for box in regions(predict(client, inline), "boxes")] == PERCENT

    # A public URL goes to the provider as it is: the backend never holds the picture, so pixels cannot be placed
    box = {"label": "Car", "bbox_2d": [200, 150, 600, 450]}
    fake_llm.reply = lambda messages, index: {"boxes": [box], "points": [], "outlines": [], "scene": "Night"}
    prediction = predict(client, "https://example.com/street.png")
    assert regions(prediction, "boxes") == []
    assert "dropped boxes: pixels coordinates need the image's size, which is unknown for this image" in caplog.text
