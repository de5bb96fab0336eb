"""The router interface: turn prompts into scores in [0, 1].

A score is how much a prompt needs the strong model; the decision layer
compares it with a threshold. Routers take a batch because learned routers
are far cheaper per prompt in batches; cheap routers just loop.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar


class RouterError(Exception):
    """A router could not be built or could not score (the message says why and what to do)."""


class Router(abc.ABC):
    """Scores prompts. Subclasses set ``name`` and implement :meth:`score_batch`.

    ``inline`` routers are cheap enough (microseconds) to run on the event loop;
    all others run in a worker thread so they never block request handling, except that
    prompts of at most ``inline_chars`` characters are scored on the loop while no other
    request is in flight: then nothing waits behind them, and handing one prompt to a thread
    and back costs more than scoring it (two thread wake-ups: 50-170 µs on the reference VM).
    """

    name: ClassVar[str]
    inline: ClassVar[bool] = False
    inline_chars: ClassVar[int] = 0
    concurrency: ClassVar[int] = 1  # batches scored at once (threads for blocking routers)

    @classmethod
    def from_config(cls, *, checkpoint_path: str | None = None, options: dict[str, Any] | None = None) -> Router:
        """Build the router from the server configuration.

        ``checkpoint_path`` is a local folder (or hub id, for routers that accept one);
        ``options`` is the router's own section of the config file.
        """
        return cls(**(options or {}))

    @abc.abstractmethod
    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        """Return one score in [0, 1] per prompt; may block (it runs off the event loop unless ``inline``)."""

    async def ascore_batch(self, prompts: Sequence[str]) -> list[float] | None:
        """Async scoring for routers whose work is I/O (e.g. an embeddings service).

        Return ``None`` (the default) to have the caller run :meth:`score_batch` in a thread.
        """
        return None

    def close(self) -> None:
        """Release resources (threads, sessions); called once at shutdown."""
