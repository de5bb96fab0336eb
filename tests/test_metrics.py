"""Unit tests for dynamo.nemo_switchyard.metrics: counters, /stats and the exposition."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dynamo.nemo_switchyard.metrics import CONTENT_TYPE, Metrics


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    return Metrics()


def _samples(m: Metrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_not_multiprocess_by_default(metrics: Metrics):
    assert metrics.multiprocess is False


def test_exposition_names(metrics: Metrics):
    metrics.requests.labels("strong", "200").inc()
    metrics.scores.labels("random").observe(0.3)
    metrics.routing_latency.observe(0.001)
    metrics.upstream_ttfb.labels("m").observe(0.1)
    metrics.upstream_duration.labels("m").observe(0.2)
    metrics.in_flight.inc()
    metrics.upstream_errors.labels("connect").inc()
    metrics.fallbacks.labels("empty_prompt").inc()
    text = metrics.exposition().decode()
    for name in (
        "switchyard_requests_total",
        "switchyard_router_score_bucket",
        "switchyard_router_score_count",
        "switchyard_routing_latency_seconds_bucket",
        "switchyard_routing_latency_seconds_sum",
        "switchyard_upstream_ttfb_seconds_bucket",
        "switchyard_upstream_duration_seconds_bucket",
        "switchyard_in_flight_requests",
        "switchyard_upstream_errors_total",
        "switchyard_fallbacks_total",
    ):
        assert f"\n{name}" in "\n" + text, name
    for name, kind in (
        ("switchyard_requests_total", "counter"),
        ("switchyard_router_score", "histogram"),
        ("switchyard_routing_latency_seconds", "histogram"),
        ("switchyard_upstream_ttfb_seconds", "histogram"),
        ("switchyard_upstream_duration_seconds", "histogram"),
        ("switchyard_in_flight_requests", "gauge"),
        ("switchyard_upstream_errors_total", "counter"),
        ("switchyard_fallbacks_total", "counter"),
    ):
        assert f"# TYPE {name} {kind}\n" in text, name


def test_content_type_is_prometheus_text():
    assert CONTENT_TYPE.startswith("text/plain")


def test_exposition_has_only_switchyard_metrics(metrics: Metrics):
    families = [f.name for f in text_string_to_metric_families(metrics.exposition().decode())]
    assert families and all(name.startswith("switchyard_") for name in families)


def test_counters_increment_with_labels(metrics: Metrics):
    metrics.requests.labels("strong", "200").inc()
    metrics.requests.labels("strong", "200").inc()
    metrics.requests.labels("weak", "200").inc()
    metrics.fallbacks.labels("router_timeout").inc(3)
    metrics.upstream_errors.labels("timeout").inc()
    s = _samples(metrics)
    assert s[("switchyard_requests_total", (("decision", "strong"), ("status", "200")))] == 2
    assert s[("switchyard_requests_total", (("decision", "weak"), ("status", "200")))] == 1
    assert s[("switchyard_fallbacks_total", (("reason", "router_timeout"),))] == 3
    assert s[("switchyard_upstream_errors_total", (("kind", "timeout"),))] == 1


def test_in_flight_gauge(metrics: Metrics):
    metrics.in_flight.inc()
    metrics.in_flight.inc()
    metrics.in_flight.dec()
    assert _samples(metrics)[("switchyard_in_flight_requests", ())] == 1


def test_histograms_observe(metrics: Metrics):
    metrics.scores.labels("lexical").observe(0.42)
    metrics.scores.labels("lexical").observe(0.97)
    s = _samples(metrics)
    key = (("router", "lexical"),)
    assert s[("switchyard_router_score_count", key)] == 2
    assert s[("switchyard_router_score_sum", key)] == pytest.approx(1.39)
    assert s[("switchyard_router_score_bucket", (("le", "0.45"), ("router", "lexical")))] == 1
    assert s[("switchyard_router_score_bucket", (("le", "1.0"), ("router", "lexical")))] == 2


def test_instances_are_independent(metrics: Metrics):
    metrics.requests.labels("strong", "200").inc()
    other = Metrics()
    assert other.request_counts() == {}
    assert metrics.request_counts() == {("strong", "200"): 1.0}


def test_stats_empty(metrics: Metrics):
    stats = metrics.stats({})
    assert {k: stats[k] for k in ("total", "strong", "weak", "fallback", "passthrough", "errors", "strong_fraction")} == {
        "total": 0, "strong": 0, "weak": 0, "fallback": 0, "passthrough": 0, "errors": 0, "strong_fraction": None,
    }
    assert stats["tokens"] == {} and stats["fallback_reasons"] == {} and stats["upstream_errors"] == {}
    assert stats["cost"] == {
        "priced": False, "by_model": {}, "actual_usd": 0, "all_strong_usd": 0, "saving_usd": 0, "saving_fraction": None,
    }
    assert stats["in_flight"] == 0 and stats["uptime_seconds"] >= 0


def test_stats_histograms_are_cumulative_with_inf_last(metrics: Metrics):
    for score in (0.01, 0.42, 0.97):
        metrics.scores.labels("lexical").observe(score)
    metrics.scores.labels("random").observe(0.5)
    scores = metrics.stats({})["scores"]
    assert scores["le"][0] == 0.05 and scores["le"][-1] == "+Inf"
    assert scores["counts"][0] == 1 and scores["counts"][-1] == 4 == scores["count"]  # summed over routers
    assert scores["counts"] == sorted(scores["counts"])
    assert scores["counts"][scores["le"].index(0.45)] == 2
    assert scores["sum"] == pytest.approx(1.9)


def test_stats_latency_by_model_tokens_cost_and_reasons(metrics: Metrics):
    metrics.upstream_ttfb.labels("strong-model").observe(0.02)
    metrics.upstream_duration.labels("weak-model").observe(1.5)
    metrics.routing_latency.observe(0.0003)
    metrics.fallbacks.labels("router_timeout").inc(2)
    metrics.upstream_errors.labels("connect").inc()
    metrics.tokens.labels("weak-model", "input").inc(100)
    metrics.tokens.labels("weak-model", "output").inc(40)
    metrics.cost.labels("weak-model").inc(0.25)
    metrics.strong_cost.inc(1.0)
    stats = metrics.stats({"priced": True})
    assert list(stats["upstream_ttfb"]) == ["strong-model"] and stats["upstream_ttfb"]["strong-model"]["count"] == 1
    assert stats["upstream_duration"]["weak-model"]["sum"] == pytest.approx(1.5)
    assert stats["routing_latency"]["count"] == 1
    assert stats["fallback_reasons"] == {"router_timeout": 2} and stats["upstream_errors"] == {"connect": 1}
    assert stats["tokens"] == {"weak-model": {"input": 100, "output": 40}}
    assert stats["cost"] == {
        "priced": True, "by_model": {"weak-model": 0.25}, "actual_usd": 0.25, "all_strong_usd": 1.0,
        "saving_usd": 0.75, "saving_fraction": 0.75,
    }


def test_stats_totals_fraction_and_errors(metrics: Metrics):
    for decision, status, n in [
        ("strong", "200", 3), ("weak", "200", 5), ("weak", "500", 1), ("fallback", "200", 2),
        ("passthrough", "404", 1), ("rejected", "400", 2), ("strong", "disconnected", 1),
    ]:
        metrics.requests.labels(decision, status).inc(n)
    stats = metrics.stats({"router": "random", "threshold": 0.5})
    assert stats["total"] == 15
    assert stats["strong"] == 4 and stats["weak"] == 6
    assert stats["fallback"] == 2 and stats["passthrough"] == 1
    assert stats["errors"] == 1 + 1 + 2 + 1  # 500, 404, 400 and a non-numeric status
    assert stats["strong_fraction"] == pytest.approx(4 / 10)
    assert stats["router"] == "random" and stats["threshold"] == 0.5


def test_strong_fraction_ignores_fallback_and_passthrough(metrics: Metrics):
    metrics.requests.labels("fallback", "200").inc(10)
    metrics.requests.labels("passthrough", "200").inc(10)
    assert metrics.stats({})["strong_fraction"] is None
    metrics.requests.labels("strong", "200").inc()
    assert metrics.stats({})["strong_fraction"] == 1.0


def test_request_counts(metrics: Metrics):
    metrics.requests.labels("weak", "200").inc(2)
    metrics.requests.labels("weak", "502").inc()
    assert metrics.request_counts() == {("weak", "200"): 2.0, ("weak", "502"): 1.0}


def test_multiprocess_mode_sums_over_processes(tmp_path, monkeypatch: pytest.MonkeyPatch):
    # Two Metrics writing to one multiprocess directory report each other's counts.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    from prometheus_client import values

    values.ValueClass = values.get_value_class()
    try:
        m = Metrics()
        assert m.multiprocess is True
        m.requests.labels("strong", "200").inc(2)
        m.requests.labels("weak", "200").inc()
        assert m.request_counts() == {("strong", "200"): 2.0, ("weak", "200"): 1.0}
        assert b"switchyard_requests_total" in m.exposition()
        assert m.stats({})["strong_fraction"] == pytest.approx(2 / 3)
        m.in_flight.inc()
        m.in_flight.inc()
        m.in_flight.dec()
        assert m.in_flight.value == 1  # this process's own count (whether a request is alone), besides the shared gauge
    finally:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        values.ValueClass = values.get_value_class()


def test_one_process_families_match_prometheus_client(metrics: Metrics):
    # The lock-free families of one process expose what prometheus_client's own would: same names, labels,
    # cumulative "le" buckets (a value equal to a bound counts in it), sums and counts.
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    registry = CollectorRegistry()
    reference_scores = Histogram("switchyard_router_score", "Router scores.", ["router"],
                                 buckets=[round(0.05 * i, 2) for i in range(1, 21)], registry=registry)
    reference_requests = Counter("switchyard_requests", "Requests by routing decision and HTTP status.", ["decision", "status"], registry=registry)
    for value in (0.0, 0.05, 0.5, 0.50001, 0.999, 1.0):
        metrics.scores.labels("lexical").observe(value)
        reference_scores.labels("lexical").observe(value)
    metrics.requests.labels("weak", "200").inc(3)
    reference_requests.labels("weak", "200").inc(3)
    ours = {k: v for k, v in _samples(metrics).items() if k[0].startswith(("switchyard_router_score", "switchyard_requests"))}
    theirs = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                theirs[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert ours == theirs


def test_label_values_are_strings(metrics: Metrics):
    metrics.tiers.labels(0, "strong-model").inc()
    metrics.tiers.labels("0", "strong-model").inc()
    metrics.tiers.labels(0, "strong-model").inc()
    assert _samples(metrics)[("switchyard_tier_requests_total", (("model", "strong-model"), ("tier", "0")))] == 3


def test_counters_only_go_up(metrics: Metrics):
    with pytest.raises(ValueError):
        metrics.requests.labels("weak", "200").inc(-1)
    with pytest.raises(ValueError):
        metrics.requests.labels("weak")  # a label missing
