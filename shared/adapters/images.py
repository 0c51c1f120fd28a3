"""Images reach the model as a vision ``image_url`` part.

``data:`` URIs go as they are; files that Label Studio serves (``/data/upload/…``,
``/data/local-files/?d=…``, or any URL on the Label Studio host) are fetched with its key and inlined
as base64, since the provider cannot reach them; other public http(s) URLs are passed on for the
provider to fetch.  Against SSRF: a Label Studio on a private address is fetched from only when the
operator configured it (LABEL_STUDIO_URL or ALLOWED_PRIVATE_HOSTS), not when a /setup request named it
(``shared.projects`` then gives no access, and the reason); URLs on private addresses, in any spelling,
are not passed on; downloads follow no redirects and stop at MAX_IMAGE_BYTES.

The size of a picture the backend holds is read from it (``image_size``), for shapes a vision model places in
pixels and for the ``original_width``/``original_height`` of the regions.
"""

from __future__ import annotations

import base64
import io
import mimetypes
import urllib.parse

import PIL.Image

from shared.adapters.label_studio import LabelStudioGateway
from shared.adapters.netguard import AddressPolicy
from shared.domain.answers.geometry import ImageSize
from shared.domain.endpoints import host_port
from shared.domain.errors import TaskError
from shared.domain.routing import NO_LABEL_STUDIO_URL_AND_KEY

_LABEL_STUDIO_PATHS = ("/data/", "/storage-data/", "/tasks/")


def image_url_for_model(
    value: object,
    label_studio: LabelStudioGateway | None,
    max_bytes: int,
    policy: AddressPolicy,
    no_label_studio_because: str | None = None,
) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TaskError("image field must be a URL or a data: URI")
    value = value.strip()
    if value.startswith("data:"):
        if len(value) > max_bytes * 4 // 3 + 64:
            raise TaskError(f"inline image is over the limit of {max_bytes} bytes")
        return value
    served_by_label_studio = value.startswith(_LABEL_STUDIO_PATHS) or (
        label_studio is not None and label_studio.access.owns(value)
    )
    if served_by_label_studio:
        if label_studio is None:
            raise TaskError(f"image {value} is not fetched: {no_label_studio_because or NO_LABEL_STUDIO_URL_AND_KEY}")
        body, content_type = label_studio.download(value, max_bytes)
        if not content_type.startswith("image/"):
            content_type = mimetypes.guess_type(value.split("?")[0])[0] or "image/png"
        return f"data:{content_type};base64,{base64.b64encode(body).decode('ascii')}"
    if value.startswith(("http://", "https://")):
        where = host_port(value)
        reason = policy.refusal(*where, unresolved_ok=True) if where else "it names no host"
        if reason:
            raise TaskError(
                f"image {value[:100]} is on a private address: only public URLs go to the provider ({reason})"
            )
        return value
    raise TaskError(f"unsupported image reference {value[:100]!r}: use http(s), data: or a Label Studio path")


_EXIF_ORIENTATION = 0x0112
_TURNED = (5, 6, 7, 8)  # EXIF orientations that show the picture turned a quarter: width and height swap


def image_size(url: str) -> ImageSize | None:
    """The size in pixels of a picture the backend holds (a ``data:`` URI: given, or fetched from Label Studio by
    ``image_url_for_model``), as the annotator's browser shows it (EXIF orientation applied); None for a URL passed
    on to the provider, or bytes that are no image Pillow reads.  Only the header is read, not the pixels."""
    if not url.startswith("data:"):
        return None
    header, _, payload = url.partition(",")
    try:
        body = base64.b64decode(payload) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
        with PIL.Image.open(io.BytesIO(body)) as image:
            width, height = image.size
            turned = image.getexif().get(_EXIF_ORIENTATION) in _TURNED
    except (ValueError, OSError, PIL.Image.DecompressionBombError):
        return None
    return ImageSize(height, width) if turned else ImageSize(width, height)
