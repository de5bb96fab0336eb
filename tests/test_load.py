"""Unit tests for dynamo.nemo_switchyard.load: parsing real scrapes, TTFT p90 of the last interval,
staleness, saturation reasons, and polling a local HTTP server.

Fixtures in tests/data:

* ``dynamo_metrics_{1,2}.txt``: two real scrapes of a Dynamo 1.6.1 frontend's ``/metrics``, 1.0 s
  apart, while 64 streaming chats (max_tokens 200) ran against ``strong-model`` served by a mocker
  with ``--max-num-seqs 4 --speedup-ratio 10`` (plus 8 earlier requests, 6 concurrent ones to
  ``weak-model``, done before the first scrape).
* ``mocker_worker_metrics_{1,2}.txt``: the strong mocker worker's own ``/metrics`` (``DYN_SYSTEM_PORT``)
  at the same moments: vLLM's metric names, as Dynamo's workers export them.
* ``dynamo_metrics_idle.txt``: a frontend of the same set-up (another run) before its first request.
* ``vllm_metrics_{1,2}.txt``: hand-written in vLLM's format (two data-parallel engines, a model
  name with a slash, ``_created`` series, floats as ``12.0``), with round numbers.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path

import pytest

from dynamo.nemo_switchyard.load import BackendLoad, ModelLoad, histogram_quantile, parse_metrics

DATA = Path(__file__).parent / "data"
VLLM_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
INF = math.inf


def fixture(name: str) -> str:
    return (DATA / name).read_text()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _loaded(first: str, second: str, clock: FakeClock | None = None, interval: float = 2.0) -> BackendLoad:
    load = BackendLoad("http://127.0.0.1:9/metrics", interval, clock=clock or FakeClock())
    load.update(fixture(first))
    load.update(fixture(second))
    return load


# -- parsing --------------------------------------------------------------------


def test_parses_real_dynamo_frontend_scrapes() -> None:
    first, second = parse_metrics(fixture("dynamo_metrics_1.txt")), parse_metrics(fixture("dynamo_metrics_2.txt"))
    assert set(first) == set(second) == {"strong-model", "weak-model"}
    assert (first["strong-model"].queued, first["strong-model"].inflight) == (40, 44)
    assert (second["strong-model"].queued, second["strong-model"].inflight) == (8, 12)
    assert (second["weak-model"].queued, second["weak-model"].inflight) == (0, 0)
    assert first["strong-model"].buckets[INF] == 28 and second["strong-model"].buckets[INF] == 60
    assert first["weak-model"].buckets[INF] == second["weak-model"].buckets[INF] == 10
    assert first["strong-model"].buckets[0.47] == 20  # Dynamo's bounds: 0, 0.0022, 0.0047, ..., 1, 2.2, 4.7, ...


def test_parses_vllm_metrics_summing_engines() -> None:
    scrape = parse_metrics(fixture("vllm_metrics_2.txt"))
    assert set(scrape) == {VLLM_MODEL}
    model = scrape[VLLM_MODEL]
    assert model.queued == 30 + 22  # waiting, both engines
    assert model.inflight == 64 + 64 + 30 + 22  # running + waiting
    assert model.buckets[INF] == 240 + 225 + 100  # since start: engine 0, engine 1, then the interval


def test_parses_the_mocker_workers_vllm_names() -> None:
    scrape = parse_metrics(fixture("mocker_worker_metrics_1.txt"))
    assert (scrape["strong-model"].queued, scrape["strong-model"].inflight, scrape["strong-model"].buckets[INF]) == (40, 44, 28)


def test_similar_names_and_other_labels_are_ignored() -> None:
    text = "\n".join(
        [
            "# TYPE dynamo_frontend_queued_requests gauge",
            'dynamo_frontend_queued_requests{model="a"} 3',
            'dynamo_frontend_queued_requests{other="x"} 99',  # no model label
            "# TYPE dynamo_frontend_queued_requests_by_reason gauge",
            'dynamo_frontend_queued_requests_by_reason{model="a",reason="kv"} 50',
            'vllm:num_requests_waiting_by_reason{model_name="a",reason="capacity"} 70',
            "# TYPE vllm:num_requests_waiting gauge",
            'vllm:num_requests_waiting{model_name="a"} 5',
            'vllm:num_requests_waiting{model_name="b"} 6',
            "",
        ]
    )
    scrape = parse_metrics(text)
    assert scrape["a"].queued == 3  # Dynamo's name comes first in the table
    assert scrape["b"].queued == 6 and scrape["b"].inflight == 6


def test_text_without_known_metrics(caplog: pytest.LogCaptureFixture) -> None:
    assert parse_metrics("# TYPE switchyard_requests counter\nswitchyard_requests_total 3\n") == {}
    load = BackendLoad("http://127.0.0.1:9/metrics")
    with caplog.at_level(logging.INFO, logger="switchyard.load"):
        load.update("something_else 1\n")
    assert load.state == "no load metrics"
    assert [record.levelno for record in caplog.records] == [logging.INFO]  # not a failure


def test_a_fresh_dynamo_frontend_has_no_per_model_series_yet() -> None:
    # Real scrape of a frontend that has served nothing: model_ready is there, queue/in-flight/TTFT are not.
    text = fixture("dynamo_metrics_idle.txt")
    assert 'dynamo_frontend_model_ready{model="strong-model"} 1' in text
    assert parse_metrics(text) == {}
    load = BackendLoad("http://127.0.0.1:9/metrics", clock=FakeClock())
    load.update(text)
    assert load.state == "no load metrics" and load.saturated("strong-model", 0, 0.0) is None
    load.update(fixture("dynamo_metrics_1.txt"))
    assert load.state == "ok" and load.load("strong-model").ttft_count == 28  # everything since the series appeared


# -- the quantile ---------------------------------------------------------------


def test_histogram_quantile_like_prometheus() -> None:
    buckets = {0.1: 20, 0.25: 50, 0.5: 80, 1.0: 90, INF: 100}
    assert histogram_quantile(0.9, buckets) == 1.0
    assert histogram_quantile(0.5, buckets) == 0.25
    assert histogram_quantile(0.35, buckets) == pytest.approx(0.175)  # halfway through (0.1, 0.25]
    assert histogram_quantile(0.1, buckets) == pytest.approx(0.05)  # the first bucket starts at 0
    assert histogram_quantile(0.95, buckets) == 1.0  # in +Inf: the highest finite bound
    assert histogram_quantile(0.9, {0.1: 0, INF: 0}) is None
    assert histogram_quantile(0.9, {0.1: 5, 1.0: 10}) is None  # no +Inf bucket
    # A torn scrape (a bucket read before a smaller one was updated): counts are forced monotonic, 8 -> 10.
    assert histogram_quantile(0.75, {0.1: 10, 0.5: 8, 1.0: 20, INF: 20}) == pytest.approx(0.75)


# -- TTFT p90 of the last interval ----------------------------------------------------


def test_ttft_p90_comes_from_the_last_interval() -> None:
    load = BackendLoad("http://127.0.0.1:9/metrics", clock=FakeClock())
    load.update(fixture("dynamo_metrics_1.txt"))
    assert load.load("strong-model").ttft_p90 is None  # one scrape: no interval yet
    load.update(fixture("dynamo_metrics_2.txt"))
    strong = load.load("strong-model")
    # 32 first tokens in the second: 12 in (0.47, 1], 20 in (1, 2.2]; rank 28.8 -> 1 + 1.2 * 16.8 / 20.
    assert strong.ttft_count == 32
    assert strong.ttft_p90 == pytest.approx(2.008)
    assert histogram_quantile(0.9, parse_metrics(fixture("dynamo_metrics_2.txt"))["strong-model"].buckets) == pytest.approx(1.84)  # since start
    weak = load.load("weak-model")
    assert weak.ttft_p90 is None and weak.ttft_count == 0  # no new first token
    assert (weak.queued, weak.inflight) == (0, 0)


def test_ttft_p90_vllm() -> None:
    model = _loaded("vllm_metrics_1.txt", "vllm_metrics_2.txt").load(VLLM_MODEL)
    # 100 new first tokens, cumulative 20/50/80/85/88/100 at 0.1/0.25/0.5/0.75/1/2.5: rank 90 -> 1 + 1.5 * 2 / 12.
    assert model.ttft_count == 100 and model.ttft_p90 == pytest.approx(1.25)
    assert (model.queued, model.inflight) == (52, 180)


def test_ttft_over_several_intervals() -> None:
    one, two = (BackendLoad("http://127.0.0.1:9/metrics", clock=FakeClock(), ttft_intervals=n) for n in (1, 2))
    for load in (one, two):
        for name in ("dynamo_metrics_1.txt", "dynamo_metrics_2.txt", "dynamo_metrics_2.txt"):
            load.update(fixture(name))
    assert one.load("strong-model").ttft_p90 is None  # no first token in the last interval
    assert two.load("strong-model").ttft_p90 == pytest.approx(2.008)  # the last two intervals
    assert two.load("strong-model").ttft_count == 32
    with pytest.raises(ValueError):
        BackendLoad("http://127.0.0.1:9/metrics", ttft_intervals=0)


def test_counter_reset_uses_the_new_totals() -> None:
    load = _loaded("dynamo_metrics_2.txt", "dynamo_metrics_1.txt")  # counts went down: the backend restarted
    since_restart = parse_metrics(fixture("dynamo_metrics_1.txt"))["strong-model"].buckets
    assert load.load("strong-model").ttft_p90 == histogram_quantile(0.9, since_restart)


def test_a_model_whose_histogram_appears_counts_everything_as_new() -> None:
    load = BackendLoad("http://127.0.0.1:9/metrics", clock=FakeClock())
    load.update('# TYPE dynamo_frontend_queued_requests gauge\ndynamo_frontend_queued_requests{model="strong-model"} 0\n')
    load.update(fixture("dynamo_metrics_1.txt"))
    assert load.load("strong-model").ttft_count == 28


# -- staleness and saturation -----------------------------------------------------


def test_data_older_than_three_intervals_is_unknown() -> None:
    clock = FakeClock()
    load = _loaded("dynamo_metrics_1.txt", "dynamo_metrics_2.txt", clock, interval=2.0)
    assert load.saturated("strong-model", 4, None) == "queue 8 > 4"
    clock.now += 6.0
    assert load.load("strong-model") is not None
    clock.now += 0.01
    assert load.load("strong-model") is None
    assert load.saturated("strong-model", 4, 0.1) is None
    assert isinstance(load.models()["strong-model"], ModelLoad)  # still shown for /stats


def test_saturation_reasons() -> None:
    load = _loaded("dynamo_metrics_1.txt", "dynamo_metrics_2.txt")
    assert load.saturated("strong-model", 4, None) == "queue 8 > 4"
    assert load.saturated("strong-model", 8, None) is None  # 8 is not more than 8
    assert load.saturated("strong-model", None, 1.5) == "ttft_p90 2.01s > 1.5s"
    assert load.saturated("strong-model", 100, 3.0) is None
    assert load.saturated("strong-model", 4, 1.5) == "queue 8 > 4"  # the queue is named first
    assert load.saturated("strong-model", None, None) is None
    assert load.saturated("weak-model", 0, 0.001) is None  # queue 0, no TTFT in the interval
    assert load.saturated("no-such-model", 0, 0.0) is None
    vllm = _loaded("vllm_metrics_1.txt", "vllm_metrics_2.txt")
    assert vllm.saturated(VLLM_MODEL, 50, None) == "queue 52 > 50"
    assert vllm.saturated(VLLM_MODEL, None, 1.0) == "ttft_p90 1.25s > 1s"


def test_saturated_never_raises(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    load = _loaded("dynamo_metrics_1.txt", "dynamo_metrics_2.txt")

    def broken(model: str) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(load, "load", broken)
    with caplog.at_level(logging.WARNING, logger="switchyard.load"):
        assert load.saturated("strong-model", 0, 0.0) is None
        assert load.saturated("strong-model", 0, 0.0) is None
    assert load.state == "broken"
    assert len(caplog.records) == 1


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        BackendLoad("localhost:8000/metrics")
    with pytest.raises(ValueError):
        BackendLoad("http://localhost:8000/metrics", interval=0)


# -- polling a real HTTP server -----------------------------------------------------


class MetricsServer:
    """A tiny HTTP/1.1 server answering each GET with the next of ``responses`` ((status, body)); the last repeats."""

    def __init__(self, responses: list[tuple[int, str]]) -> None:
        self.responses = responses
        self.served = 0
        self.paths: list[str] = []
        self.server: asyncio.base_events.Server | None = None
        self.connections: set[tuple[asyncio.Task, asyncio.StreamWriter]] = set()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/metrics"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task, writer in list(self.connections):  # Python 3.11's close() leaves open connections alone
            writer.close()
            await asyncio.gather(task, return_exceptions=True)
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        entry = (asyncio.current_task(), writer)
        self.connections.add(entry)
        try:
            while True:  # keep-alive: the poller reuses its connection
                head = await reader.readuntil(b"\r\n\r\n")
                self.paths.append(head.split(b" ")[1].decode())
                status, body = self.responses[min(self.served, len(self.responses) - 1)]
                self.served += 1
                data = body.encode()
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n" % (status, len(data)) + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.connections.discard(entry)
            writer.close()


async def _until(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_polls_a_metrics_server(caplog: pytest.LogCaptureFixture) -> None:
    server = MetricsServer([(200, fixture("dynamo_metrics_1.txt")), (200, fixture("dynamo_metrics_2.txt")), (500, "oops")])

    async def go() -> None:
        async with server as url:
            load = BackendLoad(url, interval=0.05, timeout=5.0)  # a slow machine must not turn an answer into a timeout
            load.start()
            try:
                await _until(lambda: load.scrapes == 2)
                strong = load.load("strong-model")
                assert strong is not None and strong.ttft_p90 == pytest.approx(2.008) and strong.queued == 8
                assert load.saturated("strong-model", 4, None) == "queue 8 > 4"
                await _until(lambda: load.failures >= 5)  # 500 from now on
                assert load.state == "HTTP 500"
                await _until(lambda: load.load("strong-model") is None)  # 3 intervals without data: unknown
                assert load.saturated("strong-model", 0, 0.0) is None
                server.responses.append((200, fixture("dynamo_metrics_2.txt")))  # the backend recovers
                await _until(lambda: load.state == "ok")
            finally:
                await load.aclose()

    with caplog.at_level(logging.INFO, logger="switchyard.load"):
        asyncio.run(go())
    assert set(server.paths) == {"/metrics"}
    messages = [record.getMessage() for record in caplog.records if record.name == "switchyard.load"]
    assert sum("cannot read backend load" in message for message in messages) == 1  # once, not per poll
    assert messages[-1].endswith("again")
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_unreachable_backend_is_not_saturated(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()  # nothing listens there now
        load = BackendLoad(f"http://127.0.0.1:{port}/metrics", interval=0.05, timeout=5.0)
        try:
            assert await load.poll_once() is False
            assert await load.poll_once() is False
            assert load.state.startswith("unreachable")
            assert load.saturated("strong-model", 0, 0.0) is None
        finally:
            await load.aclose()

    with caplog.at_level(logging.WARNING, logger="switchyard.load"):
        asyncio.run(go())
    assert len(caplog.records) == 1
