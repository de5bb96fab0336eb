"""The routing decision: which backend model serves a request, and why.

A request asks for routing by naming the virtual model (``auto``) or a
RouteLLM-style ``router-<router>-<threshold>``; any other model passes through.
Score >= threshold picks the strong model. Empty prompts, router errors and
router timeouts pick the fallback model, with the reason recorded.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

from .config import Settings
from .routers import registry
from .routers.base import RouterError
from .scoring import Scorer, ScoringTimeout

log = logging.getLogger("switchyard.decision")

_ROUTER_MODEL = re.compile(r"router-(?P<router>[A-Za-z0-9_]+)-(?P<threshold>[0-9]*\.?[0-9]+(?:[eE]-?[0-9]+)?)")

STRONG, WEAK, FALLBACK, PASSTHROUGH = "strong", "weak", "fallback", "passthrough"
DECISIONS = (STRONG, WEAK, FALLBACK, PASSTHROUGH)


class RoutingRequestError(ValueError):
    """The request names a router or threshold that cannot be used (a 400)."""


@dataclass(frozen=True, slots=True)
class Decision:
    decision: str
    model: str
    score: float | None = None
    router: str | None = None
    threshold: float | None = None
    reason: str | None = None  # why a fallback happened


@dataclass(frozen=True, slots=True)
class Target:
    """What a routed request asked for: which router, at which threshold."""

    router: str
    threshold: float


class Decider:
    """Turns (requested model, prompt) into a Decision; owns the loaded routers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.default = Target(settings.router_type, settings.threshold)
        self._scorers: dict[str, Scorer] = {}
        self._loading: dict[str, asyncio.Lock] = {}

    def target(self, model: Any) -> Target | None:
        """The routing target a model name asks for, or None for a real model (passthrough)."""
        if model == self.settings.virtual_model_name:
            return self.default
        if not isinstance(model, str) or not model.startswith("router-"):
            return None
        match = _ROUTER_MODEL.fullmatch(model)
        if match is None:
            raise RoutingRequestError(
                f"model {model!r} looks like a router name but is not router-<router>-<threshold>, e.g. router-mf-0.11593"
            )
        router, threshold = match["router"], float(match["threshold"])
        if router not in registry.names():
            raise RoutingRequestError(f"unknown router {router!r} in model {model!r}; choose one of: {', '.join(registry.names())}")
        if not 0.0 <= threshold <= 1.0:
            raise RoutingRequestError(f"threshold {threshold:g} in model {model!r} must be between 0 and 1")
        return Target(router, threshold)

    async def start(self) -> None:
        """Load the configured router now, so a broken one stops start-up instead of the first request."""
        await self.scorer(self.default.router)

    async def decide(self, target: Target, prompt: str) -> Decision:
        settings = self.settings
        if not prompt.strip():
            log.info("routing fell back: the request has no text to score")
            return Decision(FALLBACK, settings.fallback_model, None, target.router, target.threshold, "empty_prompt")  # type: ignore[arg-type]
        scorer = await self.scorer(target.router)
        try:
            score = await scorer.score(prompt, settings.router_timeout)
        except ScoringTimeout as exc:
            log.warning("routing fell back: %s", exc)
            return Decision(FALLBACK, settings.fallback_model, None, target.router, target.threshold, "router_timeout")  # type: ignore[arg-type]
        except Exception as exc:
            log.warning("routing fell back: router %r failed: %s", target.router, exc)
            return Decision(FALLBACK, settings.fallback_model, None, target.router, target.threshold, "router_error")  # type: ignore[arg-type]
        if score >= target.threshold:
            return Decision(STRONG, settings.strong_model, score, target.router, target.threshold)
        return Decision(WEAK, settings.weak_model, score, target.router, target.threshold)

    async def scorer(self, name: str) -> Scorer:
        """The scorer of router ``name``, loaded once (off the loop) and cached."""
        scorer = self._scorers.get(name)
        if scorer is not None:
            return scorer
        lock = self._loading.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self._scorers:
                router = await asyncio.to_thread(build_router, self.settings, name)
                self._scorers[name] = Scorer(router, batch_size=self.settings.router_batch_size, concurrency=router.concurrency)
                log.info("loaded router %r", name)
        return self._scorers[name]

    async def aclose(self) -> None:
        for scorer in self._scorers.values():
            await scorer.aclose()
            scorer.router.close()
        self._scorers.clear()


def build_router(settings: Settings, name: str) -> Any:
    """Build router ``name`` with its options from ``settings`` (the checkpoint goes to the configured router)."""
    options = dict(settings.router_options.get(name, {}))
    if name == "random":
        options.setdefault("seed", settings.random_seed)
    checkpoint = settings.checkpoint_path if name == settings.router_type else None
    try:
        return registry.build(name, checkpoint_path=checkpoint, options=options)
    except RouterError:
        raise
    except Exception as exc:
        raise RouterError(f"cannot load router {name!r}: {exc}") from exc
