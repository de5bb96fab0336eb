"""Prometheus metrics, and the ``/stats`` summary derived from them.

With several worker processes, prometheus_client's multiprocess mode (enabled by
``server.py`` through ``PROMETHEUS_MULTIPROC_DIR`` before this module is imported)
makes every worker's ``/metrics`` and ``/stats`` report the sum over all workers.
In one process, the per-request counters and histograms are plain numbers that a
collector hands to prometheus_client at scrape time: they are only updated on the
event loop, so they need neither its lock nor its per-update checks (the ten updates
of a routed request took ~13.6 µs through prometheus_client, ~2.7 µs so, timeit here).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


class Series:
    """One series of a counter or histogram: what ``Family.labels(...)`` returns.

    A class of its own, not prometheus_client's types or ``Any``: compiled, a call through a
    declared type is a direct call, where ``Any`` makes a Python method call per update (eight
    updates per routed request)."""

    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        raise TypeError("inc() is for counters")

    def observe(self, value: float) -> None:
        raise TypeError("observe() is for histograms")


class Family:
    """A counter or histogram family: ``labels(...)`` for a series, or ``inc``/``observe`` without labels."""

    def labels(self, *values: object) -> Series:
        raise NotImplementedError

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def observe(self, value: float) -> None:
        self.labels().observe(value)


class _CounterChild(Series):
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount


class _HistogramChild(Series):
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative; the last bound is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # The first bound >= value (Prometheus' "le"), as bisect.bisect_left finds it; by hand, as
        # compiled the loop costs less than the call to bisect (~800 instructions, four per request).
        bounds = self._bounds
        lo, hi = 0, len(bounds)
        while lo < hi:
            mid = (lo + hi) // 2
            if bounds[mid] < value:
                lo = mid + 1
            else:
                hi = mid
        self.counts[lo] += 1
        self.sum += value


class _Local(Family):
    """A counter or histogram family kept in this process's own numbers (see the module docstring)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), buckets: Sequence[float] | None = None) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = None if buckets is None else (*sorted(float(b) for b in buckets), math.inf)
        self._children: dict[tuple[object, ...], Series] = {}  # label values as given -> child
        self._series: dict[tuple[str, ...], Any] = {}  # as strings -> child: one per series
        if not self.labelnames:
            self._unlabelled = self.labels()  # exposed (at 0) from the start, as prometheus_client does

    def labels(self, *values: object) -> Series:  # object: prometheus_client takes any value, as str()
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            key = tuple(str(value) for value in values)  # labels are strings: 0 and "0" are one series
            child = self._series.get(key)
            if child is None:
                child = self._series[key] = _CounterChild() if self.bounds is None else _HistogramChild(self.bounds)
            self._children[values] = child
        return child

    def inc(self, amount: float = 1.0) -> None:
        self._unlabelled.inc(amount)

    def observe(self, value: float) -> None:
        self._unlabelled.observe(value)

    def family(self) -> Metric:
        if self.bounds is None:
            counter = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for values, child in self._series.items():
                counter.add_metric(values, child.value)
            return counter
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [floatToGoString(bound) for bound in self.bounds]
        for values, child in self._series.items():
            running, buckets = 0, []
            for le, count in zip(les, child.counts):
                running += count
                buckets.append((le, running))
            histogram.add_metric(values, buckets, child.sum)
        return histogram


class _SharedSeries(Series):
    """A series of prometheus_client's, with several worker processes (its multiprocess files)."""

    __slots__ = ("_child",)

    def __init__(self, child: Any) -> None:
        self._child = child

    def inc(self, amount: float = 1.0) -> None:
        self._child.inc(amount)

    def observe(self, value: float) -> None:
        self._child.observe(value)


