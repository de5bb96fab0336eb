"""The word-problem slope: how much a router's logit should rise with a word problem's quantities.

The routing corpus has no grade-school word problems, so the ``wp_quantities`` feature's weight is not
learned from it: the routers are fitted without the feature, then its weight alone is fitted on the
word-problem anchors (``anchors.word_problems``), the fitted model's logits held fixed as an offset. A
free intercept absorbs the anchors' overall level during that fit and is then dropped, so only the
ordering of word problems among themselves is learned from them, not how hard they are as a group.
"""

from __future__ import annotations

import numpy as np

FEATURE = "wp_quantities"


def _loss(z: np.ndarray, y: np.ndarray) -> float:
    """Soft-label logistic loss of logits ``z``, computed without overflow."""
    return float(np.sum(np.logaddexp(0.0, z) - y * z))


def fit_slope(offset: np.ndarray, x: np.ndarray, y: np.ndarray, iterations: int = 100) -> float:
    """Weight ``a`` of logistic soft-label regression ``y ~ sigmoid(offset + a * x + b)`` (``b`` free, dropped).

    Newton's method with step halving: a plain Newton step from ``a = b = 0`` overshoots when the
    offset is far from the targets' level, as it is here (the anchors are easier than the corpus's
    word problems look to the fitted model)."""
    params = np.zeros(2)
    design = np.column_stack([x, np.ones_like(x)])
    loss = _loss(offset, y)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(offset + design @ params)))
        grad = design.T @ (y - p)
        hess = (design * (p * (1 - p))[:, None]).T @ design + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        while True:
            new_loss = _loss(offset + design @ (params + step), y)
            if new_loss <= loss or np.abs(step).max() < 1e-12:
                break
            step /= 2
        params += step
        converged = loss - new_loss < 1e-12
        loss = new_loss
        if converged:
            break
    return float(params[0])
