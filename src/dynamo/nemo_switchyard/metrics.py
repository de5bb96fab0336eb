"""Prometheus metrics, and the ``/stats`` summary derived from them.

With several worker processes, prometheus_client's multiprocess mode (enabled by
``server.py`` through ``PROMETHEUS_MULTIPROC_DIR`` before this module is imported)
makes every worker's ``/metrics`` and ``/stats`` report the sum over all workers.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


class _CachedLabels:
    """A labelled metric whose ``labels(...)`` children are cached: the hot path skips
    prometheus_client's per-call validation and locking (about half the cost of an update)."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)


class _InFlight:
    """A gauge of requests in progress. In one process it is a plain counter read at scrape
    time (no lock per request); across worker processes it is prometheus_client's livesum gauge."""

    def __init__(self, gauge: Gauge, shared: bool) -> None:
        self._gauge = gauge
        self._shared = shared
        self.value = 0
        if not shared:
            gauge.set_function(lambda: self.value)

    def inc(self) -> None:
        if self._shared:
            self._gauge.inc()
        else:
            self.value += 1

    def dec(self) -> None:
        if self._shared:
            self._gauge.dec()
        else:
            self.value -= 1


class Metrics:
    """All of switchyard's metrics, on a registry of its own."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        self._collect_registry = self.registry
        if self.multiprocess:
            from prometheus_client import multiprocess

            self._collect_registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._collect_registry)
        r = self.registry
        self.requests = _CachedLabels(
            Counter("switchyard_requests", "Requests by routing decision and HTTP status.", ["decision", "status"], registry=r)
        )
        self.scores = _CachedLabels(
            Histogram("switchyard_router_score", "Router scores.", ["router"], buckets=_SCORE_BUCKETS, registry=r)
        )
        self.routing_latency = Histogram(
            "switchyard_routing_latency_seconds", "Time to decide a route (extraction and scoring).", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.upstream_ttfb = _CachedLabels(
            Histogram("switchyard_upstream_ttfb_seconds", "Backend time to response headers.", ["model"], buckets=_UPSTREAM_BUCKETS, registry=r)
        )
        self.upstream_duration = _CachedLabels(
            Histogram(
                "switchyard_upstream_duration_seconds", "Backend time to the end of the body.", ["model"], buckets=_UPSTREAM_BUCKETS, registry=r
            )
        )
        self.in_flight = _InFlight(
            Gauge("switchyard_in_flight_requests", "Requests being served now.", registry=r, multiprocess_mode="livesum"),
            shared=self.multiprocess,
        )
        self.upstream_errors = _CachedLabels(
            Counter("switchyard_upstream_errors", "Failed backend exchanges by kind.", ["kind"], registry=r)
        )
        self.fallbacks = _CachedLabels(
            Counter("switchyard_fallbacks", "Requests sent to the fallback model, by reason.", ["reason"], registry=r)
        )
        self.retries = _CachedLabels(
            Counter("switchyard_retries", "Backend requests retried after a connection error before the response head, by kind.", ["kind"], registry=r)
        )
        self.failovers = _CachedLabels(
            Counter("switchyard_failovers", "Routed requests sent to the other model after theirs failed.", ["from_model", "to_model"], registry=r)
        )

    def exposition(self) -> bytes:
        return generate_latest(self._collect_registry)

    def request_counts(self) -> dict[tuple[str, str], float]:
        """(decision, status) -> count, summed over worker processes."""
        counts: dict[tuple[str, str], float] = {}
        for family in self._collect_registry.collect():
            if family.name != "switchyard_requests":
                continue
            for sample in family.samples:
                if sample.name == "switchyard_requests_total":
                    key = (sample.labels["decision"], sample.labels["status"])
                    counts[key] = counts.get(key, 0.0) + sample.value
        return counts

    def stats(self, extra: dict[str, Any]) -> dict[str, Any]:
        """The routing counters as JSON-ready data."""
        by_decision = {"strong": 0, "weak": 0, "fallback": 0, "passthrough": 0}
        total = errors = 0
        for (decision, status), value in self.request_counts().items():
            total += int(value)
            if decision in by_decision:
                by_decision[decision] += int(value)
            if not status.isdigit() or int(status) >= 400:
                errors += int(value)
        routed = by_decision["strong"] + by_decision["weak"]
        return {
            "total": total,
            **by_decision,
            "errors": errors,
            "strong_fraction": by_decision["strong"] / routed if routed else None,
            **extra,
        }
