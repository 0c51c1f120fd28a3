"""Bounds on JSON and text from outside, checked before parsing or encoding (shared.domain.untrusted)."""

import json

import pytest

from shared.domain.untrusted import (
    TooDeep,
    loads,
    lone_surrogate_path,
    may_hold_lone_surrogates,
    nesting_exceeds,
)


@pytest.mark.parametrize("depth", [1, 5, 99, 100])
def test_nesting_up_to_the_limit_passes(depth):
    assert not nesting_exceeds(("[" * depth + "]" * depth).encode())
    assert not nesting_exceeds(("[{" * (depth // 2) + "}]" * (depth // 2)).encode())


@pytest.mark.parametrize("depth", [101, 1000, 100_000])
def test_nesting_past_the_limit_is_found_without_parsing(depth):
    assert nesting_exceeds(("[" * depth + "]" * depth).encode())
    assert nesting_exceeds(("[[]" * depth + "]" * depth).encode())  # no long run of openers at first
    with pytest.raises(TooDeep, match="more than 100 levels"):
        loads("[" * depth + "]" * depth)


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"text": "[" * 500 + '"{\\' * 100, "list": ["]]]", "", "[[", {"a": "\\"}]})
    assert not nesting_exceeds(text.encode(), limit=3)
    assert nesting_exceeds(text.encode(), limit=2)


def test_exact_depth_of_mixed_nesting():
    raw = b'{"a": [1, {"b": [[2]]}], "c": {"d": {}}}'
    assert not nesting_exceeds(raw, limit=5) and nesting_exceeds(raw, limit=4)


def test_malformed_deep_json_is_too_deep_not_a_recursion_error():
    for raw in ("[" * 100_000, '{"a":' * 100_000, "[" * 50_000 + "}" * 50_000):
        with pytest.raises(TooDeep):
            loads(raw)


def test_malformed_shallow_json_is_a_plain_value_error():
    with pytest.raises(ValueError) as caught:
        loads('{"a": [1, 2}')
    assert not isinstance(caught.value, TooDeep)


def test_lone_surrogates_are_found_with_their_path():
    body = json.loads('{"ok": "fine \\ud83d\\ude00", "tasks": [{"data": {"text": "x \\ud800"}}]}')
    assert may_hold_lone_surrogates(b'"\\ud800"') and may_hold_lone_surrogates(b'"\\uDFFF"')
    assert not may_hold_lone_surrogates(b'"\\u00e9 plain"')
    assert lone_surrogate_path(body, "") == "tasks[0].data.text"
    assert lone_surrogate_path({"ok": body["ok"]}, "") is None  # a proper pair is text
    assert lone_surrogate_path({"\udfff": 1}, "data") == "data.\udfff"
