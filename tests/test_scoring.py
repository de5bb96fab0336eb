"""Unit tests for dynamo.nemo_switchyard.scoring: inline calls, batching, timeouts, failures."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence

import pytest

from dynamo.nemo_switchyard.routers.base import Router, RouterError
from dynamo.nemo_switchyard.scoring import Scorer, ScoringTimeout, _checked

WAIT = 5.0  # generous upper bound for thread hand-offs; tests never wait this long when correct


class InlineRouter(Router):
    name = "inline"
    inline = True

    def __init__(self, scores=None) -> None:
        self.scores = scores
        self.threads: list[str] = []

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        self.threads.append(threading.current_thread().name)
        if self.scores is not None:
            return list(self.scores)
        return [len(p) / 100 for p in prompts]


class GatedRouter(Router):
    """Blocking router: records batches; each batch waits for ``gate`` (set by default)."""

    name = "gated"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.threads: set[str] = set()
        self.fail_on: str | None = None
        self.result: list[float] | None = None

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        self.batches.append(list(prompts))
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        assert self.gate.wait(WAIT), "test never opened the gate"
        if self.fail_on is not None and self.fail_on in prompts:
            raise ValueError(f"cannot score {self.fail_on!r}")
        if self.result is not None:
            return list(self.result)
        return [len(p) / 100 for p in prompts]


async def _until(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, WAIT)


# ---------------------------------------------------------------- _checked


def test_checked_accepts_valid_scores():
    assert _checked([0.0, 0.5, 1.0], 3) == [0.0, 0.5, 1.0]
    assert _checked([1], 1) == [1.0]


@pytest.mark.parametrize("scores", [[-0.01], [1.01], [math.nan], [math.inf], [-math.inf]])
def test_checked_rejects_out_of_range(scores):
    with pytest.raises(RouterError, match="outside"):
        _checked(scores, 1)


@pytest.mark.parametrize("scores,expected", [([], 1), ([0.1, 0.2], 1), ([0.1], 2)])
def test_checked_rejects_wrong_count(scores, expected):
    with pytest.raises(RouterError, match=f"{len(scores)} scores for {expected} prompts"):
        _checked(scores, expected)


# ---------------------------------------------------------------- inline routers


def test_inline_router_called_directly_on_loop_thread():
    router = InlineRouter()

    async def go():
        scorer = Scorer(router)
        value = await scorer.score("x" * 30, timeout=1)
        assert scorer._workers == [] and scorer._executor is None  # no queue, no thread
        await scorer.aclose()
        return value

    assert asyncio.run(go()) == 0.3
    assert router.threads == [threading.current_thread().name]


class ShortInlineRouter(GatedRouter):
    """A thread router whose prompts of up to 10 characters may be scored on the loop."""

    name = "short-inline"
    inline_chars = 10


def test_a_short_prompt_of_a_request_alone_is_scored_on_the_loop():
    router = ShortInlineRouter()

    async def go():
        scorer = Scorer(router)
        assert await scorer.score("x" * 10, timeout=WAIT, alone=True) == 0.1
        assert scorer._workers == [] and scorer._executor is None  # no queue, no thread
        await scorer.aclose()

    asyncio.run(go())
    assert router.threads == {threading.current_thread().name}


@pytest.mark.parametrize("prompt,alone", [("x" * 11, True), ("x" * 10, False)])
def test_a_long_prompt_or_a_busy_moment_goes_to_the_thread(prompt, alone):
    router = ShortInlineRouter()

    async def go():
        scorer = Scorer(router)
        assert await scorer.score(prompt, timeout=WAIT, alone=alone) == len(prompt) / 100
        await scorer.aclose()

    asyncio.run(go())
    assert router.threads and threading.current_thread().name not in router.threads


def test_a_short_prompt_waits_for_the_thread_while_a_batch_is_being_scored():
    """Never two callers of a router at once: a short prompt does not overtake a running batch on the loop."""
    router = ShortInlineRouter()

    async def go():
        scorer = Scorer(router)
        router.gate.clear()
        first = asyncio.ensure_future(scorer.score("x" * 50, timeout=WAIT))
        await _until(router.entered)
        assert not scorer.idle
        second = asyncio.ensure_future(scorer.score("x" * 5, timeout=WAIT, alone=True))
        await asyncio.sleep(0.01)
        assert not second.done()  # queued behind the batch, not scored on the loop
        router.gate.set()
        assert (await first, await second) == (0.5, 0.05)
        assert scorer.idle
        await scorer.aclose()

    asyncio.run(go())
    assert threading.current_thread().name not in router.threads
    assert router.batches == [["x" * 50], ["x" * 5]]


@pytest.mark.parametrize("scores", [[1.5], [math.nan], [0.1, 0.2], []])
def test_inline_router_bad_scores_rejected(scores):
    async def go():
        await Scorer(InlineRouter(scores)).score("x", timeout=1)

    with pytest.raises(RouterError):
        asyncio.run(go())


# ---------------------------------------------------------------- batching (thread routers)


def test_thread_router_runs_off_loop():
    router = GatedRouter()

    async def go():
        scorer = Scorer(router)
        try:
            return await scorer.score("abc", timeout=WAIT)
        finally:
            await scorer.aclose()

    assert asyncio.run(go()) == 0.03
    assert router.threads and all(name.startswith("router-gated") for name in router.threads)


def test_concurrent_calls_are_batched():
    router = GatedRouter()
    router.gate.clear()

    async def go():
        scorer = Scorer(router, batch_size=64)
        try:
            first = asyncio.ensure_future(scorer.score("first", WAIT))
            await _until(router.entered)  # batch 1 is being scored, blocked on the gate
            rest = [asyncio.ensure_future(scorer.score("p" * i, WAIT)) for i in range(1, 21)]
            await asyncio.sleep(0)
            router.gate.set()
            return await first, await asyncio.gather(*rest)
        finally:
            await scorer.aclose()

    first, rest = asyncio.run(go())
    assert first == 0.05
    assert rest == [i / 100 for i in range(1, 21)]  # each caller gets its own prompt's score
    assert len(router.batches) == 2 < 21
    assert router.batches[0] == ["first"]
    assert router.batches[1] == ["p" * i for i in range(1, 21)]


def test_batch_size_limits_batches():
    router = GatedRouter()
    router.gate.clear()

    async def go():
        scorer = Scorer(router, batch_size=8)
        try:
            first = asyncio.ensure_future(scorer.score("first", WAIT))
            await _until(router.entered)
            rest = [asyncio.ensure_future(scorer.score(f"q{i}", WAIT)) for i in range(20)]
            await asyncio.sleep(0)
            router.gate.set()
            await first
            return await asyncio.gather(*rest)
        finally:
            await scorer.aclose()

    asyncio.run(go())
    assert [len(b) for b in router.batches] == [1, 8, 8, 4]
    assert [p for b in router.batches[1:] for p in b] == [f"q{i}" for i in range(20)]


# ---------------------------------------------------------------- score validation (thread routers)


@pytest.mark.parametrize("result", [[1.5], [-0.5], [math.nan], [0.1, 0.2], []])
def test_thread_router_bad_scores_rejected(result):
    router = GatedRouter()
    router.result = result

    async def go():
        scorer = Scorer(router)
        try:
            with pytest.raises(RouterError):
                await scorer.score("x", WAIT)
        finally:
            await scorer.aclose()

    asyncio.run(go())


# ---------------------------------------------------------------- timeouts


def test_timeout_raises_and_worker_survives():
    router = GatedRouter()
    router.gate.clear()

    async def go():
        scorer = Scorer(router)
        try:
            with pytest.raises(ScoringTimeout, match="'gated'"):
                await scorer.score("slow one", timeout=0.05)
            router.gate.set()
            return await scorer.score("later", timeout=WAIT)
        finally:
            await scorer.aclose()

    assert asyncio.run(go()) == 0.05
    assert router.batches == [["slow one"], ["later"]]


def test_timed_out_prompt_dropped_from_pending_batch():
    router = GatedRouter()
    router.gate.clear()

    async def go():
        scorer = Scorer(router)
        try:
            first = asyncio.ensure_future(scorer.score("first", WAIT))
            await _until(router.entered)
            with pytest.raises(ScoringTimeout):
                await scorer.score("gives up", timeout=0.01)  # queued behind the blocked batch
            keep = asyncio.ensure_future(scorer.score("keeps waiting", WAIT))
            await asyncio.sleep(0)
            router.gate.set()
            return await first, await keep
        finally:
            await scorer.aclose()

    assert asyncio.run(go()) == (0.05, 0.13)
    assert router.batches == [["first"], ["keeps waiting"]]


def test_scoring_timeout_is_not_router_error():
    assert not issubclass(ScoringTimeout, RouterError)


# ---------------------------------------------------------------- failures


def test_exception_fails_only_its_batch():
    router = GatedRouter()
    router.gate.clear()
    router.fail_on = "boom"

    async def go():
        scorer = Scorer(router)
        try:
            bad = asyncio.ensure_future(scorer.score("boom", WAIT))
            await _until(router.entered)
            good = [asyncio.ensure_future(scorer.score(p, WAIT)) for p in ("a", "bb")]
            await asyncio.sleep(0)
            router.gate.set()
            with pytest.raises(RouterError) as info:
                await bad
            after = await scorer.score("ccc", WAIT)
            return info.value, await asyncio.gather(*good), after
        finally:
            await scorer.aclose()

    error, good, after = asyncio.run(go())
    assert "gated" in str(error) and "cannot score 'boom'" in str(error)
    assert good == [0.01, 0.02]
    assert after == 0.03
    assert router.batches == [["boom"], ["a", "bb"], ["ccc"]]


def test_router_error_passed_through_unchanged():
    class Precise(Router):
        name = "precise"

        def score_batch(self, prompts):
            raise RouterError("exact words")

    async def go():
        scorer = Scorer(Precise())
        try:
            with pytest.raises(RouterError, match="^exact words$"):
                await scorer.score("x", WAIT)
        finally:
            await scorer.aclose()

    asyncio.run(go())


# ---------------------------------------------------------------- async routers


class AsyncRouter(Router):
    name = "asyncr"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.loop_threads: set[str] = set()
        self.sync_calls = 0
        self.hold: asyncio.Event | None = None

    def score_batch(self, prompts):
        self.sync_calls += 1
        raise AssertionError("the async path must be used")

    async def ascore_batch(self, prompts):
        self.loop_threads.add(threading.current_thread().name)
        self.batches.append(list(prompts))
        if self.hold is not None:
            await self.hold.wait()
        return [0.25 for _ in prompts]


def test_async_router_used_without_threads():
    router = AsyncRouter()
    spawned = []

    async def go():
        scorer = Scorer(router)
        before = threading.active_count()
        try:
            values = await asyncio.gather(*(scorer.score(f"p{i}", WAIT) for i in range(5)))
            spawned.append(threading.active_count() - before)
            return values
        finally:
            await scorer.aclose()

    assert asyncio.run(go()) == [0.25] * 5
    assert router.sync_calls == 0
    assert router.loop_threads == {threading.current_thread().name}
    assert spawned == [0]  # the executor never started a thread
    assert sum(len(b) for b in router.batches) == 5


def test_async_router_batches_while_busy():
    router = AsyncRouter()

    async def go():
        router.hold = asyncio.Event()
        scorer = Scorer(router)
        try:
            first = asyncio.ensure_future(scorer.score("first", WAIT))
            while not router.batches:
                await asyncio.sleep(0)
            rest = [asyncio.ensure_future(scorer.score(f"p{i}", WAIT)) for i in range(10)]
            await asyncio.sleep(0)
            router.hold.set()
            await first
            await asyncio.gather(*rest)
        finally:
            await scorer.aclose()

    asyncio.run(go())
    assert router.batches == [["first"], [f"p{i}" for i in range(10)]]


def test_async_router_bad_scores_rejected():
    class Bad(Router):
        name = "bad"

        def score_batch(self, prompts):
            raise AssertionError

        async def ascore_batch(self, prompts):
            return [2.0 for _ in prompts]

    async def go():
        scorer = Scorer(Bad())
        try:
            with pytest.raises(RouterError, match="outside"):
                await scorer.score("x", WAIT)
        finally:
            await scorer.aclose()

    asyncio.run(go())


# ---------------------------------------------------------------- concurrency


def test_concurrency_runs_batches_in_parallel():
    class Pair(Router):
        """Each batch waits at a 2-party barrier: it only passes if two batches run at once."""

        name = "pair"
        concurrency = 2

        def __init__(self) -> None:
            self.barrier = threading.Barrier(2, timeout=WAIT)
            self.entered = threading.Event()
            self.batches: list[list[str]] = []

        def score_batch(self, prompts):
            self.batches.append(list(prompts))
            self.entered.set()
            self.barrier.wait()
            return [0.5 for _ in prompts]

    router = Pair()

    async def go():
        scorer = Scorer(router, concurrency=router.concurrency)
        try:
            first = asyncio.ensure_future(scorer.score("a", WAIT))
            await _until(router.entered)  # batch 1 holds one thread at the barrier
            second = asyncio.ensure_future(scorer.score("b", WAIT))
            return await first, await second
        finally:
            await scorer.aclose()

    assert asyncio.run(go()) == (0.5, 0.5)
    assert router.batches == [["a"], ["b"]]


def test_concurrency_one_runs_batches_serially():
    class Guard(Router):
        name = "guard"

        def __init__(self) -> None:
            self.active = 0
            self.max_active = 0
            self.lock = threading.Lock()
            self.started = threading.Event()
            self.gate = threading.Event()

        def score_batch(self, prompts):
            with self.lock:
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            self.started.set()
            self.gate.wait(WAIT)
            with self.lock:
                self.active -= 1
            return [0.5 for _ in prompts]

    router = Guard()

    async def go():
        scorer = Scorer(router, concurrency=1, batch_size=1)
        try:
            tasks = [asyncio.ensure_future(scorer.score(f"p{i}", WAIT)) for i in range(4)]
            await _until(router.started)
            router.gate.set()
            return await asyncio.gather(*tasks)
        finally:
            await scorer.aclose()

    assert asyncio.run(go()) == [0.5] * 4
    assert router.max_active == 1


def test_aclose_cancels_queued_prompts():
    router = GatedRouter()
    router.gate.clear()

    async def go():
        scorer = Scorer(router)
        first = asyncio.ensure_future(scorer.score("first", 0.3))
        await _until(router.entered)
        pending = asyncio.ensure_future(scorer.score("pending", WAIT))
        await asyncio.sleep(0)
        await scorer.aclose()
        router.gate.set()
        results = await asyncio.gather(first, pending, return_exceptions=True)
        assert scorer._workers == [] and scorer._queue == []
        return results

    first, pending = asyncio.run(go())
    assert isinstance(pending, asyncio.CancelledError)  # queued, never scored
    assert router.batches == [["first"]]
