"""Backend load, read from the backend's Prometheus ``/metrics``: is a model saturated right now?

Routing a prompt to a model whose queue is long makes it wait for the first token longer
than a weaker model would take to answer. This polls the backend's metrics endpoint (the
Dynamo frontend's ``/metrics``, or a vLLM server's) on an interval and keeps, per model,
the queued and in-flight request counts and the TTFT p90 of the *last interval*: from the
difference of the TTFT histogram between the last two scrapes, not its totals since start.

Nothing here may fail a request: ``saturated`` answers None ("not saturated") when the
data is missing, older than three intervals, or broken, and every failure to read the
backend is logged once per change of state, not once per poll.

Cost: a loaded Dynamo frontend's ``/metrics`` is ~100 KB (~800 samples);
prometheus_client's parser takes ~50 ms for all of it on this machine, so the lines of the
few metrics used are picked out first (plain string tests) and only those are parsed:
~1 ms per scrape, on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from .upstream import Upstream, UpstreamError

__all__ = ["METRIC_NAMES", "BackendLoad", "MetricNames", "ModelLoad", "ScrapedModel", "histogram_quantile", "parse_metrics"]

log = logging.getLogger("switchyard.load")


@dataclass(frozen=True, slots=True)
class MetricNames:
    """Where one kind of server exposes queue, in-flight and TTFT, and which label names the model.

    Several names in ``queued`` / ``inflight`` are summed (vLLM counts running and waiting apart).
    """

    server: str
    queued: tuple[str, ...]
    inflight: tuple[str, ...]
    ttft: str  # a histogram (``_bucket{le=...}``), in seconds
    model_label: str


# Checked in this order; a model's value comes from the first kind that has it.
METRIC_NAMES: tuple[MetricNames, ...] = (
    # NVIDIA Dynamo frontend (1.6.1, read from a real frontend with mocker workers): queued = accepted,
    # no first token yet; inflight = queued + generating.
    MetricNames(
        "dynamo",
        queued=("dynamo_frontend_queued_requests",),
        inflight=("dynamo_frontend_inflight_requests",),
        ttft="dynamo_frontend_time_to_first_token_seconds",
        model_label="model",
    ),
    # vLLM's OpenAI server (also what Dynamo's workers export): one series per engine, summed.
    MetricNames(
        "vllm",
        queued=("vllm:num_requests_waiting",),
        inflight=("vllm:num_requests_running", "vllm:num_requests_waiting"),
        ttft="vllm:time_to_first_token_seconds",
        model_label="model_name",
    ),
)

TTFT_QUANTILE = 0.9
STALE_INTERVALS = 3  # data older than this many intervals is unknown
NO_METRICS = "no load metrics"


@dataclass(frozen=True, slots=True)
class ModelLoad:
    """One model's load at the last scrape."""

    queued: float | None
    inflight: float | None
    ttft_p90: float | None  # seconds, over the interval(s) before the scrape; None: no first token in them
    ttft_count: float  # first tokens in that span
    at: float  # clock time of the scrape


@dataclass(slots=True)
class ScrapedModel:
    """One model's values in one scrape (TTFT as cumulative bucket counts since the backend started)."""

    queued: float | None = None
    inflight: float | None = None
    buckets: dict[float, float] | None = None


