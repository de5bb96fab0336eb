"""The training target of the shipped routers: how much a prompt of a training set needs the strong model.

    target = P(a strong model answers it right) * P(a weak model answers it wrong)

from the set's recorded outcomes: strong = the best quarter of the set's models by mean outcome,
weak = the weaker half (the mean of their outcomes). It needs no model names, so it is defined on
every set, and it transfers across pairs.

``reference`` (``--weak-reference`` of both training scripts) takes one named weak model's outcome
instead, where a set has it: measured with Mixtral-8x7B-Instruct (the weak model of the pair the
routers are judged on) and not adopted. Trained so (2026-11-28; leave-one-set-out, so a held-out
set's own Mixtral outcomes are never seen), ``lexical`` routed RouterBench better (GPT-4 vs Mixtral
0.544 -> 0.562, vs Llama-2-70B 0.555 -> 0.577) and the GPT-4o vs Mixtral pairs of MMLU-Pro (0.555
-> 0.569) and CRUXEval (0.503 -> 0.529), but MATH level 5 (no Mixtral outcomes; its pairs have other
weak models) fell by 0.02-0.03 unseen and in-domain; ``learned``: unseen mean 0.513 -> 0.514,
in-domain 0.545 -> 0.539 (MATH 0.543 -> 0.512), RouterBench 0.571 -> 0.576 (Mixtral 0.572 -> 0.574).
Rescaling each set's targets to the old mean did not bring MATH back. The router would learn
one model's failures at the cost of the others'; ``switchyard train`` fits a user's own pair.
"""

from __future__ import annotations

import numpy as np

MIXTRAL = "mixtral-8x7b-instruct"  # for --weak-reference (found case-insensitively in a model name)


def reference_model(models: list[str], reference: str | None) -> str | None:
    """The set's model whose name contains ``reference`` (the first, by name), if any."""
    if not reference:
        return None
    found = sorted(m for m in models if reference.lower() in m.lower())
    return found[0] if found else None


def gain_targets(rows: list[dict], exclude: tuple[str, ...] = (), reference: str | None = None,
                 kind: str = "gain") -> np.ndarray:
    """Per-prompt target in [0, 1] (see the module docstring). ``exclude``: models left out (an
    evaluated pair); ``kind="difficulty"``: P(a weak model is wrong) alone."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for r in rows:
        for m, v in r["outcomes"].items():
            if m in exclude:
                continue
            sums[m] = sums.get(m, 0.0) + v
            counts[m] = counts.get(m, 0) + 1
    models = sorted(sums, key=lambda m: -sums[m] / counts[m])
    n = len(models)
    strong, weak = set(models[: max(1, n // 4)]), set(models[n - n // 2 :])
    ref = reference_model(models, reference)
    out = []
    for r in rows:
        o = r["outcomes"]
        s = [v for m, v in o.items() if m in strong]
        w = [v for m, v in o.items() if m in weak]
        p_strong = float(np.mean(s)) if s else 0.5
        p_weak = float(o[ref]) if ref is not None and ref in o else float(np.mean(w)) if w else 0.5
        out.append(p_strong * (1.0 - p_weak) if kind == "gain" else 1.0 - p_weak)
    return np.clip(np.array(out), 0.0, 1.0)
