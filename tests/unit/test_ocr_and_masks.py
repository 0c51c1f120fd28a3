"""OCR (unlabelled Rectangle/Polygon, their Labels and a per-region TextArea) and masks (BrushLabels, asked as
polygons): the regions Label Studio stores for them, from a vision model's shapes, accepted by the SDK."""

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle

from shared.domain.answers.geometry import ImageSize, ShapeError
from shared.domain.answers.masks import polygon_mask_rle
from shared.domain.answers.regions import regions_from_answers
from shared.domain.labeling.schema import answer_instructions, answer_schema
from shared.domain.labeling.spec import MASKS, POLYGONS, RECTANGLES, parse_labeling_config
from tests.fakes.openai_server.strict import strict_problems

OCR = """<View>
  <Image name="image" value="$ocr"/>
  <TextArea name="prompt" toName="image"/>
  <Labels name="label" toName="image"><Label value="Text"/><Label value="Handwriting"/></Labels>
  <Rectangle name="bbox" toName="image"/>
  <Polygon name="poly" toName="image"/>
  <TextArea name="transcription" toName="image" perRegion="true"/>
</View>"""
MASK = """<View>
  <Image name="image" value="$image"/>
  <TextArea name="prompt" toName="image"/>
  <BrushLabels name="tag" toName="image"><Label value="Airplane"/><Label value="Car"/></BrushLabels>
</View>"""
SIZE = {"image": [ImageSize(800, 600)]}


def test_ocr_controls_are_filled_through_the_shapes():
    spec = parse_labeling_config(OCR, "prompt")
    assert [(output.name, output.kind) for output in spec.outputs] == [("bbox", RECTANGLES), ("poly", POLYGONS)]
    assert spec.unfilled == ()
    assert spec.filled_names == {"bbox", "poly", "label", "transcription"}
    schema = answer_schema(spec, {})
    assert strict_problems(schema) == []
    item = schema["properties"]["bbox"]["anyOf"][0]["items"]
    assert item["required"] == ["label", "box_2d", "text"]
    assert item["properties"]["label"]["enum"] == ["Text", "Handwriting"]
    words = answer_instructions(spec)
    assert "slanted or curved ones go to `poly`" in words and "the others go to `bbox`" in words


def test_an_ocr_region_is_its_shape_its_labels_and_its_text_under_one_id():
    spec = parse_labeling_config(OCR, "prompt")
    answer = {
        "bbox": [{"label": "Text", "bbox_2d": [200, 150, 600, 450], "text": "TOTAL 12.50"}],
        "poly": [{"label": "Handwriting", "points": [[0, 0], [800, 0], [400, 300]], "text": "merci"}],
    }
    filled = regions_from_answers(spec, [answer], {}, None, box_format="pixels", image_sizes=SIZE)
    assert filled.dropped == []
    assert spec.interface.validate_prediction({"result": filled.regions}, return_errors=True) == []
    box, box_label, box_text, poly, poly_label, poly_text = filled.regions
    middle = {"x": 25.0, "y": 25.0, "width": 50.0, "height": 50.0, "rotation": 0}
    assert (box["type"], box["value"]) == ("rectangle", middle)
    assert (box_label["from_name"], box_label["type"], box_label["value"]) == (
        "label",
        "labels",
        middle | {"labels": ["Text"]},
    )
    assert (box_text["from_name"], box_text["type"], box_text["value"]) == (
        "transcription",
        "textarea",
        middle | {"text": ["TOTAL 12.50"]},
    )
    assert box["id"] == box_label["id"] == box_text["id"] != poly["id"]
    outline = {"points": [[0.0, 0.0], [100.0, 0.0], [50.0, 50.0]]}
    assert (poly["type"], poly["value"]) == ("polygon", outline)
    assert poly_label["value"] == outline | {"labels": ["Handwriting"]}
    assert poly_text["value"] == outline | {"text": ["merci"]}
    assert poly["id"] == poly_label["id"] == poly_text["id"]
    assert all((region["original_width"], region["original_height"]) == (800, 600) for region in filled.regions)
    assert filled.labels == ["Text", "Handwriting"]


def test_an_ocr_shape_without_its_text_is_dropped_with_the_reason():
    spec = parse_labeling_config(OCR, "prompt")
    answer = {"bbox": [{"label": "Text", "bbox_2d": [200, 150, 600, 450], "text": " "}]}
    filled = regions_from_answers(spec, [answer], {}, None, box_format="pixels", image_sizes=SIZE)
    assert filled.regions == []
    assert filled.dropped == ["bbox: expected the region's text, got ' '"]


