"""Tests for the learned router (dynamo.nemo_switchyard.routers.learned). No timing asserts."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from dynamo.nemo_switchyard.evaluation import apgr, load_labeled, pair_rows
from dynamo.nemo_switchyard.routers import learned as L
from dynamo.nemo_switchyard.routers.base import Router, RouterError
from dynamo.nemo_switchyard.routers.learned import LearnedRouter

from shared_data import DATA, needs_data

HARD = [
    "Let $f(x) = \\frac{x^3 - 3x + 1}{x^2 + 1}$. Find all real $x$ such that $f(f(x)) = x$, and prove that "
    "the sum of the squares of the solutions is an integer. Express your answer as $\\sqrt{a} + b$.",
    "You are given a Python function and an assertion containing an input to the function. Complete the assertion "
    "with a literal containing the output when executing the provided code on the given input.\n\n[PYTHON]\n"
    "def f(nums, k):\n    out = []\n    for i, n in enumerate(nums):\n        if i % k == 0:\n"
    "            out.append(n * i)\n    return sorted(out, reverse=True)\nassert f([3, 1, 4, 1, 5, 9, 2, 6], 3) == ??\n"
    "[/PYTHON]",
    "Implement a lock-free concurrent hash map in C++ with open addressing, supporting insert, erase and resize "
    "without blocking readers. Explain the memory ordering of every atomic operation you use.",
]
EASY = ["hi", "What is the capital of France?", "Tell me a joke.", "thanks", "How are you today?"]
ODD = ["", " ", "\n\n", "日本語のテキストです。", "emoji 🙂 " * 50, "\ud800 lone surrogate", "x" * 200_000,
       "A. a\nB. b\nC. c\n" * 500, "$" * 5000, "1234567890" * 300, "\x00\x01 control", "[CLS] [SEP] [PAD] [UNK]"]


@pytest.fixture(scope="module")
def router() -> LearnedRouter:
    return LearnedRouter()


def test_shipped_files_and_sizes():
    for name in ("tokenizer.json", "encoder.npz", "head.npz", "manifest.json", "LICENSE", "NOTICE"):
        assert os.path.isfile(os.path.join(L.PACKAGE_DIR, name)), name
    assert os.path.getsize(os.path.join(L.PACKAGE_DIR, "head.npz")) < 2 * 2**20
    manifest = json.loads(Path(L.PACKAGE_DIR, "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == L.FORMAT
    assert not any("routerbench" in s for s in manifest["trained_on"])


def test_router_interface(router):
    assert isinstance(router, Router)
    assert LearnedRouter.name == "learned"
    assert LearnedRouter.inline is False
    assert LearnedRouter.concurrency == 1
    assert router.score_batch([]) == []


def test_scores_in_unit_interval_and_odd_prompts(router):
    scores = router.score_batch(HARD + EASY + ODD)
    assert len(scores) == len(HARD + EASY + ODD)
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)


def test_deterministic_and_batch_equals_singles(router):
    prompts = HARD + EASY + ODD
    batch = router.score_batch(prompts)
    assert router.score_batch(prompts) == batch
    assert [router.score_batch([p])[0] for p in prompts] == batch
    assert LearnedRouter().score_batch(prompts) == batch  # a second instance agrees
    shuffled = list(range(len(prompts)))
    random.Random(0).shuffle(shuffled)
    assert router.score_batch([prompts[i] for i in shuffled]) == [batch[i] for i in shuffled]


def test_hard_prompts_outscore_easy_ones(router):
    hard, easy = router.score_batch(HARD), router.score_batch(EASY)
    assert min(hard) > max(easy)
    assert router.score_batch(["hi"])[0] < 0.5 < router.score_batch([HARD[0]])[0]


def test_long_prompts_are_truncated_head_and_tail(router):
    enc = router.encoder
    long = "alpha " * 5000 + "omega"
    ids = enc.token_ids([long])[0]
    assert len(ids) == L.MAX_TOKENS
    assert ids[-1] == enc.tokenizer.token_to_id("omega")  # the tail is kept
    assert ids[0] == enc.tokenizer.token_to_id("alpha")
    # the embedding sees only the head-and-tail window (the lexical length features still see the full length)
    head, tail = "why " * 3000, " prove it" * 3000
    a, b = enc.embed([head + "middle " * 100_000 + tail, head + "middle " * 200_000 + tail])
    assert np.array_equal(a, b)
    assert 0.0 <= router.score_batch([head + "middle " * 200_000 + tail])[0] <= 1.0


def test_non_string_prompts_do_not_crash(router):
    assert all(0.0 <= s <= 1.0 for s in router.score_batch([None, 42, "ok"]))  # type: ignore[list-item]


def test_from_config_default_and_unknown_option():
    r = LearnedRouter.from_config(checkpoint_path=None, options={})
    assert r.manifest["format"] == L.FORMAT
    with pytest.raises(RouterError, match="unknown options"):
        LearnedRouter.from_config(options={"bogus": 1})


def test_registry_class_path_builds_it():
    from dynamo.nemo_switchyard.routers import registry

    r = registry.build("dynamo.nemo_switchyard.routers.learned:LearnedRouter")
    assert isinstance(r, LearnedRouter)


def _copy_default(tmp_path) -> str:
    d = tmp_path / "ckpt"
    d.mkdir()
    for name in (L.HEAD_FILE, L.MANIFEST_FILE):
        (d / name).write_bytes(Path(L.DEFAULT_CHECKPOINT, name).read_bytes())
    return str(d)


def test_checkpoint_folder_copy_loads_same_scores(tmp_path, router):
    r = LearnedRouter.from_config(checkpoint_path=_copy_default(tmp_path))
    assert r.score_batch(HARD + EASY) == router.score_batch(HARD + EASY)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing_dir", "does not exist"),
        ("file_not_dir", "is not a folder"),
        ("no_manifest", "has no manifest.json"),
        ("bad_json", "cannot read"),
        ("wrong_format", "format"),
        ("no_head", "has no head.npz"),
        ("garbage_head", "cannot read"),
        ("bad_kind", "unknown head kind"),
        ("bad_shape", "malformed"),
        ("bad_calibration", "strictly increasing"),
        ("wrong_encoder", "trained for encoder"),
        ("wrong_lexical", "blends lexical weights"),
        ("fewer_features", "trained on 29 prompt features"),
    ],
)
def test_bad_checkpoints_raise_router_error(tmp_path, damage, message):
    d = _copy_default(tmp_path)
    man = os.path.join(d, L.MANIFEST_FILE)
    head = os.path.join(d, L.HEAD_FILE)
    manifest = json.loads(Path(man).read_text())
    with np.load(head) as z:
        arrays = dict(z)
    if damage == "missing_dir":
        d = str(tmp_path / "nope")
    elif damage == "file_not_dir":
        d = head
    elif damage == "no_manifest":
        os.remove(man)
    elif damage == "bad_json":
        Path(man).write_text("{not json")
    elif damage == "wrong_format":
        Path(man).write_text(json.dumps({**manifest, "format": "something-else"}))
    elif damage == "no_head":
        os.remove(head)
    elif damage == "garbage_head":
        Path(head).write_bytes(b"not an npz")
    elif damage == "bad_kind":
        Path(man).write_text(json.dumps({**manifest, "head": {"kind": "forest"}}))
    elif damage == "bad_shape":
        np.savez(head, **{**arrays, "w": arrays["w"][:10]})
    elif damage == "bad_calibration":
        np.savez(head, **{**arrays, "cal_z": arrays["cal_z"][::-1]})
    elif damage == "wrong_encoder":
        Path(man).write_text(json.dumps({**manifest, "encoder": {"id": "some-other-encoder"}}))
    elif damage == "fewer_features":  # a head trained before the prompt features grew from 29
        d_emb = arrays["w"].shape[0] - arrays["mu"].shape[0]
        np.savez(head, **{**arrays, "mu": arrays["mu"][:29], "sd": arrays["sd"][:29], "w": arrays["w"][: d_emb + 29]})
    elif damage == "wrong_lexical":
        Path(man).write_text(json.dumps({**manifest, "lexical": {"weights_id": "lexical-retrained"}}))
    with pytest.raises(RouterError, match=message):
        LearnedRouter.from_config(checkpoint_path=d)


def _tokenizer_ids(encoder, prompts):
    """What the Rust tokenizer alone gives (the reference for the ASCII fast path), with the same truncation."""
    out = []
    for e in encoder.tokenizer.encode_batch([L._clean(p) for p in prompts], add_special_tokens=False):
        ids = e.ids
        out.append(ids if len(ids) <= L.MAX_TOKENS else ids[: L.HEAD_TOKENS] + ids[L.HEAD_TOKENS - L.MAX_TOKENS :])
    return out


def test_ascii_fast_path_gives_the_tokenizers_word_pieces(router):
    tricky = [
        "", " ", "\n\t\r", "Hello, World!", "don't stop-believing (2x) #1 @home $5.00 100% a_b {x} [y] <z> ~`|\\^",
        "a\x0bb c\x0cd e\x1cf g\x7fh i\x00j",  # control characters are dropped, not spaces
        "[CLS] [MASK] [SEP] [UNK] [PAD] [cls] [Mask]",  # the tokenizer's added tokens match in raw text
        "x" * 150 + " supercalifragilisticexpialidocious unaffable",  # > 100 characters: [UNK]
        "naïve café 東京 Ünïcödé \u00a0nbsp \u200bzero-width",  # not ASCII: the tokenizer itself
        "word " * 3000,  # truncated
    ]
    rng = random.Random(0)
    alphabet = [*map(chr, range(128)), "[MASK]", "[SEP]", "unaffable", "ÉCOLE", "日本"]
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(2000)]
    encoder = L.StaticEncoder()
    for prompts in (tricky, fuzz, tricky):  # the second pass over tricky reads the word cache
        assert encoder.token_ids(prompts) == _tokenizer_ids(encoder, prompts)
    assert encoder._pieces  # the fast path ran


def test_word_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(L, "WORD_CACHE_SIZE", 50)
    encoder = L.StaticEncoder()
    rng = random.Random(1)
    words = ["".join(rng.choice("abcdefghij") for _ in range(8)) for _ in range(400)]
    prompts = [" ".join(words[i : i + 20]) for i in range(0, 400, 20)] + ["x" * (L.MAX_CACHED_WORD + 1)]
    for p in prompts:
        assert encoder.token_ids([p]) == _tokenizer_ids(encoder, [p])
        assert len(encoder._pieces) <= 50
    assert encoder._pieces and all(len(w) <= L.MAX_CACHED_WORD for w in encoder._pieces)


def test_default_head_blends_the_shipped_lexical_router(router):
    """The default logit = the embedding head's + a fixed coefficient times the lexical router's logit."""
    from dynamo.nemo_switchyard.routers.lexical import LexicalRouter

    assert router.head.lexical > 0
    assert router.manifest["lexical"]["weights_id"] == L.shipped_lexical().weights_id
    prompts = HARD + EASY
    lexical = LexicalRouter()
    emb = router.encoder.embed(prompts)
    dense, lex = L.lexical_features(prompts)
    assert lex.tolist() == [lexical.logit(p) for p in prompts]
    without = router.head.logit(router.head.design(emb, dense), None, np.zeros(len(prompts)))
    assert np.allclose(router.logits(prompts), without + router.head.lexical * lex)
    with pytest.raises(RouterError, match="blends the lexical router"):
        router.head.logit(router.head.design(emb, dense))


def test_calibration_is_increasing_with_tails(router):
    z = np.linspace(router.head.cal_z[0] - 50, router.head.cal_z[-1] + 50, 2001)
    s = router.head.calibrate(z)
    assert np.all(np.diff(s) >= 0) and s[0] >= 0.0 and s[-1] <= 1.0
    hi, lo = router.head.calibrate(np.array([1e9, -1e9])).tolist()
    assert hi == 1.0 and 0.0 <= lo < 1e-12


def test_calibration_is_np_interp_between_the_quantiles(router):
    # calibrate loops in Python for speed; between the quantiles it must be np.interp to the bit.
    head = router.head
    q, p = head.cal_z, head.cal_p
    z = np.concatenate([q, (q[:-1] + q[1:]) / 2, np.random.default_rng(0).uniform(q[0], q[-1], 5000)])
    assert np.array_equal(head.calibrate(z), np.interp(z, q, p))
    assert np.isnan(head.calibrate(np.array([np.nan]))[0])
    hi, lo = head.calibrate(np.array([np.inf, -np.inf])).tolist()
    assert hi == 1.0 and 0.0 <= lo < 1e-12


@needs_data
def test_held_out_mini_evaluation_beats_random(router):
    """routerbench_subset is never trained on: the shipped head must beat random (0.5) there."""
    rows = load_labeled(os.path.join(DATA, "routerbench_subset.jsonl.gz"))
    rows = random.Random(0).sample(rows, 1200)
    prompts, qs, qw = pair_rows(rows, "gpt-4-1106-preview", "meta/llama-2-70b-chat")
    assert apgr(router.score_batch(prompts), qs, qw) > 0.5


@needs_data
def test_calibration_sends_a_share_of_a_mixed_set_to_strong(router):
    prompts = []
    for name in ("mmlu_pro", "math_l5", "crux", "arena_hard_v1"):
        rows = load_labeled(os.path.join(DATA, f"{name}.jsonl.gz"))
        prompts += [r["prompt"] for r in random.Random(1).sample(rows, 150)]
    share = float(np.mean(np.array(router.score_batch(prompts)) >= 0.5))
    assert 0.3 < share < 0.7
