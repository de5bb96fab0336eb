"""A fast lexical router: cheap prompt features -> logistic model -> calibrated score.

Pure Python (no numpy), a few to a few tens of microseconds per prompt, so it runs
inline on the event loop.

Features (computed on a window of the prompt: the whole prompt up to
``MAX_CHARS`` characters, else its first ``HEAD_CHARS`` and last ``TAIL_CHARS``):

* size: log of characters, words and lines, a "tiny prompt" hinge ``max(0, 1 - chars / 80)`` (of the full prompt; words and lines
  are extrapolated from the window for long prompts), mean word length;
* character classes (ratios to the window length): digits, upper case, math
  operators ``+-*/=<>^``, brackets, ``\\`` and ``$`` (LaTeX), punctuation, non-ASCII;
* other scripts: a prompt that is not ASCII is NFKC-normalised first (full-width ``？``,
  ``＋`` and digits count as ``?``, ``+`` and digits); Chinese and Japanese characters count
  as words (one per 1.7 characters), they and Korean syllables each as three characters of
  length, and none of them as non-ASCII, so a Chinese question sizes like its English
  translation instead of like a one-word greeting (the training data is English); and a few
  Chinese, Japanese and Korean task words join the English indicator groups (``_GROUP_WORDS``);
* LaTeX / math markers (``\\frac``, ``\\sqrt``, ``$``, ``^{``, ...), code markers
  (``def``, ``return``, ``import``, fenced code, indentation, ``{``/``;`` line ends, ...);
* multiple-choice options (lines ``A.`` / ``A)`` / ``(A)``), question marks,
  numbers (count, longest), and indicator groups of question / task words
  (what/why/how, explain, prove, compute/solve, write/implement, code, creative,
  debug, step-by-step, mathematics words: prime, remainder, integer, equation, ...);
* for short prompts, the "tiny" hinge times the count of numbers, the presence of math
  operators, compute words (with a number) and mathematics words: a short mathematics
  question is hard, where other short prompts are chit-chat;
* for word problems (prose with quantities, see ``analyze``), the log of the count of their
  quantities (numbers and number words) above three: a word problem's steps follow its
  quantities. Its weight is fitted on word problems alone (``scripts/word_slope.py``);
* bag of words: lower-cased word unigrams (runs of ASCII letters/digits and
  non-ASCII bytes), looked up in a vocabulary that ships with the weights (only
  words that carried weight in training); the weights of all tokens are summed
  (term frequency) and divided by ``sqrt(number of tokens + 1)``.

Everything works on the UTF-8 bytes of the window: C-level ``bytes`` operations
(``translate``, ``split``) for the words and numbers, one dictionary lookup per word, and
one pass over the bytes (compiled) for the character classes, which is what keeps it at a
few tens of microseconds even for long prompts.

The model is a logistic regression. Its target (see ``scripts/train_lexical.py``)
is the probability that a strong model is needed: for a prompt of a training set,
``P(random strong model correct) * P(random weak model wrong)``, where the strong
models are the best quarter of that set's models and the weak models the weaker
half (by mean outcome on the set).

Calibration: the raw logit is mapped through the empirical CDF of the logits on
the training mix (every training set weighted equally), stored as quantiles, with
sigmoid tails beyond the 0.5 % / 99.5 % quantiles. So a score is roughly "the
share of such prompts that look easier than this one": threshold 0.5 sends about
half of a mixed prompt set to the strong model, threshold 0.8 about 20 %.
The mapping is strictly increasing, so it does not change the ranking (APGR).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
import unicodedata
from collections.abc import Sequence
from typing import Any, Final

from .base import Router, RouterError

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lexical_weights.json")
FORMAT = "switchyard-lexical-v2"

MAX_CHARS: Final = 1000
HEAD_CHARS: Final = 700
TAIL_CHARS: Final = 300


def _table(keep: bytes, other: int = 32) -> bytes:
    """A bytes.translate table: ASCII letters lower-cased, ``keep`` and non-ASCII kept, the rest -> ``other``."""
    t = bytearray([other]) * 256
    for c in range(128, 256):
        t[c] = c
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789" + keep:
        t[c] = c
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        t[c] = c + 32
    return bytes(t)


_WORDS = _table(b"")  # words: runs of letters / digits / non-ASCII bytes, lower-cased
_DIGIT_RUNS = bytes(c if 48 <= c <= 57 else 32 for c in range(256))
_CJK_LEADS = bytes(range(0xE3, 0xEA))  # UTF-8 lead bytes of U+3000..U+9FFF: CJK punctuation, kana, ideographs
_HANGUL_LEADS = bytes(range(0xEA, 0xEE))  # ... of U+A000..U+DFFF: mostly Hangul syllables (Korean puts spaces between words)
CJK_CHARS_PER_WORD: Final = 1.7
_OPTION_RE = re.compile(rb"\n[ \t]*\(?[A-J][.)][ \t]")

_DIGITS = b"0123456789"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MATHOPS = b"+-*/=<>^"
_BRACKETS = b"(){}[]"
_LATEX = b"\\$"
_PUNCT = b".,;:!?'\""


def _classes() -> bytes:
    """Each byte's character class for analyze's counting pass: 0 none, then (the most frequent
    first, as analyze tests them in this order) space, punctuation other than "?", upper case,
    digits, newline, math operators, brackets, "?", LaTeX."""
    table = bytearray(256)
    for cls, chars in enumerate((b" ", _PUNCT.replace(b"?", b""), _UPPER, _DIGITS, b"\n", _MATHOPS, _BRACKETS, b"?", _LATEX), 1):
        for c in chars:
            table[c] = cls
    return bytes(table)


_CLASSES: Final = _classes()
_MARKED: Final = frozenset(b"\n" + _MATHOPS + _BRACKETS + _LATEX)  # characters whose absence lets analyze skip markers

_LATEX_WORDS = frozenset(b"frac dfrac tfrac sqrt cdot leq geq infty binom mathbf mathrm overline ldots cdots".split())
_LATEX_MARKS = ("$", "^{", "_{", "\\(", "\\[")  # str, not bytes: see analyze
_CODE_WORDS = frozenset(
    b"def return import class print function lambda const var self elif python java javascript sql".split()
)
_CODE_MARKS = ("```", "{\n", ";\n", "\n    ", "\t", "==", "=>", "</", "#include", "()")
# The markers that can occur in a prompt without newlines, math operators, brackets or LaTeX
# characters (most chat prompts): the others cannot be in it, and are not looked for.
_PLAIN_LATEX_MARKS = tuple(m for m in _LATEX_MARKS if not any(ord(c) in _MARKED for c in m))
_PLAIN_CODE_MARKS = tuple(m for m in _CODE_MARKS if not any(ord(c) in _MARKED for c in m))
# Indicator groups of task words: English words (whole tokens) | Chinese / Japanese / Korean words
# (substrings: Chinese and Japanese have no spaces, Korean attaches particles and endings to its
# words: 증명하시오), one group per g_* feature, in FEATURE_NAMES order.
_GROUP_WORDS = (
    ("what why how which who when where", "什么 为什么 如何 怎么 哪 谁 何时 なぜ 何 どう どの 誰 무엇 어떻게 왜"),
    ("explain describe discuss compare summarize summarise", "解释 说明 描述 比较 总结 説明 比較 要約 설명 서술 비교 요약"),
    ("prove proof derive justify", "证明 推导 証明 증명"),
    ("calculate compute find determine evaluate solve simplify",
     "计算 求解 求出 求值 求和 求所有 解方程 化简 計算 解け 求め 계산 구하시오 구하세요 구하라 풀어"),
    ("write implement create generate build design", "写 实现 创建 生成 设计 書い 実装 作成 작성 구현 설계"),
    ("code python javascript sql java rust script program function", "代码 编程 程序 函数 コード プログラム 関数 코드 프로그램 함수 파이썬"),
    ("story poem essay email letter joke song", "故事 诗 文章 邮件 笑话 歌词 物語 メール 手紙 이야기 에세이 이메일 편지 농담"),
    ("fix debug error bug exception", "修复 调试 错误 异常 バグ エラー 修正 버그 오류 디버그 에러"),
    ("step reason think", "步骤 推理 思考 一步 ステップ 推論 단계 추론"),
    ("prime primes divisor divisors divisible factor factors factorial remainder mod modulo gcd lcm integer integers "
     "digit digits sum product root roots equation equations polynomial derivative integral probability sequence",
     "质数 素数 因数 余数 整数 方程 概率 約数 余り 方程式 確率 소수 약수 나머지 정수 방정식 확률"),
)
_WORD_GROUPS = tuple(frozenset(english.encode().split()) for english, _ in _GROUP_WORDS)
_LATEX_BIT: Final = 1 << len(_GROUP_WORDS)
_CODE_BIT: Final = _LATEX_BIT << 1
_QUANTITY_BIT: Final = _CODE_BIT << 1
# Quantities written as words, as word problems write many of theirs ("three boxes", "twice as many").
_QUANTITY_WORDS = frozenset(
    b"one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty sixty hundred "
    b"thousand million dozen dozens twice thrice half double triple quarter percent".split()
)
_FEW_QUANTITIES: Final = math.log1p(3)
_MAX_QUANTITIES: Final = 16  # more is a table of numbers rather than a harder word problem
_FORMULA_OPS: Final = b"+*=<>^"  # math operators but those prose uses too: "a 30-day month", "3/4 of", "$12/hour"
_MONEY_RE: Final = re.compile(rb"\$(?![0-9])")  # a "$" not before a digit: LaTeX, not a price


def _token_flags() -> dict[bytes, int]:
    """Every task word, LaTeX word and code word -> its bits: word group i is bit i, then a LaTeX and a code bit.
    One dictionary lookup per token instead of a set of the tokens and a dozen set operations on it, which cost
    a short prompt's analysis a quarter of its instructions."""
    flags: dict[bytes, int] = {}
    for i, group in enumerate(_WORD_GROUPS):
        for word in group:
            flags[word] = flags.get(word, 0) | 1 << i
    for words, bit in ((_LATEX_WORDS, _LATEX_BIT), (_CODE_WORDS, _CODE_BIT), (_QUANTITY_WORDS, _QUANTITY_BIT)):
        for word in words:
            flags[word] = flags.get(word, 0) | bit
    return flags


