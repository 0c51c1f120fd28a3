"""A vision model's shapes become Label Studio regions that the SDK accepts, at the right place; what cannot be
placed is dropped with the reason, and an empty list of shapes is an answer, not a decline."""

import pytest

from shared.domain.answers.geometry import ImageSize
from shared.domain.answers.reading import read_prediction
from shared.domain.answers.regions import regions_from_answers
from shared.domain.labeling.schema import answer_instructions, answer_schema
from shared.domain.labeling.spec import parse_labeling_config
from tests.fakes.openai_server.strict import strict_problems

CONFIG = """<View>
  <Image name="img" value="$image"/>
  <TextArea name="prompt" toName="img"/>
  <RectangleLabels name="boxes" toName="img">
    <Label value="Car"/><Label value="Person" alias="person"/>
  </RectangleLabels>
  <KeyPointLabels name="points" toName="img"><Label value="Nose"/></KeyPointLabels>
  <PolygonLabels name="outlines" toName="img" value="$objects"/>
  <Choices name="scene" toName="img"><Choice value="Day"/><Choice value="Night"/></Choices>
</View>"""
DATA = {"image": "https://example.com/a.png", "objects": [{"value": "Road"}, {"value": "Sky"}]}
SIZE = {"img": [ImageSize(800, 600)]}
MIDDLE = {"x": 25.0, "y": 25.0, "width": 50.0, "height": 50.0, "rotation": 0}  # the box in the middle, in %
PIXELS_ANSWER = {
    "boxes": [{"label": "Car", "bbox_2d": [200, 150, 600, 450]}, {"label": "Person", "bbox_2d": [0, 0, 80, 600]}],
    "points": [{"label": "Nose", "point_2d": [400, 60]}],
    "outlines": [{"label": "Sky", "points": [[0, 0], [800, 0], [400, 300]]}],
    "scene": "Day",
}


@pytest.fixture
def spec():
    return parse_labeling_config(CONFIG, "prompt")


def by_name(regions):
    found: dict[str, list] = {}
    for region in regions:
        found.setdefault(region["from_name"], []).append(region)
    return found


def test_pixel_shapes_become_percent_regions_with_the_images_size(spec):
    filled = regions_from_answers(spec, [PIXELS_ANSWER], DATA, None, box_format="pixels", image_sizes=SIZE)
    assert filled.dropped == []
    assert spec.interface.validate_prediction({"result": filled.regions, "score": 1.0}, return_errors=True) == []
    regions = by_name(filled.regions)
    car, person = regions["boxes"]
    assert car["type"] == "rectanglelabels" and car["to_name"] == "img"
    assert car["value"] == MIDDLE | {"rectanglelabels": ["Car"]}
    assert person["value"]["rectanglelabels"] == ["person"]  # stored as the alias, as Label Studio stores it
    assert (car["original_width"], car["original_height"], car["image_rotation"]) == (800, 600, 0)
    [nose] = regions["points"]
    assert nose["value"] == {"x": 50.0, "y": 10.0, "width": 0.25, "keypointlabels": ["Nose"]}  # 2 px of 800
    [sky] = regions["outlines"]
    assert sky["value"] == {"points": [[0.0, 0.0], [100.0, 0.0], [50.0, 50.0]], "polygonlabels": ["Sky"]}
    assert filled.labels == ["Car", "Person", "Nose", "Sky", "Day"]


def test_gemini_shapes_need_no_size_and_regions_then_carry_none(spec):
    answer = {
        "boxes": [{"label": "Car", "box_2d": [250, 250, 750, 750]}],
        "points": [{"label": "Nose", "point": [100, 500]}],
    }
    filled = regions_from_answers(spec, [answer], DATA, None, box_format="gemini")
    assert filled.dropped == []
    [car] = by_name(filled.regions)["boxes"]
    assert car["value"]["x"] == pytest.approx(25) and car["value"]["width"] == pytest.approx(50)
    assert "original_width" not in car
    [nose] = by_name(filled.regions)["points"]
    assert (nose["value"]["x"], nose["value"]["y"]) == pytest.approx((50, 10))


def test_what_cannot_be_placed_is_dropped_with_the_reason_and_the_rest_kept(spec):
    answer = {
        "boxes": [
            {"label": "Truck", "bbox_2d": [0, 0, 10, 10]},
            {"label": "Car", "bbox_2d": [900, 0, 1000, 10]},
            {"label": "Car", "bbox_2d": [0, 0, 400, 300]},
            "a car",
        ],
        "outlines": [{"label": "Road", "points": [[0, 0], [10, 10]]}],
    }
    filled = regions_from_answers(spec, [answer], DATA, None, box_format="pixels", image_sizes=SIZE)
    assert [region["value"]["width"] for region in filled.regions] == [50.0]
    assert filled.dropped == [
        "boxes: 'Truck' is not one of ['Car', 'Person', 'person']",
        "boxes: the box [900, 0, 1000, 10] has no area within the image",
        "boxes: expected an object with a label and its coordinates, got 'a car'",
        "outlines: a polygon needs three distinct points within the image, got [[0, 0], [10, 10]]",
    ]
    unknown_size = regions_from_answers(spec, [answer], DATA, None, box_format="pixels")
    assert "boxes: pixels coordinates need the image's size, which is unknown for this image" in unknown_size.dropped