def test_unlabelled_shapes_without_labels_stay_unfilled():
    config = OCR.replace(
        '<Labels name="label" toName="image"><Label value="Text"/><Label value="Handwriting"/></Labels>', ""
    )
    config = config.replace("</View>", '<Choices name="kind" toName="image"><Choice value="Receipt"/></Choices></View>')
    spec = parse_labeling_config(config, "prompt")
    assert [output.name for output in spec.outputs] == ["kind"]
    reasons = {item.name: item.reason for item in spec.unfilled}
    assert reasons["bbox"] == "an unlabelled <Rectangle> is predicted only with a <Labels> on the same <Image>"
    assert "per-region" in reasons["transcription"]


def test_a_labelled_box_gets_its_transcription_too():
    config = """<View><Image name="image" value="$image"/><TextArea name="prompt" toName="image"/>
      <RectangleLabels name="label" toName="image"><Label value="O"/></RectangleLabels>
      <TextArea name="transcription" toName="image" perRegion="true"/></View>"""
    spec = parse_labeling_config(config, "prompt")
    answer = {"label": [{"label": "O", "box_2d": [100, 100, 200, 300], "text": "Coffee"}]}
    filled = regions_from_answers(spec, [answer], {}, None, image_sizes=SIZE)
    assert spec.interface.validate_prediction({"result": filled.regions}, return_errors=True) == []
    box, text = filled.regions
    assert box["type"] == "rectanglelabels" and text["type"] == "textarea" and box["id"] == text["id"]
    assert text["value"] == {key: box["value"][key] for key in ("x", "y", "width", "height", "rotation")} | {
        "text": ["Coffee"]
    }


def covered(rle: list[int], size: ImageSize) -> np.ndarray:
    """The pixels a brush region covers, decoded with the SDK (RGBA; the editor reads alpha)."""
    return decode_rle(rle).reshape(size.height, size.width, 4)[:, :, 3] > 0


def test_a_polygon_becomes_the_mask_of_its_area():
    size = ImageSize(40, 20)
    mask = covered(polygon_mask_rle([[25.0, 25.0], [75.0, 25.0], [75.0, 75.0], [25.0, 75.0]], size), size)
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (10, 30, 5, 15)  # pixels 10..29 × 5..14, and the outline
    assert mask.sum() == 21 * 11
    triangle = covered(polygon_mask_rle([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]], size), size)
    assert triangle[0, 0] and triangle[1, 1] and not triangle[19, 39] and not triangle[15, 30]


def test_a_mask_needs_the_pictures_size():
    with pytest.raises(ShapeError, match="unknown for this image"):
        polygon_mask_rle([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]], None)


def test_brush_labels_are_asked_as_polygons_and_stored_as_rle():
    spec = parse_labeling_config(MASK, "prompt")
    [output] = spec.outputs
    assert output.kind == MASKS
    item = answer_schema(spec, {})["properties"]["tag"]["anyOf"][0]["items"]
    assert item["required"] == ["label", "points"]
    assert "polygon around its area" in answer_instructions(spec)
    answer = {"tag": [{"label": "Car", "points": [[0, 0], [0, 500], [500, 500], [500, 0]]}]}  # gemini: [y, x]
    filled = regions_from_answers(spec, [answer], {}, None, image_sizes=SIZE)
    assert spec.interface.validate_prediction({"result": filled.regions}, return_errors=True) == []
    [region] = filled.regions
    assert region["type"] == "brushlabels" and region["value"]["format"] == "rle"
    assert region["value"]["brushlabels"] == ["Car"]
    mask = covered(region["value"]["rle"], SIZE["image"][0])
    assert mask[:300, :400].all() and not mask[302:, :].any() and not mask[:, 402:].any()  # the top-left quarter


def test_a_mask_on_a_picture_of_unknown_size_is_dropped_with_the_reason():
    spec = parse_labeling_config(MASK, "prompt")
    answer = {"tag": [{"label": "Car", "points": [[0, 0], [0, 500], [500, 500]]}]}
    filled = regions_from_answers(spec, [answer], {}, None)
    assert filled.regions == []
    assert filled.dropped == ["tag: a mask is drawn at the image's size, which is unknown for this image"]


def test_unlabelled_shapes_whose_labels_list_nothing_stay_unfilled():
    config = """<View><Image name="image" value="$image"/><TextArea name="prompt" toName="image"/>
      <Labels name="label" toName="image"/><Rectangle name="bbox" toName="image"/>
      <Choices name="kind" toName="image"><Choice value="Receipt"/></Choices></View>"""
    spec = parse_labeling_config(config, "prompt")
    reasons = {item.name: item.reason for item in spec.unfilled}
    assert reasons == {"bbox": "<Labels> lists no options", "label": reasons["label"]}
    assert "none on it is predicted" in reasons["label"]
