"""Routers that misbehave on purpose, loaded by the server as ``routers_for_tests:Name``."""

from __future__ import annotations

import time
from collections.abc import Sequence

from dynamo.nemo_switchyard.routers.base import Router


class FailingRouter(Router):
    name = "failing"

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        raise RuntimeError("model weights are on fire")


class SlowRouter(Router):
    """Blocks its thread for ``delay`` seconds per batch: must not block the server."""

    name = "slow"

    def __init__(self, delay: float = 2.0) -> None:
        self.delay = delay

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        time.sleep(self.delay)
        return [1.0 for _ in prompts]


class NanRouter(Router):
    name = "nan"
    inline = True

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        return [float("nan") for _ in prompts]
