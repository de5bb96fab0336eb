"""The shipped routers' prior about kinds of task, on probes held out from training; and few-shot prompts.

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
import os
import random

import pytest
from shared_data import DATA, needs_data

from dynamo.nemo_switchyard.evaluation import apgr, load_labeled, pair_rows
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


def assert_apart(router, easy_prompts: list[str], hard_prompts: list[str], ordered: float, apart: float) -> None:
    """At least ``ordered`` of the (easy, hard) pairs ordered, and the means at least ``apart``."""
    easy, hard = router.score_batch(easy_prompts), router.score_batch(hard_prompts)
    assert sum(h > e for e, h in itertools.product(easy, hard)) / (len(easy) * len(hard)) >= ordered, (easy, hard)
    assert sum(hard) / len(hard) - sum(easy) / len(easy) >= apart, (easy, hard)


@pytest.mark.parametrize("router", [LexicalRouter, LearnedRouter])
def test_chinese_and_japanese_hard_prompts_score_above_easy_ones(router):
    assert_apart(router(), CJK_EASY, CJK_HARD, ordered=0.85, apart=0.3)


# Korean puts spaces between words but attaches particles and endings to them (증명하시오, "prove"),
# and has no English task words either. Before its task words joined the indicator groups, these
# hard probes averaged 0.35 (lexical) and 0.40 (learned), against ~0.01 for the easy ones: a proof
# problem scored 0.27 / 0.35 and went to the weak model.
KO_EASY = [
    "안녕하세요! 오늘 날씨가 정말 좋네요.",
    "친구 생일 축하 메시지를 짧게 써 주세요.",
    "서울에서 가 볼 만한 카페를 추천해 줄래요?",
    "주말에 볼 만한 영화 좀 알려 주세요.",
]
KO_HARD = [
    "모든 양의 정수 n에 대하여 n^3 - n이 6으로 나누어떨어짐을 증명하시오.",
    "삼각형의 세 변의 길이가 7, 8, 9일 때 넓이와 외접원의 반지름을 구하시오.",
    "함수 f(x) = x^3 - 6x^2 + 9x + 1의 극값을 모두 구하고 그 이유를 설명하시오.",
    "연결 리스트를 뒤집는 함수를 파이썬 코드로 구현하고 시간 복잡도를 분석하세요.",
]


@pytest.mark.parametrize("router", [LexicalRouter, LearnedRouter])
def test_korean_hard_prompts_score_above_easy_ones(router):
    assert_apart(router(), KO_EASY, KO_HARD, ordered=0.9, apart=0.45)


@needs_data
@pytest.mark.parametrize("router", [LexicalRouter, LearnedRouter])
def test_a_shared_few_shot_prefix_leaves_the_ranking_to_the_question(router):
    """RouterBench's ARC prompts began with five solved examples (the corpus removed them). Put such a
    prefix back: the routers read a long prompt's head and tail, so the question at the end must still
    rank the prompts. Measured: APGR 0.535 -> 0.567 (lexical), 0.554 -> 0.566 (learned); a router that
    read only the head would see one prompt and score 0.5."""
    rows = [r for r in load_labeled(os.path.join(DATA, "routerbench_subset.jsonl.gz")) if r["meta"]["eval_name"] == "arc-challenge"]
    rng = random.Random(0)
    prefix = "".join(f"{shot['prompt']} {rng.choice('ABCD')}\n\n" for shot in rng.sample(rows, 5))
    prompts, qs, qw = pair_rows(rows, "gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat")
    r = router()
    bare = apgr(r.score_batch(prompts), qs, qw)
    few_shot = apgr(r.score_batch([prefix + p for p in prompts]), qs, qw)
    assert len(prefix) > 2000 and bare > 0.52
    assert few_shot > bare - 0.01, (bare, few_shot)