@pytest.mark.parametrize("box_format", ["gemini", "pixels", "percent"])
def test_the_schema_asks_for_the_conventions_keys_and_is_strict(spec, box_format):
    schema = answer_schema(spec, DATA, box_format)
    assert strict_problems(schema) == []
    box = schema["properties"]["boxes"]["anyOf"][0]["items"]
    key = {"gemini": "box_2d", "pixels": "bbox_2d", "percent": "box"}[box_format]
    assert box["required"] == ["label", key]
    assert box["properties"]["label"]["enum"] == ["Car", "Person"]
    assert (box["properties"][key]["minItems"], box["properties"][key]["maxItems"]) == (4, 4)
    scale = box["properties"][key]["items"].get("maximum")
    assert scale == {"gemini": 1000, "pixels": None, "percent": 100}[box_format]
    outline = schema["properties"]["outlines"]["anyOf"][0]["items"]["properties"]
    assert outline["label"]["enum"] == ["Road", "Sky"] and outline["points"]["minItems"] == 3
    instructions = answer_instructions(spec, box_format)
    assert (
        key in instructions
        and {"gemini": "[ymin, xmin, ymax, xmax] normalized to 0-1000"}.get(box_format, "[x1, y1, x2, y2]")
        in instructions
    )


def test_an_answer_with_no_shapes_is_an_answer_not_a_decline(spec):
    content = '{"boxes": [], "points": [], "outlines": [], "scene": "Night"}'
    reading = read_prediction(spec, DATA, None, [{"content": content}], "json_schema", 0.8, "gemini")
    assert reading.abstention is None
    assert [region["from_name"] for region in reading.filled.regions] == ["scene"]


def test_a_structured_answer_is_read_in_the_projects_convention(spec):
    content = '{"boxes": [{"label": "Car", "box": [10, 20, 30, 40]}], "points": [], "outlines": [], "scene": null}'
    reading = read_prediction(spec, DATA, None, [{"content": content}], "json_schema", 0.8, "percent")
    [car] = reading.filled.regions
    assert car["value"] == {"x": 10, "y": 20, "width": 20, "height": 20, "rotation": 0, "rectanglelabels": ["Car"]}


PAGES = """<View>
  <Image name="pdf" valueList="$pages"/>
  <TextArea name="prompt" toName="pdf"/>
  <RectangleLabels name="fields" toName="pdf"><Label value="Title"/><Label value="Date"/></RectangleLabels>
</View>"""


def test_shapes_on_a_multi_image_name_their_picture_and_are_stored_with_its_index():
    spec = parse_labeling_config(PAGES, "prompt")
    data = {"pages": ["https://example.com/1.png", "https://example.com/2.png"]}
    item = answer_schema(spec, data, "pixels")["properties"]["fields"]["anyOf"][0]["items"]
    assert item["required"] == ["label", "image", "bbox_2d"] and item["properties"]["image"]["minimum"] == 1
    assert "image is which of the pictures of `pdf` it is on" in answer_instructions(spec, "pixels")
    answer = {
        "fields": [
            {"label": "Title", "image": 1, "bbox_2d": [100, 50, 500, 100]},
            {"label": "Date", "image": 2, "bbox_2d": [30, 60, 90, 75]},
            {"label": "Date", "image": 3, "bbox_2d": [30, 60, 90, 75]},
            {"label": "Date", "bbox_2d": [30, 60, 90, 75]},
        ]
    }
    sizes = {"pdf": [ImageSize(1000, 500), ImageSize(300, 150)]}  # two pages of different sizes
    filled = regions_from_answers(spec, [answer], data, None, box_format="pixels", image_sizes=sizes)
    assert spec.interface.validate_prediction({"result": filled.regions, "score": 1.0}, return_errors=True) == []
    title, date = filled.regions
    assert (title["item_index"], title["original_width"], title["value"]["x"], title["value"]["width"]) == (
        0,
        1000,
        10.0,
        40.0,
    )
    assert (date["item_index"], date["original_width"], date["value"]["x"], date["value"]["width"]) == (
        1,
        300,
        10.0,
        20.0,
    )
    assert filled.dropped == [
        "fields: image must be the number of one of the 2 pictures of pdf, got 3",
        "fields: image must be the number of one of the 2 pictures of pdf, got None",
    ]