class _Shared(Family):
    """A prometheus_client counter or histogram (multiprocess mode), its ``labels(...)`` cached: the
    hot path skips its per-call validation and locking (about half the cost of an update)."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[object, ...], Series] = {}

    def labels(self, *values: object) -> Series:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _SharedSeries(self._metric.labels(*values) if values else self._metric)
        return child


class _LocalCollector:
    """The one-process families, for the registry (which only calls ``collect``). Not a subclass of
    prometheus_client's ``Collector``: this module is compiled with mypyc (setup.py), which cannot
    derive from a class it does not see when it builds."""

    def __init__(self) -> None:
        self.families: list[_Local] = []

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.family()


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
        self.value += 1  # this process's own count, also with several workers
        if self._shared:
            self._gauge.inc()

    def dec(self) -> None:
        self.value -= 1
        if self._shared:
            self._gauge.dec()


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
        self._local = _LocalCollector()
        if not self.multiprocess:
            r.register(self._local)
        counter, histogram = self._counter, self._histogram
        self.requests = counter("switchyard_requests", "Requests by routing decision and HTTP status.", ["decision", "status"])
        self.scores = histogram("switchyard_router_score", "Router scores.", ["router"], _SCORE_BUCKETS)
        self.routing_latency = histogram(
            "switchyard_routing_latency_seconds", "Time to decide a route (extraction and scoring).", [], _LATENCY_BUCKETS
        )
        self.upstream_ttfb = histogram("switchyard_upstream_ttfb_seconds", "Backend time to response headers.", ["model"], _UPSTREAM_BUCKETS)
        self.upstream_ttft = histogram(
            "switchyard_upstream_ttft_seconds",
            "Backend time to the first body chunk of a streamed routed answer (time to first token, as the client sees it).",
            ["model"], _UPSTREAM_BUCKETS,
        )
        self.upstream_duration = histogram(
            "switchyard_upstream_duration_seconds", "Backend time to the end of the body.", ["model"], _UPSTREAM_BUCKETS
        )
        self.in_flight = _InFlight(
            Gauge("switchyard_in_flight_requests", "Requests being served now.", registry=r, multiprocess_mode="livesum"),
            shared=self.multiprocess,
        )
        self.upstream_errors = counter("switchyard_upstream_errors", "Failed backend exchanges by kind.", ["kind"])
        self.fallbacks = counter("switchyard_fallbacks", "Requests sent to the fallback model, by reason.", ["reason"])
        self.retries = counter(
            "switchyard_retries", "Backend requests retried after a connection error before the response head, by kind.", ["kind"]
        )
        self.failovers = counter(
            "switchyard_failovers", "Routed requests sent to the other model after theirs failed.", ["from_model", "to_model"]
        )
        self.tokens = counter("switchyard_tokens", "Tokens in backend answers' usage, by model and kind (input, output).", ["model", "kind"])
        self.cost = counter("switchyard_cost_usd", "Estimated cost of answered requests in US dollars (--prices), by model.", ["model"])
        self.strong_cost = counter(
            "switchyard_strong_cost_usd", "What the routed requests would have cost on the strong model (same tokens).", []
        )
        self.savings = counter(
            "switchyard_savings_usd",
            "Estimated saving of routed requests against the strong model (strong-model cost minus actual; at least 0 per request).",
            [],
        )
        # -- routing beyond one threshold (issue: tiers, affinity, budget, load) --
        self.reasons = counter(
            "switchyard_decision_reasons",
            "Routed requests by the reason for their model: score, budget, load, affinity, override, fallback, passthrough.",
            ["reason"],
        )
        self.tiers = counter("switchyard_tier_requests", "Routed requests by tier (0 = strongest) and model.", ["tier", "model"])
        self.threshold = Gauge(
            "switchyard_threshold", "The live threshold (top cut-point); it moves with --target-strong-fraction.",
            registry=r, multiprocess_mode="mostrecent",
        )
        self.affinity_lookups = counter("switchyard_affinity_lookups", "Conversation lookups: hit (a model remembered) or miss.", ["result"])
        self.affinity_evictions = counter(
            "switchyard_affinity_evictions", "Conversations forgotten: lru (memory full) or ttl (idle too long).", ["kind"]
        )
        self.affinity_entries = Gauge(
            "switchyard_affinity_conversations", "Conversations remembered (per process; summed over workers).",
            registry=r, multiprocess_mode="livesum",
        )
        # Set at scrape time only (App._sync_metrics), so prometheus_client's own labels() serves.
        self.backend_queue = Gauge(
            "switchyard_backend_queued_requests", "Queued requests per model, read from the backend's metrics (--load-aware).",
            ["model"], registry=r, multiprocess_mode="mostrecent",
        )
        self.backend_ttft = Gauge(
            "switchyard_backend_ttft_p90_seconds", "Recent time-to-first-token p90 per model, from the backend's metrics (--load-aware).",
            ["model"], registry=r, multiprocess_mode="mostrecent",
        )
        self.backend_saturated = Gauge(
            "switchyard_backend_saturated", "1 while a model's pool is past the --load-max-* limits.", ["model"],
            registry=r, multiprocess_mode="mostrecent",
        )
        self.started = time.time()

    def _counter(self, name: str, documentation: str, labelnames: list[str]) -> Family:
        if not self.multiprocess:
            return self._add(_Local(name, documentation, labelnames))
        return _Shared(Counter(name, documentation, labelnames, registry=self.registry))

    def _histogram(self, name: str, documentation: str, labelnames: list[str], buckets: Sequence[float]) -> Family:
        if not self.multiprocess:
            return self._add(_Local(name, documentation, labelnames, buckets))
        return _Shared(Histogram(name, documentation, labelnames, buckets=buckets, registry=self.registry))

    def _add(self, family: _Local) -> _Local:
        self._local.families.append(family)
        return family

    def exposition(self) -> bytes:
        return generate_latest(self._collect_registry)

    def request_counts(self) -> dict[tuple[str, str], float]:
        """(decision, status) -> count, summed over worker processes."""
        return _request_counts(self._samples())

    def stats(self, extra: dict[str, Any]) -> dict[str, Any]:
        """The routing counters, histograms, tokens and cost as JSON-ready data (for /stats and /dashboard).
        Histograms are cumulative bucket counts, as in Prometheus: rates and quantiles come from deltas."""
        samples = self._samples()
        by_decision = {"strong": 0, "middle": 0, "weak": 0, "fallback": 0, "passthrough": 0}
        total = errors = 0
        for (decision, status), value in _request_counts(samples).items():
            total += int(value)
            if decision in by_decision:
                by_decision[decision] += int(value)
            if not status.isdigit() or int(status) >= 400:
                errors += int(value)
        routed = by_decision["strong"] + by_decision["middle"] + by_decision["weak"]
        tokens: dict[str, dict[str, int]] = {}
        for labels, value in samples.get("switchyard_tokens_total", []):
            tokens.setdefault(labels["model"], {"input": 0, "output": 0})[labels["kind"]] = int(value)
        cost_by_model = {labels["model"]: value for labels, value in samples.get("switchyard_cost_usd_total", [])}
        actual = sum(cost_by_model.values())
        all_strong = _total(samples, "switchyard_strong_cost_usd_total")
        return {
            "total": total,
            **by_decision,
            "errors": errors,
            "strong_fraction": by_decision["strong"] / routed if routed else None,
            **extra,
            "uptime_seconds": round(time.time() - self.started, 3),
            "in_flight": int(_total(samples, "switchyard_in_flight_requests")),
            "fallback_reasons": _by_label(samples, "switchyard_fallbacks_total", "reason"),
            "reasons": _by_label(samples, "switchyard_decision_reasons_total", "reason"),
            "tier_requests": _by_label(samples, "switchyard_tier_requests_total", "model"),
            "affinity": {
                **{result: count for result, count in _by_label(samples, "switchyard_affinity_lookups_total", "result").items()},
                "evictions": _by_label(samples, "switchyard_affinity_evictions_total", "kind"),
                "conversations": int(_total(samples, "switchyard_affinity_conversations")),
            },
            "upstream_errors": _by_label(samples, "switchyard_upstream_errors_total", "kind"),
            "scores": _histogram(samples, "switchyard_router_score"),
            "routing_latency": _histogram(samples, "switchyard_routing_latency_seconds"),
            "upstream_ttfb": _histograms_by(samples, "switchyard_upstream_ttfb_seconds", "model"),
            "upstream_ttft": _histograms_by(samples, "switchyard_upstream_ttft_seconds", "model"),
            "upstream_duration": _histograms_by(samples, "switchyard_upstream_duration_seconds", "model"),
            "tokens": tokens,
            "cost": {
                "priced": bool(extra.get("priced")),
                "by_model": cost_by_model,
                "actual_usd": actual,
                "all_strong_usd": all_strong,
                "saving_usd": all_strong - actual,
                "saving_fraction": (all_strong - actual) / all_strong if all_strong > 0 else None,
            },
        }

    def _samples(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Every sample by name (summed over worker processes by the multiprocess collector)."""
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in self._collect_registry.collect():
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return samples


