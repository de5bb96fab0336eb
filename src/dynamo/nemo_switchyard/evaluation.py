"""Offline evaluation of routers with the RouteLLM metrics (pure Python, no numpy).

Setting: each prompt ``i`` has a router score ``scores[i]`` (higher = needs the strong
model more) and the quality of the strong and the weak model's answers,
``q_strong[i]`` and ``q_weak[i]`` (0/1 correctness or a graded 0..1 value).

For a strong-call share ``s = k / n`` the router sends the ``k`` highest-scoring
prompts to the strong model and the rest to the weak one:

* ``q(s)``   mean quality of the routed answers;
* ``PGR(s)`` performance gap recovered, ``(q(s) - q_weak) / (q_strong - q_weak)``
  where ``q_strong`` / ``q_weak`` are the all-strong / all-weak mean qualities;
* ``APGR``   area under PGR over ``s`` in [0, 1], an exact trapezoid over the
  ``n + 1`` points ``k = 0..n`` (a random router scores 0.5, an oracle close to 1);
* ``CPT(x)`` the smallest share of strong calls whose PGR reaches ``x``
  (``x`` as a fraction: 0.5 = CPT(50%)).

Ties: prompts with equal scores are routed as a group, in expectation over a
random order inside the group: when only ``m`` of the ``g`` prompts of a tie group
go to the strong model, each prompt of the group counts ``m / g`` strong quality
plus ``(g - m) / g`` weak quality. Results are therefore deterministic and
independent of input order, and a constant router gets exactly the random
baseline (PGR linear in ``s``, APGR = 0.5).

Data helpers read the routing corpus format (``/work/shared/data/routing``):
one JSON object per line, ``{"id", "set", "prompt", "outcomes": {model: 0..1}, ...}``,
optionally gzipped.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "apgr",
    "cpt",
    "evaluate",
    "load_labeled",
    "pair_rows",
    "pgr_curve",
]

CurvePoint = tuple[float, float, float]  # (share of strong calls, mean quality, PGR)


def _check_inputs(scores: Sequence[float], q_strong: Sequence[float], q_weak: Sequence[float]) -> int:
    n = len(scores)
    if n == 0:
        raise ValueError("need at least one prompt")
    if len(q_strong) != n or len(q_weak) != n:
        raise ValueError(
            f"scores, q_strong and q_weak must have the same length (got {n}, {len(q_strong)}, {len(q_weak)})"
        )
    for s in scores:
        if s is None or isinstance(s, float) and math.isnan(s):
            raise ValueError("scores must be numbers (found None/NaN)")
    return n


def pgr_curve(scores: Sequence[float], q_strong: Sequence[float], q_weak: Sequence[float]) -> list[CurvePoint]:
    """Return ``n + 1`` points ``(share, quality, pgr)`` for ``k = 0..n`` strong calls.

    The ``k`` highest-scoring prompts go to the strong model (tie groups are split in
    expectation, see the module docstring). Raises ``ValueError`` when the two models
    have the same mean quality (PGR undefined).
    """
    n = _check_inputs(scores, q_strong, q_weak)
    qs = [float(x) for x in q_strong]
    qw = [float(x) for x in q_weak]
    total_strong = math.fsum(qs)
    total_weak = math.fsum(qw)
    mean_strong = total_strong / n
    mean_weak = total_weak / n
    gap = mean_strong - mean_weak
    if abs(gap) < 1e-12:
        raise ValueError("strong and weak model have the same mean quality on these prompts: PGR is undefined")

    order = sorted(range(n), key=lambda i: -float(scores[i]))
    # Tie groups in descending score order: (sum of gains strong - weak, size).
    groups: list[tuple[float, int]] = []
    i = 0
    while i < n:
        j = i
        s_i = float(scores[order[i]])
        gain = 0.0
        while j < n and float(scores[order[j]]) == s_i:
            gain += qs[order[j]] - qw[order[j]]
            j += 1
        groups.append((gain, j - i))
        i = j

    curve: list[CurvePoint] = []
    routed_gain = 0.0  # gain of the full groups already routed to strong
    k = 0

    def point(k_: int, extra_gain: float) -> CurvePoint:
        quality = (total_weak + routed_gain + extra_gain) / n
        return (k_ / n, quality, (quality - mean_weak) / gap)

    curve.append(point(0, 0.0))
    for gain, size in groups:
        for m in range(1, size + 1):
            curve.append(point(k + m, gain * m / size))
        routed_gain += gain
        k += size
    # Pin the end points exactly (no float drift): all-weak = 0, all-strong = 1.
    curve[0] = (0.0, mean_weak, 0.0)
    curve[-1] = (1.0, mean_strong, 1.0)
    return curve


def _area(curve: Sequence[CurvePoint]) -> float:
    area = 0.0
    for (s0, _, p0), (s1, _, p1) in zip(curve, curve[1:]):
        area += (s1 - s0) * (p0 + p1) / 2.0
    return area


def apgr(scores: Sequence[float], q_strong: Sequence[float], q_weak: Sequence[float]) -> float:
    """Area under the PGR curve over strong-call share in [0, 1] (exact trapezoid over n + 1 points)."""
    return _area(pgr_curve(scores, q_strong, q_weak))


def cpt(curve: Sequence[CurvePoint], x: float) -> float | None:
    """Smallest strong-call share whose PGR is >= ``x`` (a fraction, e.g. 0.5 for CPT(50%)).

    Returns ``None`` when no point of the curve reaches ``x`` (only possible for ``x > 1``).
    """
    tol = 1e-9
    for share, _, p in curve:
        if p >= x - tol:
            return share
    return None


def evaluate(scores: Sequence[float], q_strong: Sequence[float], q_weak: Sequence[float]) -> dict[str, Any]:
    """Summary dict: ``n``, ``q_strong``, ``q_weak``, ``apgr``, ``cpt50``, ``cpt80``."""
    curve = pgr_curve(scores, q_strong, q_weak)
    return {
        "n": len(scores),
        "q_strong": curve[-1][1],
        "q_weak": curve[0][1],
        "apgr": _area(curve),
        "cpt50": cpt(curve, 0.5),
        "cpt80": cpt(curve, 0.8),
    }


def load_labeled(path: str) -> list[dict[str, Any]]:
    """Read a ``.jsonl`` or ``.jsonl.gz`` file of the routing corpus (one JSON object per line)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    rows: list[dict[str, Any]] = []
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc})") from exc
            if not isinstance(row, dict) or "prompt" not in row or "outcomes" not in row:
                raise ValueError(f"{path}:{lineno}: expected an object with 'prompt' and 'outcomes'")
            rows.append(row)
    return rows


def _pick(outcomes: dict[str, Any], names: str | Iterable[str]) -> float | None:
    if isinstance(names, str):
        names = (names,)
    for name in names:
        value = outcomes.get(name)
        if value is not None:
            return float(value)
    return None


def pair_rows(
    rows: Iterable[dict[str, Any]], strong: str | Sequence[str], weak: str | Sequence[str]
) -> tuple[list[str], list[float], list[float]]:
    """Keep the rows that have outcomes for both models; return ``(prompts, q_strong, q_weak)``.

    ``strong`` / ``weak`` is a model name, or a sequence of aliases (the first one
    present in a row is used), since model names differ between sets.
    """
    prompts: list[str] = []
    q_s: list[float] = []
    q_w: list[float] = []
    for row in rows:
        outcomes = row.get("outcomes") or {}
        s = _pick(outcomes, strong)
        w = _pick(outcomes, weak)
        if s is None or w is None:
            continue
        prompts.append(row["prompt"])
        q_s.append(s)
        q_w.append(w)
    return prompts, q_s, q_w
