"""A project's LLM spend per UTC day, against ``PROJECT_DAILY_USD``: which day a moment belongs to, when the
day's bound lifts, and what to tell whoever meets it; and a job's budget (``--max-usd``, ``max_usd``) as given."""

from __future__ import annotations

import math
import time

from shared.domain.errors import InvalidRequest

DAY_SECONDS = 24 * 3600


def utc_day(now: float) -> str:
    """The UTC day of ``now`` (a Unix time), as the counter's key names it: ``2026-12-07``."""
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def next_utc_midnight(now: float) -> float:
    """When the day of ``now`` ends, and with it the day's spend."""
    return (int(now) // DAY_SECONDS + 1) * DAY_SECONDS


def budget_usd(name: str, raw: str) -> float:
    """A job's budget as typed or sent (``name`` says where): a number of USD, 0 or more (0: no budget);
    InvalidRequest otherwise, naming what was given."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise InvalidRequest(f"{name} must be a number of USD, 0 or more (0: no budget), got {raw!r}")
    return value


def limit_reached_message(project: str, limit: float, spent: float, now: float) -> str:
    """Why a request or a job's task stops: the setting, what was spent, and when it lifts."""
    resets = next_utc_midnight(now)
    hours = (resets - now) / 3600
    return (
        f"project {project} reached PROJECT_DAILY_USD={limit:g} (spent {spent:.4f} USD today, UTC); it resets at "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(resets))} UTC, in {hours:.1f} h; or the operator raises "
        "PROJECT_DAILY_USD"
    )
