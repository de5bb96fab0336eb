#!/usr/bin/env python
"""Train (and evaluate) the lexical router's weights.

Needs numpy, scipy and scikit-learn, which the runtime router does not; use a
throwaway environment, e.g.::

    python -m venv /tmp/trainenv && /tmp/trainenv/bin/pip install numpy scikit-learn
    PYTHONPATH=src /tmp/trainenv/bin/python scripts/train_lexical.py            # LOSO eval + write weights
    PYTHONPATH=src /tmp/trainenv/bin/python scripts/train_lexical.py --no-eval  # only write weights

Data: the routing corpus (``--data``, default /work/shared/data/routing). The
shipped weights are trained on mmlu_pro, math_l5, crux and arena_hard_v1 only;
routerbench_subset is evaluation-only (unclear licence) and is never trained on.

Target ("strong model needed"), per prompt of a set, using all models of that set
(``scripts/targets.py``): rank the set's models by mean outcome; strong = best quarter,
weak = weaker half; target = mean(strong outcomes) * (1 - mean(weak outcomes)), i.e. the
chance that a random strong model answers well while a random weak model does not. It
needs no model-name matching across sets and transfers across pairs. ``--target
difficulty`` uses 1 - mean(weak outcomes) instead; ``--weak-reference NAME`` one named
weak model's outcome where a set has it (measured, not adopted: see scripts/targets.py).

Anchors (``scripts/anchors.py``): 161 synthetic chit-chat / one-line-trivia prompts
with target 0, plus a kinds-of-task prior (``scripts/anchors.py``: writing, role play,
summarising, everyday explanations low; mathematics, coding, multi-step reasoning high),
with a small weight (``--anchor-weight``), because the benchmarks have no such prompts
and short benchmark prompts are hard; they are left out of the calibration and of every
evaluation. The 96 word problems of ``scripts/word_problems.jsonl`` (target rising with their
steps) set only the weight of the ``wp_quantities`` feature, fitted after the rest with the
rest held fixed (``scripts/word_slope.py``).

Model: logistic regression on soft labels (each prompt appears as a positive with
weight t and a negative with weight 1 - t); sets are re-weighted by
``(n_set)^-alpha`` so the big mmlu_pro set does not swamp the rest.

Calibration: quantiles of the training logits with every set weighted equally;
the router maps a logit through that CDF (see routers/lexical.py), so threshold
0.5 sends about half of a mixed prompt set to the strong model.

Evaluation: leave-one-set-out (train on the other training sets, score the held-out
set) for each training set, plus the final model on routerbench_subset; APGR per
(strong, weak) pair, random router = 0.5.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from dynamo.nemo_switchyard.evaluation import evaluate, load_labeled, pair_rows
from dynamo.nemo_switchyard.routers import lexical as lx

TRAIN_SETS = ("mmlu_pro", "math_l5", "crux", "arena_hard_v1")
EVAL_ONLY = ("routerbench_subset",)
WORD_PROBLEMS = "word_problems"  # the pseudo-set of word-problem anchors (scripts/word_slope.py)

import word_slope  # noqa: E402 (scripts/ is on sys.path when run as a script)
from anchors import anchor_rows, word_problems  # noqa: E402
from routing_pairs import PAIRS  # noqa: E402
from targets import MIXTRAL, gain_targets  # noqa: E402

# ------------------------------------------------------------------------------------ data


def load_set(data_dir: str, name: str) -> list[dict]:
    return load_labeled(os.path.join(data_dir, f"{name}.jsonl.gz"))


# ------------------------------------------------------------------------------------ features


class Featurized:
    """Dense features and tokens of a list of prompts (same code path as the router)."""

    def __init__(self, prompts: list[str]):
        dense, self.toks = [], []
        for p in prompts:
            d, t = lx.analyze(p)
            dense.append(d)
            self.toks.append(t)
        self.dense = np.array(dense, dtype=float)

    def subset(self, idx):
        f = Featurized.__new__(Featurized)
        f.dense = self.dense[idx]
        f.toks = [self.toks[i] for i in idx]
        return f


def _decodable(t: bytes) -> bool:
    try:
        t.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def build_vocab(feats: Featurized, min_df: int) -> list[bytes]:
    df: Counter = Counter()
    for toks in feats.toks:
        df.update(set(toks))
    return sorted(t for t, c in df.items() if c >= min_df and _decodable(t))


def design(feats: Featurized, vocab_index: dict[bytes, int], mu: np.ndarray, sd: np.ndarray) -> sparse.csr_matrix:
    """Standardized dense features + term-frequency bag of words / sqrt(n_tokens + 1), like the router."""
    n = len(feats.toks)
    rows, cols, vals = [], [], []
    for i, toks in enumerate(feats.toks):
        norm = 1.0 / math.sqrt(len(toks) + 1)
        for t, c in Counter(toks).items():
            j = vocab_index.get(t)
            if j is not None:
                rows.append(i), cols.append(j), vals.append(c * norm)
    text = sparse.csr_matrix((vals, (rows, cols)), shape=(n, len(vocab_index)))
    dense = sparse.csr_matrix((feats.dense - mu) / sd)
    return sparse.hstack([dense, text], format="csr")


# ------------------------------------------------------------------------------------ training


def fit(feats: Featurized, y: np.ndarray, set_ids: np.ndarray, args) -> dict:
    """Fit the model; return the weights dict in the router's format.

    Rows of the pseudo-set ``word_problems`` only set the ``wp_quantities`` weight (``scripts/word_slope.py``):
    the model is fitted on the other rows with that feature held at zero."""
    problems = set_ids == WORD_PROBLEMS
    wp_feats, wp_y = feats.subset(np.where(problems)[0]), y[problems]
    keep = np.where(~problems)[0]
    feats, y, set_ids = feats.subset(keep), y[keep], set_ids[keep]
    col = lx.FEATURE_NAMES.index(word_slope.FEATURE)
    dense_full = feats.dense
    feats.dense = dense_full.copy()
    feats.dense[:, col] = 0.0
    vocab = build_vocab(feats, args.min_df)
    vocab_index = {t: j for j, t in enumerate(vocab)}
    mu = feats.dense.mean(axis=0)
    sd = feats.dense.std(axis=0)
    sd[sd < 1e-9] = 1.0
    X = design(feats, vocab_index, mu, sd)

    set_sizes = Counter(set_ids.tolist())
    w_set = np.array([set_sizes[s] ** -args.alpha * (args.anchor_weight if s == "trivial" else 1.0) for s in set_ids])
    w_set *= len(y) / w_set.sum()
    X2 = sparse.vstack([X, X], format="csr")
    y2 = np.r_[np.ones(len(y)), np.zeros(len(y))]
    sw = np.r_[w_set * y, w_set * (1.0 - y)]
    clf = LogisticRegression(C=args.C, max_iter=3000, solver="lbfgs")
    clf.fit(X2, y2, sample_weight=sw)

    coef = clf.coef_[0]
    nd = len(lx.FEATURE_NAMES)
    dense_w = coef[:nd] / sd
    bias = float(clf.intercept_[0] - np.sum(coef[:nd] * mu / sd))
    text_w = coef[nd:]
    keep = np.argsort(-np.abs(text_w))[: args.max_terms]
    keep = [j for j in keep if abs(text_w[j]) >= args.min_weight]
    unigrams = {vocab[j].decode("utf-8"): float(f"{text_w[j]:.4g}") for j in sorted(keep, key=lambda j: vocab[j])}

    weights = {
        "format": lx.FORMAT,
        "feature_names": list(lx.FEATURE_NAMES),
        "bias": round(bias, 6),
        "dense": [float(f"{x:.6g}") for x in dense_w],
        "unigrams": unigrams,
        # placeholder calibration; replaced below once logits are known
        "calibration": {"logit_quantiles": [-1.0, 1.0], "probs": [0.0, 1.0], "tail_scale": 1.0},
    }
    if len(wp_y):
        router = lx.LexicalRouter(weights=weights)
        offset = np.array([_logit(router, wp_feats.dense[i], wp_feats.toks[i]) for i in range(len(wp_y))])
        weights["dense"][col] = float(f"{word_slope.fit_slope(offset, wp_feats.dense[:, col], wp_y):.6g}")
    feats.dense = dense_full
    router = lx.LexicalRouter(weights=weights)
    logits = np.array([_logit(router, feats.dense[i], feats.toks[i]) for i in range(len(y))])
    real = set_ids != "trivial"
    weights["calibration"] = calibration(logits[real], set_ids[real])
    return weights


def _logit(router: lx.LexicalRouter, dense: np.ndarray, toks: list[bytes]) -> float:
    text = sum(router._uni.get(t, 0.0) for t in toks)
    return router._bias + float(np.dot(router._dense, dense)) + text / math.sqrt(len(toks) + 1)


def calibration(logits: np.ndarray, set_ids: np.ndarray, n_points: int = 201) -> dict:
    """Set-balanced quantiles of the logits: probs 0.005 .. 0.995."""
    sizes = Counter(set_ids.tolist())
    w = np.array([1.0 / sizes[s] for s in set_ids])
    order = np.argsort(logits)
    z = logits[order]
    cw = np.cumsum(w[order])
    cw = (cw - 0.5 * w[order]) / cw[-1]
    probs = np.linspace(0.005, 0.995, n_points)
    q = np.interp(probs, cw, z)
    # strictly increasing (ties in the data would give flat steps)
    for i in range(1, len(q)):
        if q[i] <= q[i - 1]:
            q[i] = q[i - 1] + 1e-6
    return {
        "logit_quantiles": [round(float(x), 6) for x in q],
        "probs": [round(float(p), 6) for p in probs],
        "tail_scale": round(float(np.std(logits)) / 4 or 1.0, 6),
        "note": "score = set-balanced empirical CDF of the logit on the training sets (0.5 = median)",
    }


# ------------------------------------------------------------------------------------ evaluation


def eval_set(router: lx.LexicalRouter, name: str, rows: list[dict]) -> list[dict]:
    out = []
    for strong, weak in PAIRS.get(name, []):
        prompts, qs, qw = pair_rows(rows, strong, weak)
        if not prompts or abs(sum(qs) - sum(qw)) < 1e-9:
            continue
        scores = router.score_batch(prompts)
        res = evaluate(scores, qs, qw)
        res.update(set=name, strong=strong, weak=weak, share_over_05=sum(s >= 0.5 for s in scores) / len(scores))
        out.append(res)
    return out


class _Fixed:
    """Scores looked up by prompt (cross-validated predictions; prompts are unique within a set)."""

    def __init__(self, scores: dict):
        self.scores = scores

    def score_batch(self, prompts):
        return [self.scores[p] for p in prompts]


def parser() -> argparse.ArgumentParser:
    """The command line; ``parser().parse_args([])`` gives the defaults (train_learned.py's lexical column)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/work/shared/data/routing")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(lx.__file__), "lexical_weights.json"))
    ap.add_argument("--target", choices=("gain", "difficulty"), default="gain")
    ap.add_argument("--weak-reference", default="", metavar="NAME",
                    help=f"the target's weak model where a set has its outcome, else the weaker half (scripts/targets.py; "
                    f"measured with {MIXTRAL!r}, not adopted)")
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--alpha", type=float, default=0.5, help="set re-weighting exponent (0 = none, 1 = equal sets)")
    ap.add_argument("--min-df", type=int, default=5)
    ap.add_argument("--max-terms", type=int, default=12000)
    ap.add_argument("--min-weight", type=float, default=0.01)
    ap.add_argument("--cv", type=int, default=0,
                    help="also run K-fold in-domain CV per training set (train on the other sets + other folds)")
    ap.add_argument("--no-anchors", dest="anchors", action="store_false", help="leave out all synthetic anchor prompts")
    ap.add_argument("--no-task-anchors", dest="task_anchors", action="store_false",
                    help="keep only the trivial anchors, not the kinds-of-task prior (scripts/anchors.py)")
    ap.add_argument("--anchor-weight", type=float, default=1.0, help="extra weight factor of the anchors (as one set)")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--report", help="write the evaluation results as JSON here")
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    t0 = time.time()
    data = {s: load_set(args.data, s) for s in TRAIN_SETS}
    rows = [r for s in TRAIN_SETS for r in data[s]]
    y = np.concatenate([gain_targets(data[s], reference=args.weak_reference or None, kind=args.target) for s in TRAIN_SETS])
    if args.anchors:
        prompts, y_anchors = anchor_rows(args.task_anchors)
        rows += [{"id": f"anchor-{i}", "set": "trivial", "prompt": p, "outcomes": {}} for i, p in enumerate(prompts)]
        y = np.r_[y, y_anchors]
        if args.task_anchors:
            problems = word_problems()
            rows += [{"id": f"word-problem-{i}", "set": WORD_PROBLEMS, "prompt": p, "outcomes": {}} for i, (p, _) in enumerate(problems)]
            y = np.r_[y, [t for _, t in problems]]
    set_ids = np.array([r["set"] for r in rows])
    feats = Featurized([r["prompt"] for r in rows])
    print(f"featurized {len(rows)} prompts in {time.time() - t0:.1f}s; target mean per set: "
          + ", ".join(f"{s}={y[set_ids == s].mean():.3f}" for s in TRAIN_SETS)
          + f"; {int((set_ids == 'trivial').sum())} anchors", file=sys.stderr)

    results = []
    if not args.no_eval:
        for held in TRAIN_SETS:
            idx = np.where(set_ids != held)[0]
            w = fit(feats.subset(idx), y[idx], set_ids[idx], args)
            results += [dict(r, protocol="leave-one-set-out") for r in eval_set(lx.LexicalRouter(weights=w), held, data[held])]
        for held in TRAIN_SETS if args.cv > 1 else ():
            in_set = np.where(set_ids == held)[0]
            fold = np.random.RandomState(0).permutation(len(in_set)) % args.cv
            scores = {}
            for k in range(args.cv):
                test_idx = in_set[fold == k]
                idx = np.setdiff1d(np.arange(len(rows)), test_idx)
                r = lx.LexicalRouter(weights=fit(feats.subset(idx), y[idx], set_ids[idx], args))
                for i in test_idx:
                    scores[rows[i]["prompt"]] = r.score(rows[i]["prompt"])
            results += [dict(r, protocol=f"in-domain {args.cv}-fold CV") for r in eval_set(_Fixed(scores), held, data[held])]

    final = fit(feats, y, set_ids, args)
    final["meta"] = {
        "trained_on": list(TRAIN_SETS) + (["synthetic trivial anchors (target 0)"] if args.anchors else [])
        + (["synthetic kinds-of-task anchors (scripts/anchors.py)",
            f"{int((set_ids == WORD_PROBLEMS).sum())} word problems, for the wp_quantities weight only (scripts/word_slope.py)"]
           if args.anchors and args.task_anchors else []),
        "n_prompts": len(rows),
        "target": args.target,
        "hyper": {k: getattr(args, k) for k in ("C", "alpha", "anchor_weight", "min_df", "max_terms", "min_weight")},
        "window": {"max_chars": lx.MAX_CHARS, "head": lx.HEAD_CHARS, "tail": lx.TAIL_CHARS},
    }
    router = lx.LexicalRouter(weights=final)
    if not args.no_eval:
        for s in EVAL_ONLY:
            rows_s = load_set(args.data, s)
            results += [dict(r, protocol="final model (eval-only set)") for r in eval_set(router, s, rows_s)]
        print(f"{'protocol':26s} {'held-out set':20s} {'strong':28s} {'weak':38s} {'n':>5s} {'APGR':>6s} {'rand':>5s} "
              f"{'CPT50':>6s} {'CPT80':>6s} {'>=0.5':>6s}")
        for r in results:
            print(f"{r['protocol']:26s} {r['set']:20s} {r['strong'][:28]:28s} {r['weak'][:38]:38s} {r['n']:5d} "
                  f"{r['apgr']:6.3f} {0.5:5.2f} {r['cpt50']:6.3f} {r['cpt80']:6.3f} {r['share_over_05']:6.2f}")
        loso = [r["apgr"] for r in results if r["protocol"] == "leave-one-set-out"]
        print(f"mean LOSO APGR over {len(loso)} (set, pair) rows: {np.mean(loso):.3f}")
        if args.report:
            with open(args.report, "w") as f:
                json.dump(results, f, indent=1)

    if not args.no_write:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(final, f, separators=(",", ":"), sort_keys=False)
        print(f"wrote {args.out} ({os.path.getsize(args.out) / 1024:.0f} KiB, "
              f"{len(final['unigrams'])} unigrams)", file=sys.stderr)
    print(f"done in {time.time() - t0:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
