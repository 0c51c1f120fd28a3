import json

import pytest

from shared.domain.batch_requests import (
    AnswerLine,
    custom_id,
    group_lines,
    poll_delay,
    read_answer_lines,
    request_line,
    task_of,
)


def test_a_line_is_a_post_keyed_by_the_task():
    line = json.loads(request_line(custom_id(42), "/v1/chat/completions", {"model": "m", "messages": []}))
    assert line == {"custom_id": "task-42", "method": "POST", "url": "/v1/chat/completions", "body": line["body"]}
    assert task_of(line["custom_id"]) == "42" and task_of("someone-else") is None


def test_files_hold_at_most_the_requests_and_bytes_allowed_in_order():
    lines = [b"x" * 10 + b"\n" for _ in range(7)]
    assert [len(f) for f in group_lines(lines, max_requests=3)] == [3, 3, 1]
    assert [len(f) for f in group_lines(lines, max_requests=100, max_bytes=25)] == [2, 2, 2, 1]
    assert [line for f in group_lines(lines, 3) for line in f] == lines
    assert list(group_lines([], 3)) == []
    with pytest.raises(ValueError, match="larger than a batch file may be"):
        list(group_lines([b"y" * 30], 3, max_bytes=25))


def test_output_and_error_lines_name_their_task_and_what_went_wrong():
    content = "\n".join(
        json.dumps(line)
        for line in [
            {"custom_id": "task-1", "response": {"status_code": 200, "body": {"choices": []}}, "error": None},
            {
                "custom_id": "task-2",
                "response": {"status_code": 400, "body": {"error": {"message": "bad", "code": "invalid"}}},
                "error": None,
            },
            {"custom_id": "task-3", "response": None, "error": {"code": "batch_expired", "message": "too late"}},
            {"custom_id": "other", "response": {"status_code": 200, "body": {}}},
        ]
    ).encode()
    assert list(read_answer_lines(content + b"\n\n")) == [
        AnswerLine("1", {"choices": []}, None),
        AnswerLine("2", None, "status 400: invalid: bad"),
        AnswerLine("3", None, "batch_expired: too late"),
    ]


def test_polls_back_off_from_the_first_delay_to_the_longest():
    assert [poll_delay(n, 10, 300) for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert poll_delay(10_000, 10, 300) == 300
