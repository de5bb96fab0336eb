"""Scoring off the event loop: batch concurrent prompts, bound the wait.

Cheap (``inline``) routers are called directly. Others get a queue: prompts that
arrive while a batch is being scored form the next batch, so throughput grows
with load and no request waits behind another's scoring on the loop. A caller
that waits past its budget stops waiting; its prompt is dropped from the batch
if not yet started.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from .routers.base import Router, RouterError


class ScoringTimeout(Exception):
    """The router did not answer within the time budget."""


class Scorer:
    """Scores single prompts with a router, batching and off-loading as the router needs."""

    def __init__(self, router: Router, *, batch_size: int = 64, concurrency: int = 1) -> None:
        self.router = router
        self.batch_size = batch_size
        self._concurrency = concurrency
        self._queue: list[tuple[str, asyncio.Future[float]]] = []
        self._running: set[asyncio.Future[float]] = set()
        self._wakeup: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None

    @property
    def idle(self) -> bool:
        """No prompt queued or being scored: the router is free for :meth:`score_inline`."""
        return not self._queue and not self._running

    def score_inline(self, prompt: str) -> float:
        """Score one prompt with a cheap (``inline``) router right here: no coroutine, no queue."""
        scores = self.router.score_batch((prompt,))
        if len(scores) == 1 and type(score := scores[0]) is float and 0.0 <= score <= 1.0:  # the common case (NaN fails it)
            return score
        return _checked(scores)[0]

    async def score(self, prompt: str, timeout: float, alone: bool = False) -> float:
        """Score one prompt; raise ScoringTimeout or RouterError. ``alone``: no other request is
        in flight, so a prompt within the router's ``inline_chars`` is scored right here."""
        router = self.router
        if router.inline or (alone and len(prompt) <= router.inline_chars and self.idle):
            return self.score_inline(prompt)
        if not self._workers:
            self._start()
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.append((prompt, future))
        self._wakeup.set()  # type: ignore[union-attr]
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ScoringTimeout(f"router {self.router.name!r} took longer than {timeout:g}s") from None

    def _start(self) -> None:
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(self._concurrency, thread_name_prefix=f"router-{self.router.name}")
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]

    async def _work(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size :]
            batch = [(prompt, future) for prompt, future in batch if not future.done()]
            if not batch:
                continue
            prompts = [prompt for prompt, _ in batch]
            self._running.update(future for _, future in batch)
            try:
                scores = await self.router.ascore_batch(prompts)
                if scores is None:
                    scores = await loop.run_in_executor(self._executor, self.router.score_batch, prompts)
                scores = _checked(scores, len(prompts))
            except Exception as exc:  # a failing router must not kill the worker
                error = exc if isinstance(exc, RouterError) else RouterError(f"router {self.router.name!r} failed: {exc!r}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            finally:
                self._running.difference_update(future for _, future in batch)
            for (_, future), value in zip(batch, scores):
                if not future.done():
                    future.set_result(value)

    async def aclose(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        for future in [*self._running, *(future for _, future in self._queue)]:
            future.cancel()
        self._queue = []
        self._running.clear()


def _checked(scores: Sequence[float], expected: int = 1) -> list[float]:
    """Reject scores that would silently route wrong: NaN, out of [0, 1], wrong count."""
    if len(scores) != expected:
        raise RouterError(f"router returned {len(scores)} scores for {expected} prompts")
    values = [float(score) for score in scores]
    for value in values:
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise RouterError(f"router returned score {value!r}, outside [0, 1]")
    return values
