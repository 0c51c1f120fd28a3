"""Every Label Studio gallery template this backend reads (tests/configs/gallery), over HTTP.

Each template, with a prompt TextArea added, goes through ``/setup`` (200: none is refused) and an interactive
``/predict``; the fake model answers an instance of the schema it was sent,
quoting the task's own words for spans.  Its images are a picture with two objects drawn on it, sent inline,
and the fake's vision model (tests/fakes/openai_server/vision.py) answers the shape controls (RectangleLabels,
KeyPointLabels, PolygonLabels, OCR's Rectangle and Polygon with their text, BrushLabels as polygons) with where the
objects are, which is where the regions must be (a mask, decoded with the SDK, covers the object's pixels); OCR's
labels and transcriptions share their shape's id.  Every prediction must pass ``LabelInterface.validate_prediction``
and fill every control of its template (issue #28): a control without a region fails the test, named with the reason
the spec gives for leaving it.  The test prints a table: template, controls in scope, controls filled.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle
from label_studio_sdk.label_interface import LabelInterface

from shared.domain.labeling.schema import answer_schema
from shared.domain.labeling.spec import KEYPOINTS, MASKS, POLYGONS, RECTANGLES, parse_labeling_config
from tests.fakes.openai_server.vision import picture_with, shapes_reply, transcription
from tests.unit.test_gallery import TEMPLATES, sample_answer, sample_task, with_prompt

PROJECT = "5.1700000000"
# The gallery's controls, other than the prompt added to each (all of them filled): docs/structured-output.md says so
CONTROLS = 76
# The picture every Image shows (the SDK's sample images are on localhost, which never goes to the provider), its
# objects, and where Label Studio must show them (the default convention, gemini, is exact to 0.1 %)
OBJECTS, WIDTH, HEIGHT = [(40, 30, 120, 90), (200, 150, 300, 270)], 320, 300
PICTURE = "data:image/png;base64," + base64.b64encode(picture_with(OBJECTS, WIDTH, HEIGHT)).decode()
BOXES = [{"x": 12.5, "y": 10.0, "width": 25.0, "height": 20.0}, {"x": 62.5, "y": 50.0, "width": 31.25, "height": 40.0}]
CENTRES = [{"x": 25.0, "y": 20.0}, {"x": 78.125, "y": 70.0}]


def with_pictures(spec, data: dict) -> dict:
    images = {obj.field for obj in spec.objects if obj.kind == "Image" and obj.field in data}
    return data | {field: [PICTURE, PICTURE] if isinstance(data[field], list) else PICTURE for field in images}


def shapes_of(spec, schema: dict, answer: dict):
    """The fake's reply: ``answer``, with every shape control's shapes as the fake vision model sees them."""
    kinds: dict[str, dict[str, str]] = {RECTANGLES: {}, KEYPOINTS: {}, POLYGONS: {}, MASKS: {}}
    for output in spec.outputs:
        if output.kind in kinds and output.name in schema["properties"]:
            labels = schema["properties"][output.name]["anyOf"][0]["items"]["properties"]["label"]["enum"]
            kinds[output.kind][output.name] = labels[-1]
    if not any(kinds.values()):
        return (lambda messages, index: answer), kinds
    numbered = frozenset(output.name for output in spec.outputs if output.target.image_list)
    transcribed = frozenset(output.name for output in spec.outputs if output.transcribed_by is not None)
    outlines = kinds[POLYGONS] | kinds[MASKS]  # a mask is asked as the polygon around its area
    reply = shapes_reply("gemini", kinds[RECTANGLES], kinds[KEYPOINTS], outlines, answer, numbered, transcribed)
    return reply, kinds


def object_mask(box: tuple[int, int, int, int], grown: int = 0) -> np.ndarray:
    """The object's pixels, or those ``grown`` pixels around it too."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    left, top, right, bottom = box
    mask[max(0, top - grown) : bottom + grown, max(0, left - grown) : right + grown] = True
    return mask


