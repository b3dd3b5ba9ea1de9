"""Prometheus metrics, all named ``editjudge_*``, in a registry owned by one app instance."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .pool import BackendPool

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)


class _PoolCollector(Collector):
    """Reads backend state at scrape time instead of mirroring it into gauges on every change."""

    def __init__(self, pool: BackendPool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        healthy = GaugeMetricFamily(
            "editjudge_backend_healthy", "1 if the backend takes traffic", labels=["backend"]
        )
        in_flight = GaugeMetricFamily(
            "editjudge_backend_in_flight", "Requests in flight to the backend", labels=["backend"]
        )
        window = GaugeMetricFamily(
            "editjudge_backend_window", "Requests the backend may hold now", labels=["backend"]
        )
        for b in self._pool.backends:
            healthy.add_metric([b.url], 1.0 if b.healthy else 0.0)
            in_flight.add_metric([b.url], float(b.in_flight))
            window.add_metric([b.url], float(b.window))
        yield healthy
        yield in_flight
        yield window
        yield GaugeMetricFamily(
            "editjudge_queued", "Work waiting in the router for a window", value=self._pool.queued
        )


class Metrics:
    """Every metric the router exports."""

    def __init__(self, pool: BackendPool) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "editjudge_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.items = Counter(
            "editjudge_items",
            "Scored items by protocol and outcome",
            ["protocol", "status"],
            registry=r,
        )
        self.scores_parsed = Counter(
            "editjudge_scores_parsed", "Judge replies that yielded a score", registry=r
        )
        self.scores_failed = Counter(
            "editjudge_scores_failed", "Judge replies without a valid score", registry=r
        )
        self.retries = Counter(
            "editjudge_retries", "Items retried on another backend", ["code"], registry=r
        )
        self.rejected = Counter(
            "editjudge_rejected",
            "Requests refused with 429/503 by error code",
            ["code"],
            registry=r,
        )
        self.backend_latency = Histogram(
            "editjudge_backend_latency_seconds",
            "Latency of one item's calls on a backend",
            ["backend"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_hits = Counter("editjudge_cache_hits", "Score cache hits", registry=r)
        self.discovery_refreshes = Counter(
            "editjudge_discovery_refreshes",
            "DNS discovery lookups by outcome (ok, error)",
            ["outcome"],
            registry=r,
        )
        for outcome in ("ok", "error"):  # export zeros, so alerts see the series from the start
            self.discovery_refreshes.labels(outcome)
        r.register(_PoolCollector(pool))

    def forget_backend(self, url: str) -> None:
        """Drop a departed backend's series, so engines that come and go don't pile them up."""
        with contextlib.suppress(KeyError):
            self.backend_latency.remove(url)

    def render(self) -> bytes:
        return generate_latest(self.registry)
