import pytest

from shared.domain.backoff import retryable_status


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (0, True),  # no answer at all
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (409, True),
        (422, False),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
def test_which_statuses_are_worth_asking_again(status, retryable):
    assert retryable_status(status) is retryable
