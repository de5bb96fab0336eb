"""The routing decision: which backend model serves a request, and why.

A request asks for routing by naming the virtual model (``auto``) or a
RouteLLM-style ``router-<router>-<threshold>``; any other model passes through.
The models form tiers, strongest first (two: strong and weak); a score picks the
strongest tier whose cut-point it reaches, the top cut-point being the threshold.
Empty prompts, router errors and router timeouts pick the fallback model.

Each decision carries its reason, applied in this order:

* ``override``: the request pinned a model or set its threshold (when allowed);
* ``affinity``: the conversation keeps its model (sticky), or does not go below it (escalate);
* ``load``: the chosen pool is saturated and the score was within the margin of a cut-point;
* ``budget``: the strong-share budget's live threshold changed the outcome;
* ``score``: the score against the configured cut-points;
* ``fallback``: no score (see ``fallback_reason``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .affinity import AffinityStore, apply_affinity
from .budget import StrongShareBudget
from .config import Settings, Tier
from .routers import registry
from .routers.base import RouterError
from .scoring import Scorer, ScoringTimeout

log = logging.getLogger("switchyard.decision")

_ROUTER_MODEL = re.compile(r"router-(?P<router>[A-Za-z0-9_]+)-(?P<threshold>[0-9]*\.?[0-9]+(?:[eE]-?[0-9]+)?)")

STRONG, MIDDLE, WEAK, FALLBACK, PASSTHROUGH = "strong", "middle", "weak", "fallback", "passthrough"
DECISIONS = (STRONG, MIDDLE, WEAK, FALLBACK, PASSTHROUGH)
REASONS = ("score", "budget", "load", "affinity", "override", "fallback", "passthrough")


class RoutingRequestError(ValueError):
    """The request names a router or threshold that cannot be used (a 400)."""


# Not frozen, and __init__ written out: compiled, a dataclass's generated __init__ runs as Python
# (~2,700 instructions a request, ~6x a compiled one); eq, repr and dataclasses.replace still come from @dataclass.
@dataclass(slots=True, init=False)
class Decision:
    """One request's routing outcome; treat it as immutable (``dataclasses.replace`` for a changed copy)."""

    decision: str  # strong (top tier), middle, weak (lowest tier), fallback or passthrough
    model: str
    score: float | None
    router: str | None
    threshold: float | None  # the top cut-point this request was compared with
    fallback_reason: str | None  # why a fallback happened
    cause: str | None  # one of REASONS; None: derived from the decision (see ``reason``)
    tier: int | None  # index in the tiers, 0 = strongest

    def __init__(self, decision: str, model: str, score: float | None = None, router: str | None = None, threshold: float | None = None,
                 fallback_reason: str | None = None, cause: str | None = None, tier: int | None = None) -> None:
        self.decision = decision
        self.model = model
        self.score = score
        self.router = router
        self.threshold = threshold
        self.fallback_reason = fallback_reason
        self.cause = cause
        self.tier = tier

    @property
    def reason(self) -> str:
        """Why this model: score, budget, load, affinity, override, fallback or passthrough."""
        if self.cause is not None:
            return self.cause
        return FALLBACK if self.decision == FALLBACK else PASSTHROUGH if self.decision == PASSTHROUGH else "score"


@dataclass(slots=True, init=False)  # __init__ by hand, as Decision's
class Context:
    """What one request adds to its decision: its conversation and its own controls."""

    conversation: str | None  # affinity key (header or hash of the first messages)
    threshold: float | None  # x-switchyard-threshold, when allowed
    model: str | None  # x-switchyard-model, when allowed: a tier's model
    remembered: str | None  # set by ``decide``: the conversation's model found in memory (an affinity hit)

    def __init__(self, conversation: str | None = None, threshold: float | None = None, model: str | None = None,
                 remembered: str | None = None) -> None:
        self.conversation = conversation
        self.threshold = threshold
        self.model = model
        self.remembered = remembered


Saturation = Callable[[str], "str | None"]  # model -> why its pool is saturated, or None


@dataclass(frozen=True, slots=True)
class Target:
    """What a routed request asked for: which router, at which threshold."""

    router: str
    threshold: float


