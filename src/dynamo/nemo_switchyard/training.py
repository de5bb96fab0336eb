"""Train the learned router's head on labeled prompts (numpy only: no torch, no scikit-learn).

Two users:

* :func:`train_checkpoint` (``switchyard train``): fine-tune a head for *one* strong/weak pair on a
  user's own labeled traffic, in the routing-corpus format (``{"prompt", "outcomes": {model: 0..1}}``),
  and write a checkpoint folder that ``--router-type learned --checkpoint-path DIR`` loads.
* ``scripts/train_learned.py``: trains the shipped default head on ``../shared/data/routing``.

The model is a logistic regression on soft labels, fitted by Newton's method with an L2 penalty
(features: the static MiniLM embedding and the standardised lexical features, see
``routers/learned.py``). For a user's pair the label is ``(q_strong - q_weak + 1) / 2`` (the chance
the strong model's answer is better, for 0/1 outcomes; its ranking is the expected quality gain,
which is what APGR rewards), and the default head's logit enters as an unpenalised feature, so a
few hundred rows adjust the shipped router instead of starting from nothing. The penalty is chosen
by 5-fold cross-validated APGR on the training part.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .evaluation import evaluate, pair_rows
from .routers import learned as L
from .routers.lexical import FEATURE_NAMES

Progress = Callable[[int, int], None] | None

MIN_ROWS = 20
EMBED_CHUNK = 256


# ------------------------------------------------------------------------------------------ features


def featurize(prompts: Sequence[str], progress: Progress = None, done: int = 0, total: int | None = None):
    """(embedding, dense lexical features, shipped lexical logit) of the prompts, in chunks
    (``progress(done + i, total)`` after each)."""
    enc = L.shared_encoder()
    total = len(prompts) if total is None else total
    embs, dens, lexs = [], [], []
    for i in range(0, len(prompts), EMBED_CHUNK):
        chunk = list(prompts[i : i + EMBED_CHUNK])
        embs.append(enc.embed(chunk))
        dense, lexical = L.lexical_features(chunk)
        dens.append(dense)
        lexs.append(lexical)
        if progress:
            progress(done + i + len(chunk), total)
    if not embs:
        return np.zeros((0, enc.dim)), np.zeros((0, len(FEATURE_NAMES))), np.zeros(0)
    return np.vstack(embs), np.vstack(dens), np.concatenate(lexs)


def standardizer(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = dense.mean(axis=0)
    sd = dense.std(axis=0)
    sd[sd < 1e-9] = 1.0
    return mu, sd


# ------------------------------------------------------------------------------------------ logistic regression


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None = None,
    *,
    C: float = 1.0,
    unpenalized: Sequence[int] = (),
    iters: int = 50,
    tol: float = 1e-8,
) -> tuple[np.ndarray, float]:
    """Logistic regression on soft labels ``y`` in [0, 1] by Newton's method.

    Minimises ``C * sum_i w_i * logloss(y_i, sigmoid(x_i . beta + b)) + 0.5 * |beta|^2`` (scikit-learn's
    convention); columns in ``unpenalized`` and the intercept have no penalty. Returns ``(beta, b)``.
    """
    n, d = X.shape
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    A = np.hstack([X, np.ones((n, 1))])
    pen = np.full(d + 1, 1.0 / C)
    pen[-1] = 0.0
    for j in unpenalized:
        pen[j] = 0.0
    pen += 1e-10  # keeps the Hessian positive definite
    beta = np.zeros(d + 1)
    prev = np.inf
    for _ in range(iters):
        z = A @ beta
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))
        loss = float(np.sum(w * (np.logaddexp(0, z) - y * z)) + 0.5 * np.sum(pen * beta * beta))
        grad = A.T @ (w * (p - y)) + pen * beta
        H = (A * (w * p * (1 - p))[:, None]).T @ A + np.diag(pen)
        step = np.linalg.solve(H, grad)
        # damped Newton: halve the step until the loss does not increase
        t = 1.0
        for _ in range(30):
            nb = beta - t * step
            nz = A @ nb
            nl = float(np.sum(w * (np.logaddexp(0, nz) - y * nz)) + 0.5 * np.sum(pen * nb * nb))
            if nl <= loss + 1e-12:
                break
            t *= 0.5
        beta = nb
        if abs(prev - nl) <= tol * max(1.0, abs(nl)):
            break
        prev = nl
    return beta[:-1], float(beta[-1])


def calibration(logits: np.ndarray, groups: Sequence[Any] | None = None, n_points: int = 201) -> dict[str, np.ndarray]:
    """Group-balanced quantiles of the logits (probabilities 0.005 .. 0.995) + a tail scale.

    The learned router maps a logit through this CDF, so threshold 0.5 sends about half of the
    (group-balanced) mix to the strong model.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if groups is None:
        w = np.ones(len(logits))
    else:
        g = np.asarray([str(x) for x in groups])
        sizes = {k: int(np.sum(g == k)) for k in set(g.tolist())}
        w = np.array([1.0 / sizes[k] for k in g])
    order = np.argsort(logits, kind="stable")
    zs = logits[order]
    cw = np.cumsum(w[order])
    cw = (cw - 0.5 * w[order]) / cw[-1]
    probs = np.linspace(0.005, 0.995, n_points)
    q = np.interp(probs, cw, zs)
    span = float(np.std(logits)) or 1.0
    for i in range(1, len(q)):  # strictly increasing (ties would give flat steps)
        if q[i] <= q[i - 1]:
            q[i] = q[i - 1] + 1e-6 * span
    return {"cal_z": q, "cal_p": probs, "cal_tail": np.array(span / 4.0)}


