"""Prometheus metrics of the API (``GET /metrics``), one registry per app so tests stay independent."""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sed import wire
from sed.api.schemas import IncidentOut, SensorStatus, sensor_status
from sed.config import ApiSection
from sed.store import Store

#: Request-duration histogram buckets, s.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ApiMetrics:
    """Counters the routes and the live feed update, plus sensor health read at scrape time."""

    def __init__(self, store: Store, api: ApiSection) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "sed_http_requests",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "sed_http_request_duration_seconds",
            "Time to the response head, s.",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.incidents_announced = Counter(
            "sed_incidents_announced", "Incident creations, updates and reviews pushed live.", ["label"], registry=r
        )
        self.live_clients = Gauge("sed_live_clients", "Connected live-push clients.", registry=r)
        self.webhook_attempts = Counter("sed_webhook_attempts", "Webhook POSTs by outcome.", ["outcome"], registry=r)
        self.clip_accesses = Counter("sed_clip_accesses", "Evidence clip reads (audited).", ["kind"], registry=r)
        self.clips_expired = Counter("sed_clips_expired", "Evidence clips deleted by retention.", registry=r)
        r.register(_SensorHealth(store, api))

    def on_incident(self, incident: wire.Incident, _out: IncidentOut) -> None:
        self.incidents_announced.labels(label=str(incident.label)).inc()


class _SensorHealth(Collector):
    """``sed_sensors{status=…}``: sensors per health state, computed from the store at scrape time."""

    def __init__(self, store: Store, api: ApiSection) -> None:
        self.store = store
        self.api = api

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily("sed_sensors", "Sensors by health status.", labels=["status"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now_ns = time.time_ns()
        tally = Tally(str(sensor_status(record, self.api, now_ns=now_ns)) for record in self.store.list_sensors())
        family = GaugeMetricFamily("sed_sensors", "Sensors by health status.", labels=["status"])
        for status in SensorStatus:
            family.add_metric([str(status)], tally.get(str(status), 0))
        yield family


class MetricsMiddleware:
    """Counts requests per route template (never per raw path, to bound the label set)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = _route_of(scope)
                self.metrics.request_seconds.labels(route=route).observe(time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(method=scope["method"], route=_route_of(scope), status=str(status)).inc()


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


__all__ = ["ApiMetrics", "MetricsMiddleware"]
