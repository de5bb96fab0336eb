"""The shipped routers' prior about kinds of task, on probes held out from training.

Weak chat models come close to strong ones on writing, role play and everyday explanations,
and fall behind on mathematics and multi-step reasoning (MT-Bench's per-category results say
so for GPT-4 against Mixtral and others). The benchmark corpus the routers learn from has no
chat prompts at all, so ``scripts/anchors.py`` adds that prior; these probes, written apart
from its templates (other wording, other topics), check that it took: most (easy, hard) pairs
must be ordered hard above easy. Before the anchors, `lexical` ordered 0.91 of these pairs and
`learned` 0.78 (it scored writing above mathematics on average), and `lexical` sent the request for
a persuasive email to the strong model (score 0.83); with them 0.97 and 0.93.
"""

from __future__ import annotations

import itertools

import pytest

from dynamo.nemo_switchyard.routers.learned import LearnedRouter
from dynamo.nemo_switchyard.routers.lexical import LexicalRouter

EASY = {
    "writing": [
        "Compose a short blog post about a weekend trip to the seaside, highlighting the food and the walks.",
        "Write a persuasive email to your manager asking to work from home two days a week.",
        "Draft a heartfelt message for a colleague's farewell card, about 100 words.",
        "Write an advertisement for a stainless steel water bottle that keeps drinks cold for 24 hours.",
    ],
    "roleplay": [
        "Act as a grumpy lighthouse keeper and tell me why you love your job anyway.",
        "You are a cheerful flight attendant. Welcome the passengers aboard and explain the safety rules.",
        "Play the role of a fortune teller at a village fair and read my future.",
        "Imagine you are an astronaut returning from six months in orbit. Describe your first day back home.",
    ],
    "humanities": [
        "What were the main causes of the French Revolution?",
        "Summarize the key ideas of stoicism for a teenager.",
        "How did the printing press change European society?",
        "Describe the role of the Silk Road in the exchange of ideas between East and West.",
    ],
}
HARD = {
    "math": [
        "Solve the system: 2x + 3y - z = 7, x - y + 4z = -3, 3x + 2y + z = 10.",
        "What is the sum of all positive integers n less than 100 such that n^2 + n + 1 is divisible by 7?",
        "A triangle has vertices at (0,0), (4,0) and (1,3). Find its area and the radius of its circumscribed circle.",
        "Compute the derivative of f(x) = x^3 ln(x) and find where f'(x) = 0.",
    ],
    "reasoning": [
        "Ann is older than Ben. Ben is older than Cid. Dee is younger than Cid but older than Eli. Who is the second youngest?",
        "If it takes 5 machines 5 minutes to make 5 widgets, how long would 100 machines need to make 100 widgets? Explain step by step.",
        "A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. How much does the ball cost? Reason carefully.",
        ("Three boxes are labeled apples, oranges and mixed, but every label is wrong. You may take one fruit from one box. "
         "How do you relabel all the boxes correctly?"),
    ],
}


def ordered_share(router) -> float:
    easy = router.score_batch([p for ps in EASY.values() for p in ps])
    hard = router.score_batch([p for ps in HARD.values() for p in ps])
    return sum(h > e for e, h in itertools.product(easy, hard)) / (len(easy) * len(hard))


@pytest.mark.parametrize("router, at_least", [(LexicalRouter, 0.95), (LearnedRouter, 0.9)])
def test_hard_kinds_of_task_score_above_easy_ones(router, at_least):
    assert ordered_share(router()) >= at_least


@pytest.mark.parametrize("router", [LexicalRouter, LearnedRouter])
def test_every_easy_kind_scores_below_every_hard_kind_on_average(router):
    r = router()
    mean = {kind: sum(r.score_batch(ps)) / len(ps) for kind, ps in {**EASY, **HARD}.items()}
    assert max(mean[k] for k in EASY) < min(mean[k] for k in HARD), mean


# Chinese and Japanese: no spaces between words and no English task words. Before the lexical
# features sized such text by its characters (CJK counted as one word per run, as non-ASCII, and
# with English-only task words), every probe below scored below 0.001 with both routers: a
# competition problem in Chinese went to the weak model like a greeting.
CJK_EASY = [
    "早上好！周末有什么好玩的推荐吗？",
    "帮我写一段生日祝福，送给我的妹妹。",
    "简单介绍一下长城的历史。",
    "おすすめの映画を教えてください。",
]
CJK_HARD = [
    "已知三角形三边长分别为7、8、9，求它的面积和外接圆半径。",
    "证明：对任意正整数n，n^3 - n 能被6整除。",
    "一个水池有两个进水管，甲管单独注满需要6小时，乙管需要9小时，丙管每小时排出水池的1/12。三管同时打开，多少小时注满？",
    "関数 f(x) = x^3 - 6x^2 + 9x + 1 の極値をすべて求めなさい。",
]


@pytest.mark.parametrize("router", [LexicalRouter, LearnedRouter])
def test_chinese_and_japanese_hard_prompts_score_above_easy_ones(router):
    r = router()
    easy, hard = r.score_batch(CJK_EASY), r.score_batch(CJK_HARD)
    assert sum(h > e for e, h in itertools.product(easy, hard)) / (len(easy) * len(hard)) >= 0.85
    assert sum(hard) / len(hard) - sum(easy) / len(easy) >= 0.3, (easy, hard)
