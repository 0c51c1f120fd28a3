"""The request's deadline (shared.adapters.deadline): waits stop short of it, work outside a request has none."""

import time

import pytest

from shared.adapters import deadline
from shared.domain.errors import DeadlineExceeded, TaskError


def test_outside_a_request_there_is_no_deadline():
    assert deadline.remaining() is None
    deadline.check(3600)  # a batch chunk may wait as long as its own limits say


def test_a_wait_that_would_pass_the_deadline_fails_at_once():
    with deadline.deadline_after(0.5):
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="within 0.5 s"):
            deadline.sleep(2.0)
        assert time.monotonic() - started < 0.1


def test_a_task_that_failed_after_the_deadline_failed_because_of_it():
    error = TaskError("could not fetch the image: ReadTimeout")
    with deadline.deadline_after(60.0):
        assert deadline.overdue(error) is error
    with deadline.deadline_after(0.0):
        late = deadline.overdue(error)
        assert isinstance(late, DeadlineExceeded) and late.__cause__ is error
