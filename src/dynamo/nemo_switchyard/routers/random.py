"""The random router: a baseline, and a way to split traffic by a fixed share.

Scores are a seeded hash of the prompt, so they are uniform on [0, 1], reproducible
across processes and restarts, and the same prompt always goes the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from .base import Router

_STEP = 2.0**-53


class RandomRouter(Router):
    name = "random"
    inline = True

    def __init__(self, seed: int = 0) -> None:
        self._salt = int(seed).to_bytes(8, "little", signed=True)

    @classmethod
    def from_config(cls, *, checkpoint_path: str | None = None, options: dict[str, Any] | None = None) -> RandomRouter:
        return cls(**(options or {}))

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        return [self._score(prompt) for prompt in prompts]

    def _score(self, prompt: str) -> float:
        digest = hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=8, key=self._salt).digest()
        return (int.from_bytes(digest, "little") >> 11) * _STEP  # 53 bits: exactly representable, < 1
