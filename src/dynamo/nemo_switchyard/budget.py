"""Strong-share budget: a live threshold that sends about ``target`` of the traffic to the strong model.

A fixed threshold sends a share to the strong model that moves with the prompt mix;
operators budget in shares ("30 % strong"). This keeps the last ``window`` scores in
arrival order (a ring buffer) and in sorted order (a list kept with ``bisect``), and
puts the threshold at the (1 - target) quantile of the window, clamped to
``[min_threshold, max_threshold]``.

Cost, measured on the shared 2-core dev machine (CPython 3.11, ``timeit``, best of 5):
``threshold`` + ``observe`` together take 1.5-2.5 µs per request at window 1000, 3-5 µs
at 10 000 and 23-32 µs at 100 000, where moving the sorted list's memory on insert and
delete (``list.insert`` / ``del``, O(n) memmove in C) dominates; keep the window at or
below ~20 000. The threshold is recomputed lazily (once per observe, O(log n) with
ties, O(1) without), so recomputing only every k observations would gain nothing.

Order matters: the decision for a request uses the threshold *before* its own score
is observed, so a score never moves the bar it is compared with (``step`` does both in
that order). Observe only routed scores (strong / weak decisions), not fallbacks or
passthrough, and keep one budget per router: scores of different routers are not on
one scale.

Ties: routers with few distinct outputs (the lexical router) put many equal scores on
the quantile. No single threshold splits a tie, so the threshold is the one of the two
neighbouring cut points (at the tied value, or just above it) whose share in the
window is closer to the target; with ties the achieved share is the closest
deterministic one, not exactly the target.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort

__all__ = ["StrongShareBudget"]


class StrongShareBudget:
    """The live threshold for a target share of strong decisions over a sliding window."""

    __slots__ = (
        "_cached",
        "_next",
        "_ring",
        "_sorted",
        "_target",
        "initial_threshold",
        "max_threshold",
        "min_threshold",
        "observed",
        "warmup",
        "window",
    )

    def __init__(
        self,
        target: float,
        window: int = 1000,
        min_threshold: float = 0.0,
        max_threshold: float = 1.0,
        initial_threshold: float = 0.5,
        warmup: int = 50,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window!r}")
        if not min_threshold <= max_threshold:
            raise ValueError(f"min_threshold {min_threshold!r} is above max_threshold {max_threshold!r}")
        if not 1 <= warmup <= window:
            raise ValueError(f"warmup must be between 1 and the window ({window}), got {warmup!r}")
        self._target = _checked_target(target)
        self.window = window
        self.min_threshold = min_threshold
        self.max_threshold = max_threshold
        self.initial_threshold = min(max(initial_threshold, min_threshold), max_threshold)
        self.warmup = warmup
        self._ring: list[float] = []  # arrival order; once full, _next is the oldest slot
        self._next = 0
        self._sorted: list[float] = []
        self._cached: float | None = None  # threshold of the current window (None: recompute)
        self.observed = 0  # scores observed in total (for metrics)

    @property
    def target(self) -> float:
        """The share of scores that should reach the threshold."""
        return self._target

    @target.setter
    def target(self, value: float) -> None:
        """Change the target live (e.g. on a config reload); the window is kept."""
        self._target = _checked_target(value)
        self._cached = None

    def observe(self, score: float) -> None:
        """Record a routed request's score (after deciding it with ``threshold``)."""
        if math.isnan(score):  # would break the sorted order; scoring already rejects it
            return
        ring = self._ring
        if len(ring) < self.window:
            ring.append(score)
        else:
            index = self._next
            oldest = ring[index]
            ring[index] = score
            self._next = index + 1 if index + 1 < self.window else 0
            ordered = self._sorted
            del ordered[bisect_left(ordered, oldest)]
        insort(self._sorted, score)
        self._cached = None
        self.observed += 1

    @property
    def threshold(self) -> float:
        """The threshold to compare the next score with (score >= threshold: strong)."""
        cached = self._cached
        if cached is None:
            cached = self._cached = self._compute()
        return cached

    def step(self, score: float) -> float:
        """The threshold for this score, then observe it: the decision never sees its own score."""
        threshold = self.threshold
        self.observe(score)
        return threshold

    @property
    def warm(self) -> bool:
        """Whether enough scores were seen for the threshold to follow the window."""
        return len(self._sorted) >= self.warmup

    def share(self, threshold: float | None = None) -> float | None:
        """Share of the window's scores at or above ``threshold`` (default: the live one); None when empty."""
        ordered = self._sorted
        if not ordered:
            return None
        if threshold is None:
            threshold = self.threshold
        return (len(ordered) - bisect_left(ordered, threshold)) / len(ordered)

    def _compute(self) -> float:
        ordered = self._sorted
        n = len(ordered)
        if n < self.warmup:
            return self.initial_threshold
        wanted = self._target * n  # scores that should be >= the threshold
        need = math.ceil(wanted - 1e-9)
        if need <= 0:
            # Nothing strong: just above the largest score.
            return self._clamp(math.nextafter(ordered[-1], math.inf))
        index = n - need
        value = ordered[index]
        if (index == 0 or ordered[index - 1] < value) and need - wanted <= 0.5:
            # No tie below, and the next cut up is no closer: the common case.
            return self._clamp(value)
        # Cut A: at the tied value (share >= target); cut B: at the next larger value (share < target).
        count_at = n - bisect_left(ordered, value, 0, index + 1)
        above = bisect_right(ordered, value)
        count_above = n - above
        if count_at - wanted <= wanted - count_above:
            return self._clamp(value)
        return self._clamp(ordered[above] if above < n else math.nextafter(value, math.inf))

    def _clamp(self, value: float) -> float:
        return min(max(value, self.min_threshold), self.max_threshold)

    def __len__(self) -> int:
        return len(self._sorted)

    def __repr__(self) -> str:
        return f"StrongShareBudget(target={self.target:g}, window={len(self)}/{self.window}, threshold={self.threshold:.4g})"


def _checked_target(target: float) -> float:
    if not 0.0 <= target <= 1.0:  # also rejects NaN
        raise ValueError(f"target must be a share between 0 and 1, got {target!r}")
    return float(target)
