"""Checks on JSON and text from outside, made before anything recursive or encoding touches them.

Python's ``json`` parser recurses once per nesting level, so a body 100,000 levels deep raises
RecursionError (and one just under the interpreter's limit makes every later walk over it fail). And JSON may
spell a lone surrogate (``"\\ud800"``): Python keeps it in a ``str``, which then cannot be encoded as UTF-8
when it is sent to the provider or written anywhere. Both are found here, cheaply, on the raw bytes first.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH = 100  # Label Studio's bodies nest about 8 levels (tasks → data → dialogue → turn)

_STRING = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")  # in valid JSON both kinds nest alike; only depth matters here
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class TooDeep(ValueError):
    """JSON nested deeper than MAX_JSON_DEPTH."""


def nesting_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``raw`` nests arrays and objects more than ``limit`` deep, found without parsing.

    Strings are dropped (brackets inside text do not count) and the rest is reduced to its brackets, all of one
    kind; then innermost pairs are removed, one level per pass (``bytes.replace`` does not rescan what it
    joins): more than ``limit`` passes means too deep, and so does a run of more openers than levels remain.
    Every step is a C loop over bytes, linear in the text. Malformed text (brackets that never pair) answers
    False, for the parser to report (``loads`` also catches its RecursionError).
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    # Escaped backslashes and quotes go first; then only brackets and quotes are kept, adjacent quotes (empty
    # strings, or two strings with no bracket between them) dropped, and what remains between quotes is text.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in raw else raw
    structure = unescaped.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    brackets = _STRING.sub(b"", structure).translate(_AS_SQUARE)
    for done in range(limit):
        if not brackets:
            return False
        # After ``done`` passes the rest nests (depth - done) deep, and a run of n openers nests at least n.
        if b"[" * (limit - done + 1) in brackets:
            return True
        reduced = brackets.replace(b"[]", b"")
        if reduced == brackets:
            return False
        brackets = reduced
    return bool(brackets)


def loads(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for untrusted text: raises TooDeep past ``limit`` levels, ValueError when malformed."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if nesting_exceeds(data, limit):
        raise TooDeep(f"JSON nested more than {limit} levels deep")
    try:
        return json.loads(raw)
    except RecursionError:  # malformed and deep (brackets that never close): the parser recursed first
        raise TooDeep(f"JSON nested more than {limit} levels deep") from None


def may_hold_lone_surrogates(raw: bytes) -> bool:
    """Whether the JSON text spells a surrogate escape at all (valid pairs too): only then is a walk needed."""
    return _SURROGATE_ESCAPE.search(raw) is not None


def lone_surrogate_path(value: Any, path: str) -> str | None:
    """Where in ``value`` (a parsed JSON value, named ``path``) a string holds a lone surrogate, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        items = ((f"{path}.{key}" if path else str(key), key, item) for key, item in value.items())
        for where, key, item in items:
            found = lone_surrogate_path(key, where) or lone_surrogate_path(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = lone_surrogate_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def lone_surrogate_message(where: str) -> str:
    return (
        f"{where} holds a lone surrogate (an unpaired \\ud800–\\udfff escape), which is not valid Unicode text: "
        "fix the text at its source"
    )
