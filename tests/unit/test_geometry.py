"""Each coordinate convention a vision model answers in, converted to Label Studio's percentages.

The same box, the same point and the same triangle on a 800 x 600 image, written as Gemini, Qwen2.5-VL (pixels)
and in percent, must land on the same region; then clamping, corners given the wrong way round, and what is
refused with its reason.
"""

import pytest

from shared.domain.answers.geometry import BOX_FORMATS, DEFAULT_BOX_FORMAT, ImageSize, ShapeError, keypoint_width

SIZE = ImageSize(800, 600)
# A box from (200, 150) to (600, 450) pixels: x 25 %, y 25 %, width 50 %, height 50 %.
BOX = {"gemini": [250, 250, 750, 750], "pixels": [200, 150, 600, 450], "percent": [25, 25, 75, 75]}
# A box from (80, 30) to (400, 570) pixels: x 10 %, y 5 %, width 40 %, height 90 %.
TALL_BOX = {"gemini": [50, 100, 950, 500], "pixels": [80, 30, 400, 570], "percent": [10, 5, 50, 95]}
# The point (400, 60) pixels: x 50 %, y 10 %.
POINT = {"gemini": [100, 500], "pixels": [400, 60], "percent": [50, 10]}
# A triangle (0, 0), (800, 0), (400, 300) pixels.
TRIANGLE = {
    "gemini": [[0, 0], [0, 1000], [500, 500]],
    "pixels": [[0, 0], [800, 0], [400, 300]],
    "percent": [[0, 0], [100, 0], [50, 50]],
}


def test_the_default_is_geminis_convention_and_the_setting_lists_every_convention():
    from typing import get_args

    from shared.domain.config import VisionBoxFormat, setting_default

    assert DEFAULT_BOX_FORMAT == "gemini" == setting_default("vision_box_format")
    assert set(get_args(VisionBoxFormat)) == set(BOX_FORMATS)


@pytest.mark.parametrize("name", list(BOX_FORMATS))
def test_a_box_in_each_convention_becomes_the_same_percent_rectangle(name):
    fmt = BOX_FORMATS[name]
    assert fmt.rectangle(BOX[name], SIZE) == pytest.approx({"x": 25, "y": 25, "width": 50, "height": 50, "rotation": 0})
    assert fmt.rectangle(TALL_BOX[name], SIZE) == pytest.approx(
        {"x": 10, "y": 5, "width": 40, "height": 90, "rotation": 0}
    )


@pytest.mark.parametrize("name", list(BOX_FORMATS))
def test_a_point_and_a_polygon_in_each_convention(name):
    fmt = BOX_FORMATS[name]
    assert fmt.point(POINT[name], SIZE) == pytest.approx((50, 10))
    points = fmt.polygon(TRIANGLE[name], SIZE)
    assert [coordinate for point in points for coordinate in point] == pytest.approx([0, 0, 100, 0, 50, 50])


def test_the_keys_and_orders_the_model_is_asked_for():
    gemini, pixels, percent = (BOX_FORMATS[name] for name in ("gemini", "pixels", "percent"))
    assert (gemini.box_key, gemini.box_order, gemini.point_order) == (
        "box_2d",
        "[ymin, xmin, ymax, xmax]",
        "[y, x]",
    )
    assert (pixels.box_key, pixels.point_key, pixels.point_order) == ("bbox_2d", "point_2d", "[x, y]")
    assert percent.box_key == "box" and percent.full_scale == 100


def test_relative_conventions_need_no_image_size_but_pixels_do():
    assert BOX_FORMATS["gemini"].rectangle(BOX["gemini"], None)["width"] == pytest.approx(50)
    assert BOX_FORMATS["percent"].point(POINT["percent"], None) == pytest.approx((50, 10))
    with pytest.raises(ShapeError, match="pixels coordinates need the image's size"):
        BOX_FORMATS["pixels"].rectangle(BOX["pixels"], None)


def test_shapes_are_clamped_to_the_image():
    pixels = BOX_FORMATS["pixels"]
    # 100 px left of the image to 100 px beyond its right edge, and below its bottom
    assert pixels.rectangle([-100, 300, 900, 700], SIZE) == pytest.approx(
        {"x": 0, "y": 50, "width": 100, "height": 50, "rotation": 0}
    )
    assert BOX_FORMATS["gemini"].point([1200, -5], SIZE) == (0.0, 100.0)


def test_corners_given_the_wrong_way_round_are_put_right():
    assert BOX_FORMATS["pixels"].rectangle([600, 450, 200, 150], SIZE) == pytest.approx(
        {"x": 25, "y": 25, "width": 50, "height": 50, "rotation": 0}
    )


@pytest.mark.parametrize(
    ("name", "shape", "values", "reason"),
    [
        ("gemini", "rectangle", [10, 20, 30], r"a box is \[ymin, xmin, ymax, xmax\]"),
        ("pixels", "rectangle", "10,20,30,40", "a box is"),
        ("pixels", "rectangle", [10, "20", 30, 40], "expected a number for y"),
        ("pixels", "rectangle", [900, 10, 1000, 50], "has no area within the image"),
        ("percent", "rectangle", [10, 10, 10, 50], "has no area"),
        ("gemini", "point", [1, 2, 3], r"a point is \[y, x\]"),
        ("percent", "point", None, r"a point is \[x, y\]"),
        ("percent", "polygon", [[0, 0], [50, 50]], "three distinct points"),
        ("percent", "polygon", [[0, 0], [0, 0], [50, 50]], "three distinct points"),
        ("percent", "polygon", [[0, 0], [50], [50, 50]], "a point is"),
        ("percent", "polygon", {"points": []}, "a polygon is a list of points"),
    ],
)
def test_what_is_refused_says_why(name, shape, values, reason):
    with pytest.raises(ShapeError, match=reason):
        getattr(BOX_FORMATS[name], shape)(values, SIZE)


def test_a_keypoints_size_is_the_controls_stroke_width_in_percent_of_the_picture():
    assert keypoint_width(None, SIZE) == 0.25  # Label Studio's default strokeWidth, 2 px of 800
    assert keypoint_width("4", SIZE) == 0.5
    assert keypoint_width("4", None) == 0.4  # of a nominal 1,000-pixel picture
    assert keypoint_width("thick", SIZE) == 0.25