def is_mask_of(covered: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Every pixel of the object, and nothing beyond the pixel around it (the polygon's outline, filled)."""
    return bool((covered >= object_mask(box)).all() and (covered <= object_mask(box, grown=1)).all())


def assert_ocr_companions(prediction: dict, spec) -> None:
    """Each shape's labels and transcription (OCR) share its id and its geometry, and the text is the one the
    fake read in that object."""
    by_id: dict[str, list[dict]] = {}
    for region in prediction["result"]:
        by_id.setdefault(region["id"], []).append(region)
    for output in spec.outputs:
        if not output.companions:
            continue
        shapes = [region for region in prediction["result"] if region["from_name"] == output.name]
        assert shapes, f"{output.name}: no region"
        for shape in shapes:
            geometry = {key: value for key, value in shape["value"].items() if key != shape["type"]}
            together = {region["from_name"]: region for region in by_id[shape["id"]]}
            assert set(together) == {output.name, *(tag.name for tag in output.companions)}, together
            for tag in output.companions:
                assert geometry.items() <= together[tag.name]["value"].items(), together[tag.name]
            if output.labels_from is not None:
                assert together[output.labels_from.name]["value"]["labels"] == [output.options[-1].label]
            if output.transcribed_by is not None:
                xs = [geometry["x"]] if "x" in geometry else [x for x, _y in geometry["points"]]
                order = 0 if min(xs) < 50 else 1  # the objects' left edges are at 12.5 % and 62.5 %
                assert together[output.transcribed_by.name]["value"]["text"] == [transcription(order)]


def assert_where_the_objects_are(prediction: dict, kinds: dict) -> None:
    for region in prediction["result"]:
        value = region["value"]
        if region["from_name"] in kinds[RECTANGLES]:
            placed = {key: value[key] for key in ("x", "y", "width", "height")}
            assert any(placed == pytest.approx(box, abs=0.1) for box in BOXES), region
        elif region["from_name"] in kinds[KEYPOINTS]:
            assert any({"x": value["x"], "y": value["y"]} == pytest.approx(point, abs=0.1) for point in CENTRES), region
        elif region["from_name"] in kinds[POLYGONS]:
            xs, ys = [x for x, _y in value["points"]], [y for _x, y in value["points"]]
            box = {"x": min(xs), "y": min(ys), "width": max(xs) - min(xs), "height": max(ys) - min(ys)}
            assert any(box == pytest.approx(expected, abs=0.1) for expected in BOXES), region
        elif region["from_name"] in kinds[MASKS]:
            assert (region["original_width"], region["original_height"]) == (WIDTH, HEIGHT), region
            covered = decode_rle(value["rle"]).reshape(HEIGHT, WIDTH, 4)[:, :, 3] > 0
            assert any(is_mask_of(covered, box) for box in OBJECTS), "the mask is one object's pixels"


def predict_template(client, fake_llm, config: str) -> tuple[set[str], set[str], dict[str, str]]:
    """The template's controls in scope, those its prediction filled, and why the spec leaves any unfilled;
    asserts what must hold for each."""
    setup = client.post("/setup", json={"project": PROJECT, "schema": config})
    assert setup.status_code == 200, setup.json  # a refusal names each control it cannot fill, and why
    spec = parse_labeling_config(config, "prompt")
    data = with_pictures(spec, sample_task(config))
    schema = answer_schema(spec, data)
    answer = sample_answer(spec, schema, data, seed=0)
    fake_llm.reset()
    fake_llm.reply, shape_controls = shapes_of(spec, schema, answer)
    prompt = {"from_name": spec.prompt.name, "to_name": spec.prompt.to_name[0], "type": "textarea"}
    context = {"result": [prompt | {"value": {"text": ["Label this task"]}}]}
    body = {
        "tasks": [{"id": 1, "data": data}],
        "project": PROJECT,
        "label_config": config,
        "params": {"context": context},
    }
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.json
    [prediction] = response.json["results"]
    [request] = fake_llm.chat_requests
    assert request.body["response_format"]["json_schema"]["schema"] == schema
    # the SDK refuses its own Pairwise regions (to_name is the Pairwise tag, as Label Studio's editor writes it)
    checked = {**prediction, "result": [region for region in prediction["result"] if region["type"] != "pairwise"]}
    assert LabelInterface(config).validate_prediction(checked, return_errors=True) == []
    assert_where_the_objects_are(prediction, shape_controls)
    assert_ocr_companions(prediction, spec)
    on_pages = {output.name for output in spec.outputs if output.target.image_list}
    pages = {region["item_index"] for region in prediction["result"] if region["from_name"] in on_pages}
    assert pages == ({0, 1} if on_pages else set()), "shapes on an <Image valueList> are on the picture seen"
    in_scope = {tag.name for tag in spec.interface.controls} - {spec.prompt.name}
    filled = {region["from_name"] for region in prediction["result"]} - {spec.prompt.name}
    return in_scope, filled, {item.name: f"{item.tag}: {item.reason}" for item in spec.unfilled}


def test_every_gallery_template_over_http(client, fake_llm):
    rows, problems, unfilled = [], [], []
    for path in TEMPLATES:
        try:
            controls, filled, reasons = predict_template(client, fake_llm, with_prompt(path.read_text()))
        except AssertionError as exc:
            problems.append(f"{path.stem}: {exc}")
            rows.append((path.stem, 0, 0, "FAILED"))
            continue
        left = sorted(f"{name} ({reasons.get(name, 'filled by the spec, no region')})" for name in controls - filled)
        unfilled += [f"{path.stem}: {item}" for item in left]
        rows.append((path.stem, len(controls), len(filled), "unfilled " + "; ".join(left) if left else ""))
    in_scope = sum(row[1] for row in rows)
    filled = sum(row[2] for row in rows)
    width = max(len(row[0]) for row in rows)
    print(f"\n{'template':<{width}}  in scope  filled  note")
    for name, scope, done, note in rows:
        print(f"{name:<{width}}  {scope:>8}  {done:>6}  {note}")
    print(f"{'whole gallery':<{width}}  {in_scope:>8}  {filled:>6}  {filled / in_scope:.1%} filled")
    assert problems == []
    assert unfilled == [], "every control of the gallery is filled"
    assert (in_scope, filled) == (CONTROLS, CONTROLS)