_TOKEN_FLAGS = _token_flags()
_CJK_GROUP_OF = {w.encode(): i for i, (_, cjk) in enumerate(_GROUP_WORDS) for w in cjk.split()}

FEATURE_NAMES: tuple[str, ...] = (
    "log_chars", "tiny", "log_words", "log_lines", "mean_word_len",
    "r_digits", "r_upper", "r_mathops", "r_brackets", "r_latex", "r_punct", "r_nonascii",
    "n_latex_markers", "n_code_markers", "has_code",
    "log_options", "has_options", "log_qmarks", "log_numbers", "max_number_len",
    "g_wh", "g_explain", "g_prove", "g_compute", "g_write", "g_code", "g_creative", "g_debug", "g_reason", "g_math",
    "tiny_numbers", "tiny_mathops", "tiny_compute", "tiny_math", "wp_quantities",
)
_FIRST_GROUP = FEATURE_NAMES.index("g_wh")  # where the word groups start in the features
_COMPUTE = FEATURE_NAMES.index("g_compute") - _FIRST_GROUP
_MATH = FEATURE_NAMES.index("g_math") - _FIRST_GROUP
_CJK_WORDS_RE = re.compile(b"|".join(map(re.escape, sorted(_CJK_GROUP_OF, key=len, reverse=True))))