# ------------------------------------------------------------------------------------------ checkpoints


def write_checkpoint(output_dir: str, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
    """Write ``head.npz`` + ``manifest.json`` (check that the router loads them first).

    Weights are stored as float32; scalars and the calibration quantiles as float64 (its strictly
    increasing steps can be finer than float32 resolves).
    """
    stored: dict[str, Any] = {k: np.asarray(v, dtype=np.float64 if k.startswith("cal_") or not np.ndim(v) else np.float32)
              for k, v in arrays.items()}
    L.Head(stored, manifest["head"]["kind"], source="new head")  # validates shapes and calibration, as written
    os.makedirs(output_dir, exist_ok=True)
    tmp = os.path.join(output_dir, L.HEAD_FILE + ".tmp.npz")
    np.savez_compressed(tmp, **stored)
    os.replace(tmp, os.path.join(output_dir, L.HEAD_FILE))
    with open(os.path.join(output_dir, L.MANIFEST_FILE), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=False)
        f.write("\n")


def _apgr(scores, qs, qw) -> dict[str, Any] | None:
    if len(scores) == 0 or abs(float(np.sum(qs)) - float(np.sum(qw))) < 1e-9:
        return None
    r = evaluate(list(map(float, scores)), list(map(float, qs)), list(map(float, qw)))
    return {k: r[k] for k in ("n", "apgr", "cpt50", "cpt80", "q_strong", "q_weak")}


class _PairModel:
    """Logistic head for one pair: [embedding, standardised dense, default logit (unpenalised)]."""

    def __init__(self, emb, dense, prior):
        self.mu, self.sd = standardizer(dense)
        self.emb, self.dense, self.prior = emb, dense, prior

    def X(self, idx):
        return np.hstack([self.emb[idx], (self.dense[idx] - self.mu) / self.sd, self.prior[idx, None]])

    def fit(self, idx, y, C):
        beta, b = fit_logistic(self.X(idx), y[idx], C=C, unpenalized=[self.emb.shape[1] + self.dense.shape[1]])
        return beta, b

    def logits(self, idx, beta, b):
        return self.X(idx) @ beta + b


C_GRID = (0.01, 0.1, 1.0)


def _choose_C(model: _PairModel, idx: np.ndarray, y, qs, qw, seed: int) -> tuple[float, dict[float, float]]:
    """5-fold CV APGR (mean over folds) for each C; ties go to the smallest C (most regularised)."""
    rng = np.random.RandomState(seed)
    folds = rng.permutation(len(idx)) % 5
    cv = {}
    for C in C_GRID:
        vals = []
        for k in range(5):
            tr, te = idx[folds != k], idx[folds == k]
            beta, b = model.fit(tr, y, C)
            r = _apgr(model.logits(te, beta, b), qs[te], qw[te])
            if r is not None:
                vals.append(r["apgr"])
        cv[C] = float(np.mean(vals)) if vals else 0.5
    best = max(C_GRID, key=lambda c: (round(cv[c], 4), -c))
    return best, cv


def train_checkpoint(
    rows: list[dict],
    strong: str | list[str],
    weak: str | list[str],
    output_dir: str,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Train a learned-router head for one strong/weak pair and write a checkpoint folder.

    ``rows``: the routing-corpus format, each with ``prompt`` and ``outcomes`` ``{model: 0..1}``;
    ``strong`` / ``weak``: a model name or a list of aliases (the first one present in a row counts);
    rows without outcomes for both are skipped. A seeded 20% of the usable rows is held out to report
    ``apgr``, ``cpt50``, ``cpt80`` (and ``default_apgr``, the shipped router on the same rows); the
    written head is then refitted on all rows and calibrated on them (threshold 0.5 sends about half
    of these prompts to the strong model). ``progress(done, total)`` is called as work proceeds.
    Raises ``ValueError`` for unusable input. Returns the report (also stored in the manifest).
    """
    t0 = time.time()
    if not isinstance(rows, list):
        rows = list(rows)
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or not isinstance(r.get("prompt"), str) or not isinstance(r.get("outcomes"), dict):
            raise ValueError(f"row {i + 1}: expected an object with a string 'prompt' and an 'outcomes' object")
    strong_names = [strong] if isinstance(strong, str) else list(strong)
    weak_names = [weak] if isinstance(weak, str) else list(weak)
    if not strong_names or not weak_names:
        raise ValueError("strong and weak model names must not be empty")
    try:
        prompts, q_s, q_w = pair_rows(rows, strong_names, weak_names)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"outcomes must be numbers in [0, 1] ({exc})") from None
    n = len(prompts)
    if n < MIN_ROWS:
        raise ValueError(f"only {n} rows have outcomes for both {strong_names} and {weak_names}; need at least {MIN_ROWS}")
    qs, qw = np.asarray(q_s, dtype=np.float64), np.asarray(q_w, dtype=np.float64)
    if np.any(~np.isfinite(qs)) or np.any(~np.isfinite(qw)) or qs.min() < 0 or qw.min() < 0 or qs.max() > 1 or qw.max() > 1:
        raise ValueError("outcomes must be numbers in [0, 1]")
    if np.all(qs == qw):
        raise ValueError("the strong and weak model have identical outcomes on every row: nothing to learn")

    fit_steps = 5 * len(C_GRID) + 2
    total = n + fit_steps
    emb, dense, lexical = featurize(prompts, progress, 0, total)
    default = L.LearnedRouter()
    prior = default._logits(emb, dense, lexical)
    y = np.clip((qs - qw + 1.0) / 2.0, 0.0, 1.0)

    order = np.random.RandomState(0).permutation(n)
    n_test = max(1, int(round(0.2 * n)))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    done = n

    model = _PairModel(emb, dense, prior)
    C, cv = _choose_C(model, train, y, qs, qw, seed=1)
    done += 5 * len(C_GRID)
    if progress:
        progress(done, total)
    beta, b = model.fit(train, y, C)
    held = _apgr(model.logits(test, beta, b), qs[test], qw[test])
    base = _apgr(prior[test], qs[test], qw[test])
    done += 1
    if progress:
        progress(done, total)

    # final head on all rows
    everything = np.arange(n)
    final = _PairModel(emb, dense, prior)
    beta, b = final.fit(everything, y, C)
    d_emb, d_dense = emb.shape[1], dense.shape[1]
    logits = final.logits(everything, beta, b)
    arrays = {
        "w": beta[: d_emb + d_dense],
        "b": np.array(b),
        "prior": np.array(beta[-1]),
        "mu": final.mu,
        "sd": final.sd,
        **calibration(logits),
    }
    report = {
        "n": n,
        "n_train": len(train),
        "n_test": len(test),
        "apgr": held["apgr"] if held else None,
        "cpt50": held["cpt50"] if held else None,
        "cpt80": held["cpt80"] if held else None,
        "default_apgr": base["apgr"] if base else None,
        "q_strong": float(qs.mean()),
        "q_weak": float(qw.mean()),
        "C": C,
        "cv_apgr": {str(k): round(v, 4) for k, v in cv.items()},
        "prior_coef": float(beta[-1]),
        "share_strong_at_0.5": float(np.mean(L.Head(arrays, "linear").calibrate(logits) >= 0.5)),
        "seconds": round(time.time() - t0, 2),
    }
    manifest = {
        "format": L.FORMAT,
        "created_by": "switchyard train (dynamo.nemo_switchyard.training.train_checkpoint)",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "strong": strong_names,
        "weak": weak_names,
        "target": "P(strong answer better than weak) = (q_strong - q_weak + 1) / 2, logistic on soft labels; "
        "the default head's logit is an unpenalised feature",
        "head": {"kind": "linear", "features": ["minilm-static embedding", *FEATURE_NAMES, "default head logit"], "C": C},
        "encoder": {"id": default.encoder.encoder_id},
        "calibration": {"mix": "this checkpoint's training prompts (all rows)", "note": "0.5 = median score"},
        "metrics": {"held_out_20pct": report},
    }
    write_checkpoint(output_dir, arrays, manifest)
    if progress:
        progress(total, total)
    return report

