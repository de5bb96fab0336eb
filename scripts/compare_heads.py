"""Compare heads for the learned router on the same features and protocol: which one transfers.

The issue leaves the head open (logistic, kNN, a small MLP, ...) "by measurement"; this is that
measurement. Every head reads the same inputs as the shipped one, [distilled embedding, standardised
lexical features], is trained on the same targets and set weights (``scripts/train_learned.py``), and
is scored alone and blended half and half with the lexical router's logit, as the shipped head is:

* ``logistic``: ``training.fit_logistic`` on soft labels (the shipped head);
* ``knn``: the set-weighted mean target of the k nearest training prompts (cosine on the embedding
  concatenated with the standardised features), k = 50;
* ``mlp``: scikit-learn's ``MLPRegressor`` (one hidden layer of 64 ReLUs, L2 ``alpha`` 1e-3, early
  stopping on a tenth of the data) fitted to the logit of the target.

Protocols: leave-one-set-out over the four training sets, each held-out set scored with a table distilled
without its prompts (as ``train_learned.py`` does), and RouterBench (evaluation only) scored by heads
trained on all four. Needs the training environment of ``train_learned.py`` plus scikit-learn::

    PYTHONPATH=src:scripts /tmp/trainenv/bin/python scripts/compare_heads.py [--report rows.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from dynamo.nemo_switchyard import training

import train_learned as tl

K = 50


def standardise_on(z_train: np.ndarray, balance: np.ndarray, *zs: np.ndarray) -> list[np.ndarray]:
    mean, sd = tl._weighted_stats(z_train, balance)
    return [(z - mean) / sd for z in zs]


def heads(c: tl.Corpus, train: list[str], test: str, lex: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Logits of ``test`` from each head trained on ``train`` (+ anchors), alone and blended with ``lex``."""
    from sklearn.neural_network import MLPRegressor

    tr = [*train, "trivial"]
    mu, sd = training.standardizer(np.vstack([c.dense[s] for s in train]))
    X, Xt = tl.design(c, tr, mu, sd), tl.design(c, [test], mu, sd)
    y = np.concatenate([c.y[s] for s in tr])
    w = tl.set_weights(c, tr)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # head -> (logits on the training sets, on test)

    beta, b = training.fit_logistic(X, y, w, C=tl.C)
    out["logistic"] = (X @ beta + b, Xt @ beta + b)

    def unit(a: np.ndarray) -> np.ndarray:
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)

    U, Ut = unit(X), unit(Xt)

    def knn(Q: np.ndarray, exclude_self: bool) -> np.ndarray:
        z = np.empty(len(Q))
        for i in range(0, len(Q), 512):
            sim = Q[i:i + 512] @ U.T
            if exclude_self:
                sim[np.arange(len(sim)), np.arange(i, i + len(sim))] = -np.inf
            idx = np.argpartition(-sim, K, axis=1)[:, :K]
            ww = w[idx]
            p = np.clip((ww * y[idx]).sum(1) / ww.sum(1), 1e-4, 1 - 1e-4)
            z[i:i + 512] = np.log(p / (1 - p))
        return z

    out["knn"] = (knn(U, True), knn(Ut, False))

    t = np.clip(y, 0.02, 0.98)
    mlp = MLPRegressor(hidden_layer_sizes=(64,), alpha=1e-3, early_stopping=True, random_state=0, max_iter=300)
    mlp.fit(X, np.log(t / (1 - t)), sample_weight=w)
    out["mlp"] = (mlp.predict(X), mlp.predict(Xt))

    n_train = sum(len(c.y[s]) for s in train)  # the anchors come last in X: leave them out of the scales
    balance = np.concatenate([np.full(len(c.y[s]), 1.0 / len(c.y[s])) for s in train])
    z_lex_train = np.concatenate([lex[s] for s in train])
    (lex_test,) = standardise_on(z_lex_train, balance, lex[test])
    result = {}
    for name, (z_train, z_test) in out.items():
        (zt,) = standardise_on(z_train[:n_train], balance, z_test)
        result[name] = zt
        result[name + "+lexical"] = tl.BLEND * zt + (1 - tl.BLEND) * lex_test
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(tl.HERE, "..", "..", "shared", "data", "routing"))
    ap.add_argument("--raw-cache", default="/tmp/switchyard_minilm_static_raw.npy")
    ap.add_argument("--context-cache", default="/tmp/switchyard_minilm_context.npz")
    ap.add_argument("--report", help="write the evaluation rows as JSON here")
    args = ap.parse_args(argv)
    t0 = time.time()
    c = tl.Corpus(args.data)
    distiller = tl.Distiller(c, 128, args.raw_cache, args.context_cache)
    rows = []
    for held in tl.TRAIN_SETS:
        others = [s for s in tl.TRAIN_SETS if s != held]
        c.embed(distiller.encoder(others))
        lexical = tl.lexical_router(c, others)
        lex = tl.lexical_logits(c, lexical, [*others, held])
        for name, z in heads(c, others, held, lex).items():
            rows += tl.eval_scores(c, held, z, name, "loso")
        print(f"evaluated {held} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    c.embed(distiller.encoder(list(tl.TRAIN_SETS)))
    lexical = tl.lexical_router(c, list(tl.TRAIN_SETS))
    lex = tl.lexical_logits(c, lexical, [*tl.TRAIN_SETS, tl.EVAL_ONLY])
    for name, z in heads(c, list(tl.TRAIN_SETS), tl.EVAL_ONLY, lex).items():
        rows += [r for r in tl.eval_scores(c, tl.EVAL_ONLY, z, name, "final") if r["group"] == "all"]

    names = sorted({r["router"] for r in rows}, key=lambda n: (n.split("+")[0] != "logistic", n))
    sets = [*tl.TRAIN_SETS, tl.EVAL_ONLY]
    print(f"\nmean APGR over each set's pairs (unseen: leave-one-set-out; {tl.EVAL_ONLY}: evaluation only)")
    print(f"{'head':20s}" + "".join(f"{s[:14]:>15s}" for s in sets) + f"{'mean of 4':>11s}")
    for n in names:
        m = [float(np.mean([r["apgr"] for r in rows if r["router"] == n and r["set"] == s and r["group"] == "all"])) for s in sets]
        print(f"{n:20s}" + "".join(f"{v:15.3f}" for v in m) + f"{np.mean(m[:4]):11.3f}")
    if args.report:
        with open(args.report, "w") as f:
            json.dump(rows, f, indent=1)
    print(f"done in {time.time() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