def window(prompt: str) -> str:
    """The part of the prompt the features look at (head and tail of long prompts)."""
    if len(prompt) <= MAX_CHARS:
        return prompt
    return prompt[:HEAD_CHARS] + "\n" + prompt[-TAIL_CHARS:]


def analyze(prompt: str) -> tuple[list[float], list[bytes]]:
    """Dense features (order of ``FEATURE_NAMES``) and word tokens (lower-cased UTF-8 bytes) of a prompt."""
    win = window(prompt)
    ascii_only = win.isascii()
    if not ascii_only:  # the window only: normalising a whole 10 MB prompt would hold the event loop
        win = unicodedata.normalize("NFKC", win)
    b = win.encode("utf-8", "surrogatepass")
    toks = b.translate(_WORDS).split()
    flags = 0
    latex = code = quantity_words = 0  # distinct LaTeX / code words; quantity words, each time
    matched: set[bytes] | None = None
    token_flags, counted = _TOKEN_FLAGS, _LATEX_BIT | _CODE_BIT  # locals: a module global is a dict lookup each time, compiled
    for tok in toks:
        f = token_flags.get(tok, 0)
        if f:
            flags |= f
            if f & _QUANTITY_BIT:
                quantity_words += 1
            if f & counted:
                if matched is None:
                    matched = set()
                if tok not in matched:
                    matched.add(tok)
                    latex += 1 if f & _LATEX_BIT else 0
                    code += 1 if f & _CODE_BIT else 0
    n_chars = len(win) or 1
    n = len(b) or 1
    scale = len(prompt) / n_chars if len(prompt) > n_chars else 1.0
    cjk = 0 if ascii_only else n - len(b.translate(None, _CJK_LEADS))  # Chinese / Japanese characters
    hangul = 0 if ascii_only else n - len(b.translate(None, _HANGUL_LEADS))
    n_full = len(prompt) + 2 * (cjk + hangul) * scale  # length in Latin-character equivalents
    words = len(toks) + cjk / CJK_CHARS_PER_WORD
    # One pass over the bytes counts every character class: compiled, ~20 instructions a byte, where
    # a bytes method call costs ~1,400 before its work (nine of them did this, ~12,600 instructions
    # of a short prompt's ~41,000; over a 1,000-byte window the pass is still the cheaper).
    digits = upper = mathops = brackets = latex_chars = punct = questions = spaces = newlines = 0
    classes = _CLASSES
    for c in b:
        k = classes[c]
        if k:
            if k == 1:
                spaces += 1
            elif k == 2:
                punct += 1
            elif k == 3:
                upper += 1
            elif k == 4:
                digits += 1
            elif k == 5:
                newlines += 1
            elif k == 6:
                mathops += 1
            elif k == 7:
                brackets += 1
            elif k == 8:
                questions += 1
            else:
                latex_chars += 1
    punct += questions
    lines = newlines + 1
    numbers = b.translate(_DIGIT_RUNS).split()
    max_num = max(map(len, numbers)) if numbers else 0
    options = len(_OPTION_RE.findall(b"\n" + b))
    # The ASCII markers are looked up in the str window, not in its UTF-8 bytes (the same answer, as
    # UTF-8 keeps ASCII as is): on Python 3.11 ``m in b`` first tries m as an integer and raises and
    # clears a TypeError, and ``b.find`` parses its arguments the old way; ``in`` on str does neither
    # (callgrind, a whole score of a short prompt: ~119,000 instructions with ``m in b``, ~103,000
    # with ``b.find(m)``, ~90,000 so).
    gated = newlines or mathops or brackets or latex_chars
    latex_marks, code_marks = (_LATEX_MARKS, _CODE_MARKS) if gated else (_PLAIN_LATEX_MARKS, _PLAIN_CODE_MARKS)
    for m in latex_marks:
        if m in win:
            latex += 1
    for m in code_marks:
        if m in win:
            code += 1
    tiny = max(0.0, 1.0 - n_full / 80.0)
    log_numbers = math.log1p(len(numbers))
    feats = [
        math.log1p(n_full),
        tiny,
        math.log1p(words * scale),
        math.log1p(lines * scale),
        (n - spaces - lines + 1) / (words or 1),
        digits / n,
        upper / n,
        mathops / n,
        brackets / n,
        latex_chars / n,
        punct / n,
        (n - n_chars - 2 * (cjk + hangul)) / n,
        float(latex),
        float(code),
        1.0 if code >= 3 else 0.0,
        math.log1p(options),
        1.0 if options >= 2 else 0.0,
        math.log1p(questions),
        log_numbers,
        float(min(max_num, 12)),
    ]
    for i in range(len(_WORD_GROUPS)):
        feats.append(1.0 if flags >> i & 1 else 0.0)
    if cjk or hangul:
        for w in _CJK_WORDS_RE.findall(b):
            feats[_FIRST_GROUP + _CJK_GROUP_OF[w]] = 1.0
    # Short prompts are mostly chit-chat and trivia, so the "tiny" hinge makes them easy; a short
    # mathematics question ("Compute 17^3 mod 23.") is not. These products let the model tell the two
    # apart by the prompt's numbers, operators, compute words and mathematics words, not by the size of
    # its numbers (that sent "My order number is 12345678, where is it?" to the strong model). A compute
    # word counts only with a number ("find" also asks for code: "Write a function to find ...").
    compute = feats[_FIRST_GROUP + _COMPUTE] if numbers else 0.0
    feats += [tiny * log_numbers, tiny if mathops else 0.0, tiny * compute, tiny * feats[_FIRST_GROUP + _MATH]]
    # A grade-school word problem is harder for a weak model the more steps it takes (a strong model's
    # errors hardly rise with them), and its steps follow its quantities; the size and the words of a
    # prompt, which the other features read, say little within such problems. "Word problem" here: prose
    # with more than three quantities, no options, no LaTeX but prices in dollars, no formula operators, two
    # code words at most ("class" and "return" are English too), three lines at most. Counted above three
    # quantities only: below, a problem takes a step or two, or is a riddle whose few numbers say nothing
    # ("Three boxes are labeled ..."; centred on six, this feature sent such riddles to the weak model);
    # and most prompts stop at that first test.
    # Capped: beyond sixteen numbers a prompt is a table rather than a harder problem.
    quantities = len(numbers) + quantity_words
    prose = quantities > 3 and options < 2 and code < 3 and lines <= 3 and not flags & _LATEX_BIT
    if prose and latex:
        prose = latex == 1 and b"$" in b and _MONEY_RE.search(b) is None
    if prose and mathops:
        prose = len(b.translate(None, _FORMULA_OPS)) == n
    feats.append(math.log1p(min(quantities, _MAX_QUANTITIES)) - _FEW_QUANTITIES if prose else 0.0)
    return feats, toks


