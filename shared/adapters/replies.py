"""Redis replies as the text they are.

redis-py types every reply ``bytes | str``: whether it decodes is a constructor option (``decode_responses``)
that its types cannot follow.  Every client of this backend is made with ``decode_responses=True``
(``Store.from_url``; the tests' fakeredis clients too), so its replies are ``str``, and these casts say so in
one place instead of at each call.  They return the reply itself: nothing is copied or converted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast


def text(reply: bytes | str | None) -> str | None:
    """A string reply (``GET``), None for a missing key."""
    return cast(str | None, reply)


def text_list(reply: Sequence[object]) -> list[str]:
    """The members of a range reply without scores (``ZRANGE``, ``ZREVRANGE``)."""
    return cast(list[str], reply)


def text_set(reply: set[bytes | str]) -> set[str]:
    """A set reply (``SMEMBERS``)."""
    return cast(set[str], reply)


def text_dict(reply: dict[bytes | str, bytes | str]) -> dict[str, str]:
    """A hash reply (``HGETALL``)."""
    return cast(dict[str, str], reply)
