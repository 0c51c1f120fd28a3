"""``PROJECT_DAILY_USD``: each project's LLM spend per UTC day, counted as the provider reports tokens and
checked before each call that would reach it (an interactive request, a job's task) and before a job starts.

The spend is the tokens at ``LLM_PRICES`` (Batch API tokens at ``LLM_BATCH_DISCOUNT``), in one Redis counter
per project and day, shared by every process; a model without a price is not counted.  Calls already in
flight when the bound is crossed still finish, so a day may end a few calls over it.
"""

from __future__ import annotations

import time

from redis.client import Pipeline

from shared.adapters.store import Store
from shared.domain.config import Settings
from shared.domain.errors import LimitReached
from shared.domain.estimation.pricing import TokenUsage, usage_cost
from shared.domain.estimation.spend import limit_reached_message, utc_day


class DailySpend:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.limit = settings.project_daily_usd
        self.prices = settings.prices
        self.batch_discount = settings.llm_batch_discount
        self.store = store

    def record(
        self, project: str, model: str, usage: TokenUsage, via_batch: bool = False, writes: Pipeline | None = None
    ) -> None:
        """Count what these tokens cost today (nothing for a model without a price)."""
        cost = usage_cost(self.prices.get(model), usage, self.batch_discount if via_batch else 1.0)
        if cost:
            self.store.add_spend(project, utc_day(time.time()), cost, writes)

    def check(self, project: str | None) -> None:
        """Raise LimitReached when the project has spent its ``PROJECT_DAILY_USD`` today (no Redis call without one)."""
        if self.limit is None or project is None:
            return
        now = time.time()
        spent = self.store.spend(project, utc_day(now))
        if spent >= self.limit:
            raise LimitReached(limit_reached_message(project, self.limit, spent, now))
