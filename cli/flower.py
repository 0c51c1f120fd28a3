"""Flower, with its Prometheus ``/metrics`` behind the same basic auth as its dashboard and API.

Flower 2.2 guards its pages and ``/api/*`` with ``FLOWER_BASIC_AUTH`` but serves ``/metrics`` to anyone
(task names, worker names, counts).  Its routes are a list that the Flower application reads when it is
built; the metrics route is given a handler that first requires the authenticated user, exactly as Flower's
own API handlers do.  ``/healthcheck`` stays open (it says only "OK").
"""

from __future__ import annotations


def protect_metrics() -> None:
    import tornado.web
    from flower import urls
    from flower.views.monitor import Metrics

    class AuthenticatedMetrics(Metrics):
        @tornado.web.authenticated
        async def get(self) -> None:
            await super().get()

    urls.handlers[:] = [
        (route[0], AuthenticatedMetrics, *route[2:]) if isinstance(route, tuple) and route[1] is Metrics else route
        for route in urls.handlers
    ]