class LexicalRouter(Router):
    """Logistic model over cheap lexical features; scores are calibrated to training-mix quantiles."""

    name = "lexical"
    inline = True

    def __init__(self, weights_path: str | None = None, weights: dict[str, Any] | None = None):
        if weights is None:
            path = weights_path or DEFAULT_WEIGHTS
            try:
                with open(path, encoding="utf-8") as f:
                    weights = json.load(f)
            except OSError as exc:
                raise RouterError(f"lexical router: cannot read weights file {path!r} ({exc})") from exc
            except json.JSONDecodeError as exc:
                raise RouterError(f"lexical router: weights file {path!r} is not valid JSON ({exc})") from exc
        self._load(weights)

    @classmethod
    def from_config(cls, *, checkpoint_path: str | None = None, options: dict[str, Any] | None = None) -> LexicalRouter:
        """``checkpoint_path`` may name a weights JSON file or a folder holding ``lexical_weights.json``."""
        options = dict(options or {})
        path = options.pop("weights_path", None) or checkpoint_path
        if path and os.path.isdir(path):
            path = os.path.join(path, "lexical_weights.json")
        if options:
            raise RouterError(f"lexical router: unknown options {sorted(options)} (accepted: weights_path)")
        return cls(weights_path=path)

    def _load(self, w: dict[str, Any]) -> None:
        try:
            if w.get("format") != FORMAT:
                raise RouterError(f"lexical router: weights format {w.get('format')!r}, expected {FORMAT!r}")
            if tuple(w["feature_names"]) != FEATURE_NAMES:
                raise RouterError("lexical router: weights were trained for a different feature set; retrain")
            self._bias = float(w["bias"])
            self._dense = [float(x) for x in w["dense"]]
            self._uni = {str(k).encode("utf-8", "surrogatepass"): float(v) for k, v in w["unigrams"].items()}
            cal = w["calibration"]
            self._q = [float(x) for x in cal["logit_quantiles"]]
            self._p = [float(x) for x in cal["probs"]]
            self._tail = float(cal["tail_scale"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RouterError(f"lexical router: malformed weights ({exc!r})") from exc
        if len(self._dense) != len(FEATURE_NAMES) or len(self._q) != len(self._p) or len(self._q) < 2:
            raise RouterError("lexical router: malformed weights (length mismatch)")
        if any(b <= a for a, b in zip(self._q, self._q[1:])) or self._tail <= 0:
            raise RouterError("lexical router: calibration quantiles must be strictly increasing")
        self.meta = w.get("meta", {})

    # -- scoring -----------------------------------------------------------------------------------

    def logit(self, prompt: str) -> float:
        """Uncalibrated logit of "strong model needed"."""
        feats, toks = analyze(prompt)
        return self.logit_of(feats, toks)

    def logit_of(self, feats: list[float], toks: list[bytes]) -> float:
        """The logit from :func:`analyze`'s output (the learned router reuses one analysis for both)."""
        # Plain loops, not sum(map(...)): compiled (setup.py) they run on unboxed floats, ~3x fewer
        # instructions; the sums are the same, added in the same order from 0.0.
        weights = self._uni
        text = 0.0
        for tok in toks:
            text += weights.get(tok, 0.0)
        dense = self._dense
        linear = 0.0
        for i in range(len(dense)):
            linear += dense[i] * feats[i]
        return self._bias + linear + text / math.sqrt(len(toks) + 1)

    def calibrate(self, z: float) -> float:
        """Map a logit to [0, 1] through the training-mix CDF (strictly increasing)."""
        q, p = self._q, self._p
        if z <= q[0]:
            return p[0] * 2.0 / (1.0 + math.exp(-(z - q[0]) / self._tail)) if z > q[0] - 700 * self._tail else 0.0
        if z >= q[-1]:
            d = (z - q[-1]) / self._tail
            return 1.0 - (1.0 - p[-1]) * 2.0 / (1.0 + math.exp(d)) if d < 700 else 1.0
        i = bisect.bisect_right(q, z)
        a, b = q[i - 1], q[i]
        return p[i - 1] + (p[i] - p[i - 1]) * (z - a) / (b - a)

    def score(self, prompt: str) -> float:
        return self.calibrate(self.logit(prompt))

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        score = self.score
        return [score(p if isinstance(p, str) else str(p)) for p in prompts]


def _bench(argv: Sequence[str] | None = None) -> None:
    """Per-prompt latency: ``python -m dynamo.nemo_switchyard.routers.lexical [corpus .jsonl(.gz) ...]``."""
    import argparse
    import gzip
    import statistics
    import time

    ap = argparse.ArgumentParser(description="Measure the lexical router's per-prompt scoring latency.")
    ap.add_argument("files", nargs="*", help="routing-corpus files (default: a few synthetic prompts)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    sets: dict[str, list[str]] = {}
    for path in args.files:
        with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
            sets[os.path.basename(path).split(".")[0]] = [json.loads(line)["prompt"] for line in f if line.strip()]
    sets["synthetic-short"] = ["hi", "What is the capital of France?", "Tell me a joke."] * 100
    sets["synthetic-100KB"] = ["Solve $x^2 + 1 = 0$ and explain. " * 3000] * 20
    router = LexicalRouter()
    print(f"{'set':22s} {'n':>6s} {'mean chars':>10s} {'mean us':>8s} {'p50 us':>7s} {'p99 us':>7s} {'max us':>7s}")
    for name, prompts in sets.items():
        times = []
        for _ in range(args.repeat):
            for p in prompts:
                t0 = time.perf_counter()
                router.score_batch([p])
                times.append((time.perf_counter() - t0) * 1e6)
        times.sort()
        print(f"{name:22s} {len(prompts):6d} {statistics.mean(map(len, prompts)):10.0f} {statistics.mean(times):8.1f} "
              f"{times[len(times) // 2]:7.1f} {times[int(len(times) * 0.99)]:7.1f} {times[-1]:7.1f}")


if __name__ == "__main__":
    _bench()