class Decider:
    """Turns (requested model, prompt, context) into a Decision; owns the loaded routers,
    the strong-share budget and the conversation memory."""

    def __init__(self, settings: Settings, saturation: Saturation | None = None) -> None:
        self.settings = settings
        self.tiers: list[Tier] = settings.tiers
        self._index = {tier.model: i for i, tier in enumerate(self.tiers)}  # model -> tier, 0 = strongest
        self.default = Target(settings.router_type, settings.threshold)
        self._scorers: dict[str, Scorer] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self.alone: Callable[[], bool] | None = None  # whether the request being decided is the only one in flight
        self.budget: StrongShareBudget | None = None
        if settings.target_strong_fraction is not None:
            self.budget = StrongShareBudget(
                settings.target_strong_fraction, window=settings.budget_window, min_threshold=settings.budget_min_threshold,
                max_threshold=settings.budget_max_threshold, initial_threshold=settings.threshold,
                warmup=min(50, settings.budget_window),
            )
        self.affinity: AffinityStore | None = None  # with --affinity sticky|escalate
        if settings.affinity != "off":
            self.affinity = AffinityStore(settings.affinity_max_entries, settings.affinity_ttl)
        self.saturation = saturation  # set by the app with --load-aware

    @property
    def threshold(self) -> float:
        """The live threshold of the default target (the budget's, with --target-strong-fraction)."""
        return self.budget.threshold if self.budget is not None else self.default.threshold

    def tier_table(self) -> list[dict[str, Any]]:
        """The tiers as reported by /v1/models and /stats, the top cut-point being the live threshold."""
        return [{"tier": i, "model": tier.model, "cut_point": self.threshold if i == 0 else tier.cut} for i, tier in enumerate(self.tiers)]

    def tier_of(self, model: str) -> int | None:
        return self._index.get(model)

    def pinned(self, value: str) -> str | None:
        """The model an x-switchyard-model value names: strong, weak or a tier's model; None if none."""
        if value == STRONG:
            return self.tiers[0].model
        if value == WEAK:
            return self.tiers[-1].model
        return value if value in self._index else None

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

    async def decide(self, target: Target, prompt: str, context: Context | None = None, record: bool = True) -> Decision:
        """The decision for ``prompt``; ``record=False`` (a dry run, /v1/route) leaves the budget and affinity as they are."""
        settings = self.settings
        budgeted = self.budget is not None and target is self.default
        threshold = self.budget.threshold if budgeted else target.threshold  # type: ignore[union-attr]
        if context is not None and context.threshold is not None:
            threshold = context.threshold
        memory = self.affinity if context is not None and context.conversation is not None else None
        previous = memory.get(context.conversation) if memory is not None else None  # type: ignore[union-attr, arg-type]
        if previous is not None and previous not in self._index:
            previous = None  # remembered under another configuration
        if context is not None:
            context.remembered = previous
        if not record:
            memory = None
        if context is not None and context.model is not None:
            decision = self._decision(self.tier_of(context.model), None, target.router, threshold, "override")  # type: ignore[arg-type]
            return self._remember(memory, context, previous, decision)
        overridden = context is not None and context.threshold is not None
        if previous is not None and settings.affinity == "sticky" and not overridden:
            return self._decision(self.tier_of(previous), None, target.router, threshold, "affinity")  # type: ignore[arg-type]
        if not prompt.strip():
            log.info("routing fell back: the request has no text to score")
            return self._fallback(target.router, threshold, "empty_prompt")
        scorer = self._scorers.get(target.router) or await self.scorer(target.router)
        try:
            # a cheap router is called directly: two coroutines fewer per request
            if scorer.router.inline:
                score = scorer.score_inline(prompt)
            else:
                score = await scorer.score(prompt, settings.router_timeout, self.alone is not None and self.alone())
        except ScoringTimeout as exc:
            log.warning("routing fell back: %s", exc)
            return self._fallback(target.router, threshold, "router_timeout")
        except Exception as exc:
            log.warning("routing fell back: router %r failed: %s", target.router, exc)
            return self._fallback(target.router, threshold, "router_error")
        if budgeted and record:
            self.budget.observe(score)  # type: ignore[union-attr]  # after taking the threshold: a score never moves its own bar
        index = self._pick(score, threshold)
        cause = "score"
        if overridden:
            cause = "override"
        elif budgeted and index != self._pick(score, target.threshold):
            cause = "budget"
        if self.saturation is not None:
            moved = self._off_saturated(index, score, threshold)
            if moved != index:
                index, cause = moved, "load"
        if previous is not None and settings.affinity == "escalate" and self._index[previous] < index:
            # escalate: never back down
            index, cause = self._index[previous], "affinity"
        return self._remember(memory, context, previous, self._decision(index, score, target.router, threshold, cause))

    def _fallback(self, router: str, threshold: float, why: str) -> Decision:
        return Decision(FALLBACK, self.settings.fallback_model, None, router, threshold, why)  # type: ignore[arg-type]

    def _decision(self, index: int, score: float | None, router: str, threshold: float, cause: str) -> Decision:
        last = len(self.tiers) - 1
        label = STRONG if index == 0 else WEAK if index == last else MIDDLE
        return Decision(label, self.tiers[index].model, score, router, threshold, None, cause, index)

    def _remember(self, memory: AffinityStore | None, context: Context | None, previous: str | None, decision: Decision) -> Decision:
        """Keep the conversation's model: its first one (sticky) or its strongest so far (escalate)."""
        if memory is not None and context is not None and context.conversation is not None:
            model, _ = apply_affinity(self.settings.affinity, previous, decision.model, lambda m: -self._index[m])  # type: ignore[arg-type]
            memory.put(context.conversation, model)
        return decision

    def _pick(self, score: float, threshold: float) -> int:
        """The strongest tier whose cut-point the score reaches (the top cut-point is ``threshold``)."""
        for index in range(len(self.tiers) - 1):
            if score >= self._cut(index, threshold):
                return index
        return len(self.tiers) - 1

    def _cut(self, index: int, threshold: float) -> float:
        """The lowest score that reaches tier ``index``."""
        if index == 0:
            return threshold
        if index == len(self.tiers) - 1:
            return 0.0
        return min(self.tiers[index].cut, threshold)

    def _off_saturated(self, index: int, score: float, threshold: float) -> int:
        """With --load-aware: a score within the margin of its tier's edge moves to the neighbouring
        tier when its own pool is saturated and the neighbour's is not."""
        saturated = self.saturation
        assert saturated is not None
        if saturated(self.tiers[index].model) is None:
            return index
        margin = self.settings.load_margin
        below = index + 1
        if below < len(self.tiers) and score - self._cut(index, threshold) < margin and saturated(self.tiers[below].model) is None:
            return below
        above = index - 1
        if above >= 0 and self._cut(above, threshold) - score <= margin and saturated(self.tiers[above].model) is None:
            return above
        return index

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
