"""Tests for the lexical router (dynamo.nemo_switchyard.routers.lexical)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from dynamo.nemo_switchyard.evaluation import apgr, load_labeled, pair_rows
from dynamo.nemo_switchyard.routers.base import Router, RouterError
from dynamo.nemo_switchyard.routers.lexical import DEFAULT_WEIGHTS, FEATURE_NAMES, LexicalRouter, analyze

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
# (none of these is among the synthetic anchors of scripts/anchors.py)
EASY = ["hi", "What is the capital of France?", "Tell me a joke.", "thanks", "How are you today?"]


@pytest.fixture(scope="module")
def router() -> LexicalRouter:
    return LexicalRouter()


def test_weights_file_loads_and_is_small():
    assert os.path.getsize(DEFAULT_WEIGHTS) < 300 * 1024
    with open(DEFAULT_WEIGHTS, encoding="utf-8") as f:
        w = json.load(f)
    assert w["feature_names"] == list(FEATURE_NAMES)
    assert len(w["dense"]) == len(FEATURE_NAMES)
    assert len(w["unigrams"]) > 100
    assert "routerbench_subset" not in w["meta"]["trained_on"]
    q = w["calibration"]["logit_quantiles"]
    assert all(b > a for a, b in zip(q, q[1:]))


def test_router_interface(router):
    assert isinstance(router, Router)
    assert LexicalRouter.name == "lexical"
    assert LexicalRouter.inline is True
    assert router.score_batch([]) == []


def test_scores_in_unit_interval(router):
    prompts = HARD + EASY + ["", " ", "\n\n", "日本語のテキストです。", "emoji 🙂 " * 50, "\ud800 lone surrogate",
                             "x" * 200_000, "A. a\nB. b\nC. c\n" * 500, "$" * 5000, "1234567890" * 300]
    scores = router.score_batch(prompts)
    assert len(scores) == len(prompts)
    for s in scores:
        assert isinstance(s, float) and math.isfinite(s) and 0.0 <= s <= 1.0


def test_deterministic_and_batch_equals_singles(router):
    prompts = HARD + EASY
    batch = router.score_batch(prompts)
    assert batch == [router.score_batch([p])[0] for p in prompts]
    assert batch == LexicalRouter().score_batch(prompts)


def test_deterministic_across_processes():
    code = (
        "import json, sys; from dynamo.nemo_switchyard.routers.lexical import LexicalRouter; "
        "print(json.dumps(LexicalRouter().score_batch(json.loads(sys.argv[1]))))"
    )
    prompts = json.dumps(HARD + EASY)
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
        res = subprocess.run([sys.executable, "-c", code, prompts], env=env, capture_output=True, text=True, check=True)
        outs.append(json.loads(res.stdout))
    assert outs[0] == outs[1]


def test_hard_prompts_score_above_trivial_ones(router):
    hard = router.score_batch(HARD)
    easy = router.score_batch(EASY)
    assert min(hard) > max(easy), (hard, easy)


def test_calibration_is_monotone(router):
    zs = [-50.0, -5.0, -1.0, -0.1, 0.0, 0.1, 1.0, 5.0, 50.0, 1e6]
    ps = [router.calibrate(z) for z in [-1e6] + zs]
    assert all(b >= a for a, b in zip(ps, ps[1:]))
    assert all(0.0 <= p <= 1.0 for p in ps)


def test_features_match_names():
    feats, toks = analyze("What is 2 + 2?\nA. 3\nB. 4")
    assert len(feats) == len(FEATURE_NAMES)
    assert toks == [b"what", b"is", b"2", b"2", b"a", b"3", b"b", b"4"]
    assert feats[FEATURE_NAMES.index("has_options")] == 1.0


def test_character_class_ratios_count_each_class(router):
    # analyze counts the classes in one pass over the bytes; the reference deletes each class.
    rng = __import__("random").Random(7)
    alphabet = "aZ09 \n\t?!.,;:'\"+-*/=<>^(){}[]\\$#_`~é"
    classes = {"r_digits": b"0123456789", "r_upper": b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "r_mathops": b"+-*/=<>^",
               "r_brackets": b"(){}[]", "r_latex": b"\\$", "r_punct": b".,;:!?'\""}
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400)))
        feats = dict(zip(FEATURE_NAMES, analyze(text)[0]))
        data = text.encode()
        for name, chars in classes.items():
            assert feats[name] == (len(data) - len(data.translate(None, chars))) / len(data), (name, text)
        assert feats["log_qmarks"] == math.log1p(data.count(b"?"))
        assert feats["log_lines"] == math.log1p(data.count(b"\n") + 1)
    empty = dict(zip(FEATURE_NAMES, analyze("")[0]))
    assert all(empty[name] == 0.0 for name in classes)  # no characters, no share of any class


WORD_PROBLEM = ("A baker sells 24 muffins on Monday and twice as many on Tuesday. Each muffin costs $3 and "
                "each box holds 6 muffins. How many dollars does she make over the two days?")


def wp_quantities(prompt: str) -> float:
    return dict(zip(FEATURE_NAMES, analyze(prompt)[0]))["wp_quantities"]


def test_word_problem_quantities_count_numbers_and_number_words():
    # 24, twice, 3, 6, two: five quantities (the prices' "$" is not LaTeX); counted above three.
    assert wp_quantities(WORD_PROBLEM) == pytest.approx(math.log1p(5) - math.log1p(3))
    assert wp_quantities("Tom has 3 apples and buys 2 more. How many does he have?") == 0.0  # few: no opinion
    fractions = WORD_PROBLEM.replace("twice as many", "3/4 as many").replace("each box holds", "each box, rented at $5/hour, holds")
    assert wp_quantities(fractions) > 0.0  # fractions and rates are prose too
    table = "The readings were " + ", ".join(str(i) for i in range(40)) + ". What is the trend?"
    assert wp_quantities(table) == pytest.approx(math.log1p(16) - math.log1p(3))  # a table, not a harder problem


@pytest.mark.parametrize("change", [
    lambda p: p + "\nA. 84\nB. 216",  # multiple choice
    lambda p: p.replace("$3", "$x^2$"),  # LaTeX
    lambda p: p.replace("twice as many", "2 * 24"),  # a formula
    lambda p: p.replace("Each muffin", "def f(): return print(x)\nEach muffin"),  # code
    lambda p: p.replace(". ", ".\n").replace(" and ", "\nand "),  # more than three lines
])
def test_word_problem_feature_is_zero_outside_prose(change):
    prompt = change(WORD_PROBLEM)
    assert prompt != WORD_PROBLEM
    assert wp_quantities(prompt) == 0.0, prompt


def test_markers_are_found_with_or_without_the_characters_that_gate_them():
    # analyze looks for most markers only in prompts with newlines, math operators, brackets or
    # LaTeX characters; in words without code or LaTeX words, the counts are the markers present.
    from dynamo.nemo_switchyard.routers.lexical import _CODE_MARKS, _LATEX_MARKS

    rng = __import__("random").Random(11)
    pieces = ["xy", " ", "`", "```", "\t", "#include", "#", ";", "_", "$", "^{", "_{", "\\(", "\\[", "{\n", ";\n",
              "\n    ", "==", "=>", "</", "()", "?", "."]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        feats = dict(zip(FEATURE_NAMES, analyze(text)[0]))
        assert feats["n_latex_markers"] == sum(m in text for m in _LATEX_MARKS), text
        assert feats["n_code_markers"] == sum(m in text for m in _CODE_MARKS), text


def test_from_config_paths_and_errors(tmp_path):
    assert isinstance(LexicalRouter.from_config(), LexicalRouter)
    assert isinstance(LexicalRouter.from_config(checkpoint_path=DEFAULT_WEIGHTS), LexicalRouter)
    assert isinstance(LexicalRouter.from_config(checkpoint_path=os.path.dirname(DEFAULT_WEIGHTS)), LexicalRouter)
    assert isinstance(LexicalRouter.from_config(options={"weights_path": DEFAULT_WEIGHTS}), LexicalRouter)
    with pytest.raises(RouterError, match="unknown options"):
        LexicalRouter.from_config(options={"bogus": 1})
    with pytest.raises(RouterError, match="cannot read"):
        LexicalRouter.from_config(checkpoint_path=str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(RouterError, match="not valid JSON"):
        LexicalRouter(weights_path=str(bad))
    with open(DEFAULT_WEIGHTS, encoding="utf-8") as f:
        w = json.load(f)
    w["feature_names"] = w["feature_names"][:-1]
    with pytest.raises(RouterError, match="different feature set"):
        LexicalRouter(weights=w)


@needs_data
@pytest.mark.parametrize("weak", ["meta/llama-2-70b-chat", "mistralai/mixtral-8x7b-chat"])
def test_held_out_mini_evaluation_beats_random(router, weak):
    # routerbench_subset is evaluation-only: the shipped weights never saw it.
    rows = load_labeled(os.path.join(DATA, "routerbench_subset.jsonl.gz"))[::5]
    prompts, qs, qw = pair_rows(rows, "gpt-4-1106-preview", weak)
    assert len(prompts) > 300
    assert apgr(router.score_batch(prompts), qs, qw) > 0.52


@needs_data
def test_threshold_half_splits_a_mixed_set_roughly_in_half(router):
    prompts = []
    for name in ("mmlu_pro", "math_l5", "crux", "arena_hard_v1"):
        prompts += [r["prompt"] for r in load_labeled(os.path.join(DATA, f"{name}.jsonl.gz"))[:150]]
    share = sum(s >= 0.5 for s in router.score_batch(prompts)) / len(prompts)
    assert 0.35 <= share <= 0.65, share


def test_chinese_text_is_sized_like_its_english_translation():
    """Chinese has no spaces: its characters count as words and length, not as one long non-ASCII word."""
    names = list(FEATURE_NAMES)
    zh, _ = analyze("证明：对任意正整数n，n的三次方减去n总能被6整除，并说明理由。")
    en, _ = analyze("Prove that for every positive integer n, n cubed minus n is always divisible by 6, and explain why.")
    for name in ("log_chars", "log_words", "tiny"):
        assert abs(zh[names.index(name)] - en[names.index(name)]) < 0.5, name
    assert zh[names.index("r_nonascii")] < 0.05
    assert zh[names.index("g_prove")] == 1.0  # 证明 = prove


def test_full_width_forms_count_as_their_ascii_equivalents():
    full, _ = analyze("求 ｘ＋１＝３ 的解？")
    names = list(FEATURE_NAMES)
    assert full[names.index("log_qmarks")] > 0 and full[names.index("r_mathops")] > 0 and full[names.index("log_numbers")] > 0


def test_only_the_window_of_a_long_prompt_is_normalised(monkeypatch):
    """NFKC over a whole multi-megabyte prompt held the event loop for seconds (the router runs inline)."""
    from dynamo.nemo_switchyard.routers import lexical

    seen = []
    real = lexical.unicodedata.normalize
    monkeypatch.setattr(lexical.unicodedata, "normalize", lambda form, text: seen.append(len(text)) or real(form, text))
    feats, _ = analyze("证明这个不等式成立。" * 100_000)
    assert seen and max(seen) <= lexical.MAX_CHARS + 1
    assert feats[list(FEATURE_NAMES).index("log_chars")] > math.log(1_000_000)  # sized by the whole prompt
