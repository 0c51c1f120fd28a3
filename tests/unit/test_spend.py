"""PROJECT_DAILY_USD's day: a UTC day, counted in one key per day, lifting at the next 00:00 UTC."""

import calendar

from shared.domain.estimation.spend import limit_reached_message, next_utc_midnight, utc_day


def at(text: str) -> float:
    return float(calendar.timegm(tuple(int(part) for part in text.replace("T", "-").replace(":", "-").split("-"))))


def test_the_day_is_the_utc_day_whatever_the_machines_time_zone():
    assert utc_day(at("2026-12-07T23:59:59")) == "2026-12-07"
    assert utc_day(at("2026-12-08T00:00:00")) == "2026-12-08"


def test_the_bound_lifts_at_the_next_utc_midnight():
    assert next_utc_midnight(at("2026-12-07T08:49:09")) == at("2026-12-08T00:00:00")
    assert next_utc_midnight(at("2026-12-31T23:59:59")) == at("2027-01-01T00:00:00")
    assert next_utc_midnight(at("2026-12-08T00:00:00")) == at("2026-12-09T00:00:00")


def test_the_message_names_the_setting_the_spend_and_when_it_resets():
    message = limit_reached_message("7", 5.0, 5.0123, at("2026-12-07T22:30:00"))

    assert message.startswith("project 7 reached PROJECT_DAILY_USD=5 (spent 5.0123 USD today, UTC)")
    assert "it resets at 2026-12-08 00:00 UTC, in 1.5 h" in message