def _request_counts(samples: dict[str, list[tuple[dict[str, str], float]]]) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], float] = {}
    for labels, value in samples.get("switchyard_requests_total", []):
        key = (labels["decision"], labels["status"])
        counts[key] = counts.get(key, 0.0) + value
    return counts


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


def _by_label(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, label: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for labels, value in samples.get(name, []):
        counts[labels[label]] = counts.get(labels[label], 0) + int(value)
    return counts


def _histogram(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, where: tuple[str, str] | None = None) -> dict[str, Any]:
    """One histogram, summed over its other labels: cumulative counts per upper bound ("+Inf" last)."""
    buckets: dict[float, float] = {}
    for labels, value in samples.get(name + "_bucket", []):
        if where is None or labels.get(where[0]) == where[1]:
            bound = float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value

    def picked(suffix: str) -> float:
        return sum(v for labels, v in samples.get(name + suffix, []) if where is None or labels.get(where[0]) == where[1])

    bounds = sorted(buckets)
    return {
        "le": [bound if math.isfinite(bound) else "+Inf" for bound in bounds],
        "counts": [int(buckets[bound]) for bound in bounds],
        "sum": picked("_sum"),
        "count": int(picked("_count")),
    }


def _histograms_by(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, label: str) -> dict[str, dict[str, Any]]:
    values = {labels[label] for labels, _ in samples.get(name + "_count", [])}
    return {value: _histogram(samples, name, (label, value)) for value in sorted(values)}
