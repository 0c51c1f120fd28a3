"""At most ``--threads`` - 2 requests per API process wait for the LLM; the next one is a 503 at once."""

import pytest

from api.capacity import LLMSlots, slots_for
from shared.domain.errors import Unavailable


def test_a_request_past_the_slots_is_turned_away_at_once_and_a_freed_slot_serves_again():
    slots = LLMSlots(2)
    with slots.hold(), slots.hold():
        with pytest.raises(Unavailable, match="all 2 request threads of this process that may wait .* --threads"):
            with slots.hold():
                pass
    with slots.hold():
        pass


def test_two_threads_are_kept_for_health_and_the_like():
    assert [slots_for(threads) for threads in (1, 2, 3, 16)] == [1, 1, 1, 14]