def parse_metrics(text: str, names: Iterable[MetricNames] = METRIC_NAMES) -> dict[str, ScrapedModel]:
    """Model -> queued, in-flight and TTFT buckets, from Prometheus text exposition."""
    names = tuple(names)
    families = {name for kind in names for name in (*kind.queued, *kind.inflight, kind.ttft)}
    prefixes = tuple(families)
    lines = []
    for line in text.splitlines():
        if line.startswith(prefixes):
            lines.append(line)
        elif line.startswith("# TYPE "):  # histogram samples need their TYPE line to be grouped
            parts = line.split(" ", 3)
            if len(parts) > 2 and parts[2] in families:
                lines.append(line)
    found: dict[str, dict[str, list]] = {}  # family -> sample name -> [(labels, value)]
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        if family.name in families:
            samples = found.setdefault(family.name, {})
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    models: dict[str, ScrapedModel] = {}
    for kind in names:
        label = kind.model_label
        for field, metric_names in (("queued", kind.queued), ("inflight", kind.inflight)):
            sums: dict[str, float] = {}
            for name in metric_names:
                for labels, value in found.get(name, {}).get(name, ()):
                    model = labels.get(label)
                    if model is not None and not math.isnan(value):
                        sums[model] = sums.get(model, 0.0) + value
            for model, value in sums.items():
                raw = models.setdefault(model, ScrapedModel())
                if getattr(raw, field) is None:
                    setattr(raw, field, value)
        buckets: dict[str, dict[float, float]] = {}
        for labels, value in found.get(kind.ttft, {}).get(kind.ttft + "_bucket", ()):
            model, bound = labels.get(label), labels.get("le")
            if model is None or bound is None:
                continue
            per_model = buckets.setdefault(model, {})
            le = float(bound)
            per_model[le] = per_model.get(le, 0.0) + value  # several engines: summed per bound
        for model, counts in buckets.items():
            raw = models.setdefault(model, ScrapedModel())
            if raw.buckets is None:
                raw.buckets = counts
    return models


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of cumulative bucket counts {upper bound: count}, as Prometheus computes it.

    Linear within the bucket holding the rank (from 0 for the first bucket); the highest finite
    bound when the rank falls in +Inf. None without a +Inf bucket or without observations.
    """
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != math.inf:
        return None
    counts, running = [], 0.0
    for bound in bounds:  # a scrape can be torn between series: force monotonic counts
        running = max(running, buckets[bound])
        counts.append(running)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    for index, (bound, count) in enumerate(zip(bounds, counts)):
        if count >= rank:
            if bound == math.inf:
                return bounds[-2] if len(bounds) > 1 else None
            lower, below = (bounds[index - 1], counts[index - 1]) if index else (0.0, 0.0)
            if index == 0 and bound <= 0:
                return bound
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
    return None  # unreachable: the last count is the total


def _delta(current: dict[float, float], previous: dict[float, float] | None) -> dict[float, float]:
    """Bucket counts added since the previous scrape (all of them after a counter reset)."""
    if previous is None:
        return current
    delta = {bound: count - previous.get(bound, 0.0) for bound, count in current.items()}
    if any(count < 0 for count in delta.values()):
        return current  # the backend restarted: its counters began again from zero
    return delta


class _ScrapeError(Exception):
    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


class BackendLoad:
    """Polls a Prometheus ``/metrics`` URL and answers, per model, whether it is saturated.

    ``start()`` (on the running loop) polls at once and then every ``interval`` seconds;
    ``aclose()`` stops. ``update(text)`` takes one scrape by hand (tests, other transports).
    The TTFT p90 covers the last ``ttft_intervals`` scrape intervals (default 1: the last two
    scrapes); after failed polls it spans the gap since the last good one.
    """

    def __init__(
        self,
        url: str,
        interval: float = 2.0,
        *,
        timeout: float | None = None,
        names: Iterable[MetricNames] = METRIC_NAMES,
        ttft_intervals: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        if ttft_intervals < 1:
            raise ValueError(f"ttft_intervals must be at least 1, got {ttft_intervals!r}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"metrics URL must be http(s)://host[:port]/path, got {url!r}")
        self.url = url
        self.interval = interval
        self.timeout = timeout if timeout is not None else min(interval, 5.0)
        self.names = tuple(names)
        self._clock = clock
        self._target = ((parts.path or "/") + (f"?{parts.query}" if parts.query else "")).encode()
        self._upstream = Upstream(
            f"{parts.scheme}://{parts.netloc}", connect_timeout=self.timeout, first_byte_timeout=self.timeout, idle_timeout=self.timeout
        )
        self._task: asyncio.Task[None] | None = None
        # The scrapes the TTFT delta reaches back over (oldest first). With few first tokens per
        # interval (a long queue) one interval often has none, and the p90 flips between a value
        # and None; ttft_intervals > 1 spans more scrapes.
        self._history: deque[dict[str, ScrapedModel]] = deque(maxlen=ttft_intervals)
        self._loads: dict[str, ModelLoad] = {}
        self._state = "starting"  # "ok" or a short description of what fails; logged when it changes
        self.scrapes = 0
        self.failures = 0

    # -- what routing uses ---------------------------------------------------

    def load(self, model: str) -> ModelLoad | None:
        """The model's load, or None when unknown or older than three intervals."""
        load = self._loads.get(model)
        if load is None or self._clock() - load.at > STALE_INTERVALS * self.interval:
            return None
        return load

    def saturated(self, model: str, max_queue: int | None, max_ttft_p90: float | None) -> str | None:
        """Why ``model`` is saturated ("queue 12 > 8", "ttft_p90 2.1s > 1.5s"), or None (not, or unknown)."""
        try:
            load = self.load(model)
            if load is None:
                return None
            if max_queue is not None and load.queued is not None and load.queued > max_queue:
                return f"queue {load.queued:g} > {max_queue:g}"
            if max_ttft_p90 is not None and load.ttft_p90 is not None and load.ttft_p90 > max_ttft_p90:
                return f"ttft_p90 {load.ttft_p90:.3g}s > {max_ttft_p90:g}s"
            return None
        except Exception as exc:  # never into the request path
            self._set_state("broken", f"load check failed: {exc!r}")
            return None

    @property
    def state(self) -> str:
        """"ok", "starting", or what went wrong with the last poll (for /health or /stats)."""
        return self._state

    def models(self) -> dict[str, ModelLoad]:
        """Every model's last load, stale or not (for /stats)."""
        return dict(self._loads)

    # -- polling ----------------------------------------------------------------

    def start(self) -> None:
        """Start polling on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="switchyard-backend-load")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self._upstream.aclose()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.poll_once()
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))

    async def poll_once(self) -> bool:
        """One scrape; True when it worked. Never raises (but cancellation)."""
        try:
            text = await self._fetch()
            self.update(text)
            return True
        except asyncio.CancelledError:
            raise
        except _ScrapeError as exc:
            self.failures += 1
            self._set_state(exc.state, str(exc))
        except ValueError as exc:
            self.failures += 1
            self._set_state("unparsable", f"not Prometheus text: {exc}")
        except Exception as exc:  # a bug here must not stop polling
            self.failures += 1
            self._set_state(f"error {type(exc).__name__}", f"{type(exc).__name__}: {exc}")
        return False

    async def _fetch(self) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                exchange = await self._upstream.open("GET", self._target, [(b"Accept", b"text/plain")], None)
                try:
                    body = await exchange.read()
                except BaseException:
                    exchange.close()
                    raise
        except TimeoutError:
            raise _ScrapeError("timeout", f"no answer within {self.timeout:g}s") from None
        except UpstreamError as exc:
            raise _ScrapeError(f"unreachable ({exc.kind})", str(exc)) from None
        if exchange.status != 200:
            raise _ScrapeError(f"HTTP {exchange.status}", f"HTTP {exchange.status}: {body[:200].decode('utf-8', 'replace')}")
        return body.decode("utf-8", "replace")

    def update(self, text: str, now: float | None = None) -> None:
        """Take one scrape: per model, queue and in-flight now, TTFT p90 since the previous scrape."""
        current = parse_metrics(text, self.names)  # ValueError: not Prometheus text
        at = self._clock() if now is None else now
        previous = self._history[0] if self._history else None
        loads = {}
        for model, raw in current.items():
            p90, count = None, 0.0
            if raw.buckets is not None and previous is not None:  # the first scrape has no interval
                before = previous.get(model)
                delta = _delta(raw.buckets, before.buckets if before is not None else None)
                count = delta.get(math.inf, 0.0)
                if count > 0:
                    p90 = histogram_quantile(TTFT_QUANTILE, delta)
            loads[model] = ModelLoad(raw.queued, raw.inflight, p90, count, at)
        self._history.append(current)
        self._loads = loads
        self.scrapes += 1
        if not current:
            # Normal for a fresh Dynamo frontend: its per-model series appear with a model's first request.
            self._set_state(NO_METRICS, "")
        else:
            self._set_state("ok", "")

    def _set_state(self, state: str, message: str) -> None:
        if state == self._state:
            return
        before, self._state = self._state, state
        if state == "ok":
            again = before not in ("starting", NO_METRICS)
            log.info("reading backend load from %s%s", self.url, " again" if again else "")
        elif state == NO_METRICS:
            log.info(
                "no per-model queue or TTFT metrics at %s yet (a Dynamo frontend shows them after a model's first request; "
                "a wrong URL shows none ever); models count as not saturated",
                self.url,
            )
        else:
            log.warning("cannot read backend load from %s: %s; models count as not saturated until it can", self.url, message)
