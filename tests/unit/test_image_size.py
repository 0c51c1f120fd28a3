"""The size of a picture the backend holds, as the annotator's browser shows it."""

import base64
import io
import urllib.parse

from PIL import Image

from shared.adapters.images import image_size
from shared.domain.answers.geometry import ImageSize


def encoded(fmt: str, size=(40, 30), exif_orientation: int | None = None) -> bytes:
    image = Image.new("RGB", size, "white")
    out = io.BytesIO()
    if exif_orientation is None:
        image.save(out, fmt)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(out, fmt, exif=exif)
    return out.getvalue()


def data_uri(body: bytes, content_type: str = "image/png") -> str:
    return f"data:{content_type};base64,{base64.b64encode(body).decode()}"


def test_the_size_of_each_common_format():
    for fmt, content_type in (
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
    ):
        assert image_size(data_uri(encoded(fmt), content_type)) == ImageSize(40, 30), fmt


def test_a_photo_turned_by_its_exif_orientation_is_measured_as_shown():
    # stored 30 x 40 with "rotate 90° clockwise to show": the browser (and Label Studio) shows it 40 x 30
    assert image_size(data_uri(encoded("JPEG", (30, 40), exif_orientation=6), "image/jpeg")) == ImageSize(40, 30)
    assert image_size(data_uri(encoded("JPEG", (30, 40), exif_orientation=3), "image/jpeg")) == ImageSize(30, 40)


def test_a_percent_encoded_data_uri_is_read_too():
    assert image_size("data:image/png," + urllib.parse.quote_from_bytes(encoded("PNG"))) == ImageSize(40, 30)


def test_what_is_no_picture_the_backend_holds_has_no_size():
    assert image_size("https://example.com/a.png") is None
    assert image_size(data_uri(b"not an image")) is None
    assert image_size("data:image/png;base64,@@@") is None
    assert image_size(data_uri(encoded("PNG")[:20])) is None  # cut short before the size
