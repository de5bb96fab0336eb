"""Synthetic anchor prompts for training the shipped routers: chit-chat, and a prior about kinds of task.

The routing corpus holds benchmark questions only: no chat, no writing, no role play, and its
short prompts are hard competition problems. Trained on it alone, a router learns "long = hard"
and "short = easy": it sent "Write a persuasive email to my manager" to the strong model and
"Implement an LRU cache in C++ with O(1) get and put" to the weak one. Public head-to-head
results of strong and weak chat models (e.g. MT-Bench's per-category scores) agree on the
pattern these anchors encode: weak models come close on writing, role play, rewriting,
summarising, extraction and everyday explanations; they fall behind on mathematics, coding and
multi-step reasoning, however short the request.

Every anchor is generated here from templates and topic lists (no benchmark prompt is used).
Anchors carry a small weight, are never evaluated, and are left out of the calibration.
Held-out probes of each kind, written separately, are in ``tests/test_router_priors.py``.

There are no coding anchors, by measurement: "Write a <language> function that ..." and
"Implement <data structure>" anchors at the hard target taught the routers that every request
for code needs the strong model, and RouterBench's MBPP (short, easy functions) showed that
wrong (its APGR for GPT-4 vs GPT-3.5 fell from 0.63 to 0.50 with the learned router). So short
coding requests are still judged by the corpus alone.
"""

from __future__ import annotations

import json
import os
import random

EASY_TARGET = 0.05  # the training targets' 10th percentile is about 0.0-0.1
HARD_TARGET = 0.70  # ... and their 90th percentile about 0.7

_TOPICS = ["a weekend in Lisbon", "our new coffee machine", "remote work", "a charity bake sale", "autumn in the city",
           "a retiring colleague", "learning to swim", "a community garden", "the office move", "a vintage bicycle",
           "the school science fair", "a rainy holiday", "our team's product launch", "a hiking trip", "my grandmother's recipes"]
_FORMS = ["a short poem", "a blog post", "a cover letter", "a product description", "a thank-you note", "a toast",
          "a short story", "a limerick", "a LinkedIn post", "a newsletter introduction", "a tweet", "a haiku",
          "a speech of about 200 words", "an invitation", "a friendly reminder email"]
_PERSONAS = ["a pirate captain", "a medieval innkeeper", "a friendly barista", "a museum guide", "a football coach",
             "a detective from the 1920s", "a wizard", "a travel agent", "a park ranger", "a chef on a cooking show"]
_ACTIONS = ["greet me and tell me about your day", "describe where you live", "give me advice for my first day",
            "welcome a group of visitors", "tell me a story from your past", "convince me to try your favourite dish"]
_CONCEPTS = ["inflation", "photosynthesis", "the water cycle", "democracy", "supply and demand", "a credit score",
             "the Renaissance", "climate change", "vaccination", "the stock market", "meditation", "recycling",
             "the Roman Empire", "jet lag", "compound interest"]
_ACTIVITIES = ["sleeping better", "starting to run", "saving money", "learning a language", "a job interview",
               "keeping houseplants alive", "cooking for a party", "moving to a new city", "public speaking",
               "studying for exams"]
_SENTENCES = ["The meeting was moved to Thursday afternoon because several people were travelling.",
              "Maria said the new schedule works well for the support team.",
              "Sales in the northern region grew by about ten percent compared with last spring.",
              "The library will be closed on Monday for maintenance of the heating system.",
              "Tom suggested that we order lunch from the Italian place near the station.",
              "Customers mostly asked about delivery times and the return policy.",
              "The project is on track, although the design review took longer than planned.",
              "Several volunteers offered to help with the registration desk on Saturday.",
              "The weather forecast predicts light rain in the morning and sun after noon.",
              "Our landlord confirmed that the window in the kitchen will be repaired next week.",
              "Anna and Peter visited the factory in Leeds on 12 March to sign the contract.",
              "The survey had 240 responses, most of them from first-year students."]


_PUZZLES = ["{a} is taller than {b}, {b} is taller than {c}, and {d} is shorter than {c} but taller than {e}. Who is the second shortest?",
            "{a}, {b} and {c} each own one pet: a cat, a dog or a fish. {a} is allergic to fur and {b} does not own the dog. Who owns which pet?",
            "Exactly one of {a}, {b} and {c} is lying. {a} says {b} broke the vase; {b} says {c} did it; {c} says {b} is lying. Who broke the vase?",
            "{a} can paint a fence in 3 hours and {b} in 5 hours. {c} joins them for the last hour. If together they finish in 2 hours, how long would {c} need alone?",
            "Four people, {a}, {b}, {c} and {d}, must cross a bridge at night with one torch. They take 1, 2, 5 and 10 minutes. What is the shortest time for all to cross?"]
_MATH = [  # (draw the numbers, templates)
    (lambda rng: {"a": rng.randint(2, 9), "b": rng.randint(-40, 40), "c": rng.randint(-60, 60)},
     ["Solve for x: {a}x^2 + {b}x + {c} = 0.", "Find all real roots of {a}x^3 - {b}x + {c}.",
      "For which values of k does {a}x^2 + kx + {c} = 0 have two distinct real roots?"]),
    (lambda rng: {"a": rng.randint(3, 19), "b": rng.randint(20, 2024), "m": rng.randint(7, 97)},
     ["What is the remainder when {a}^{b} is divided by {m}?",
      "How many positive integers below {b} are divisible by {a} or {m} but not both?",
      "Find the smallest positive integer n such that {a}n leaves remainder 1 when divided by {m}.",
      "How many ordered pairs of positive integers (x, y) satisfy {a}x + {m}y = {b}?"]),
    (lambda rng: {"a": rng.randint(2, 12), "b": rng.randint(2, 12), "c": rng.randint(2, 12)},
     ["Compute the integral of x^{a} e^(-{b}x) from 0 to infinity.",
      "A triangle has sides {a}, {b} and {c}. Find its area and the radius of its inscribed circle.",
      "Two fair dice are rolled {a} times. What is the probability that a sum of {b} appears at least twice?",
      "Find the derivative of f(x) = x^{a} ln(x) / (1 + x^{b}) and simplify.",
      "Prove that the sum of the first n odd numbers is a perfect square.",
      "Show that there are infinitely many primes of the form 4k + 3.",
      "A bag has {a} red and {b} blue balls. {c} are drawn without replacement. What is the expected number of red balls?"]),
]
_NAMES = ["Alice", "Bob", "Carol", "Dan", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy"]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.sample(_SENTENCES, n))


def easy_prompts(rng: random.Random) -> list[str]:
    """Tasks a weak model does about as well as a strong one, of every length."""
    out = []
    for form, topic in zip(_FORMS, rng.sample(_TOPICS, len(_FORMS))):
        out.append(f"Write {form} about {topic}.")
    for persona, action in zip(_PERSONAS, rng.choices(_ACTIONS, k=len(_PERSONAS))):
        out.append(f"Pretend you are {persona} and {action}.")
    for concept in _CONCEPTS:
        out.append(rng.choice(["Explain {} in simple terms.", "What is {}?", "Can you give me a short overview of {}?",
                               "Why does {} matter for ordinary people?"]).format(concept))
    for activity in _ACTIVITIES:
        out.append(rng.choice(["Give me some tips for {}.", "What should I know about {}?", "Any advice on {}?"]).format(activity))
    for k in range(12):
        text = _text(rng, rng.randint(3, 9))
        out.append(rng.choice([
            "Summarize the following text in three bullet points:\n\n{}",
            "Rewrite this paragraph so that it sounds more formal:\n\n{}",
            "Extract all the names, places and dates mentioned in this text and list them:\n\n{}",
            "Translate this into French:\n\n{}",
            "Make this message shorter and friendlier:\n\n{}",
            "Write a reply to this email, thanking the sender:\n\n{}",
        ]).format(text))
    for topic in rng.sample(_TOPICS, 6):
        out.append(f"I need {rng.choice(_FORMS)} about {topic}. Keep it warm and personal, mention a funny moment, "
                   "and end with an encouraging line. It should be easy to read aloud and not longer than one page.")
    return out


def hard_prompts(rng: random.Random) -> list[str]:
    """Tasks where a weak model falls behind a strong one: mathematics and multi-step reasoning."""
    out = []
    for draw, templates in _MATH:
        for _ in range(24):  # 8 were too few: short questions ("remainder of 7^100 mod 13") still scored ~0.01
            out.append(rng.choice(templates).format(**draw(rng)))
    for _ in range(10):
        names = rng.sample(_NAMES, 5)
        out.append(rng.choice(_PUZZLES).format(a=names[0], b=names[1], c=names[2], d=names[3], e=names[4]))
    return out


WORD_PROBLEMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "word_problems.jsonl")


def word_problems(path: str = WORD_PROBLEMS) -> list[tuple[str, float]]:
    """Grade-school word problems written for this prior (none from a benchmark), each with the number of
    arithmetic steps its solution takes (1-8), the target rising with the steps from EASY_TARGET to
    HARD_TARGET: a weak model's errors on such problems rise with the steps, a strong model's hardly. Every
    topic occurs at every step count, so what the routers can learn from them is the count of quantities
    (the ``wp_quantities`` feature), not a vocabulary: synthetic problems from a few templates, tried
    first, taught the templates' words instead."""
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(r["prompt"], EASY_TARGET + (HARD_TARGET - EASY_TARGET) * (r["steps"] - 1) / 7) for r in rows]


def task_anchors(seed: int = 0) -> list[tuple[str, float]]:
    """(prompt, target) pairs: easy kinds of task at EASY_TARGET, hard kinds at HARD_TARGET."""
    rng = random.Random(seed)
    return [(p, EASY_TARGET) for p in easy_prompts(rng)] + [(p, HARD_TARGET) for p in hard_prompts(rng)]


def trivial_prompts() -> list[str]:
    """Synthetic anchor set: chit-chat and one-line trivia any model answers (target 0).

    The benchmark sets contain no such prompts, and short benchmark prompts (MATH
    problems) are hard, so without anchors the model extrapolates "short = hard"
    and sends "hello" to the strong model. These anchors are only a prior; they are
    never evaluated and are left out of the calibration quantiles.
    """
    greet = ["hello", "hey", "hey there", "good morning", "good evening", "yo", "hello there", "hiya", "greetings",
             "thank you", "thx", "great, thanks a lot", "ok", "cool", "bye", "see you", "nice", "lol", "sure",
             "how's it going", "what's up", "good night", "you there?", "test", "ping"]
    out = []
    for g in greet:
        out += [g, g.capitalize() + "!", g + "?", g.upper()]
    capitals = ["Germany", "Italy", "Spain", "Japan", "Canada", "Brazil", "Egypt", "India", "Kenya", "Peru"]
    out += [f"What is the capital of {c}?" for c in capitals] + [f"capital of {c}" for c in capitals]
    out += [f"What is {a} + {b}?" for a, b in [(2, 3), (7, 5), (10, 4), (1, 1), (6, 9), (12, 8)]]
    out += [f"what's {a} times {b}" for a, b in [(3, 4), (5, 6), (2, 8)]]
    animals = ["cats", "dogs", "owls", "sharks", "bees", "penguins"]
    out += [f"Tell me a fun fact about {a}." for a in animals] + [f"Do {a} sleep?" for a in animals]
    out += [f"Translate '{w}' to {lang}." for w in ("good morning", "thank you", "cat") for lang in ("French", "Spanish")]
    out += ["What color is the sky?", "How many days are in a week?", "Who wrote Hamlet?", "What is water made of?",
            "Spell 'necessary'.", "What day comes after Monday?", "Give me a synonym for happy.",
            "What's the opposite of cold?", "Is the sun a star?", "How many legs does a spider have?",
            "Recommend a good movie.", "What time zone is London in?", "Say something nice.", "Tell me a pun."]
    return out


def anchor_rows(tasks: bool = True) -> tuple[list[str], list[float]]:
    """Prompts and targets of all synthetic anchors: the trivial ones (target 0) and, with ``tasks``,
    the kinds-of-task prior above. They train as one pseudo-set, "trivial"."""
    prompts = trivial_prompts()
    y = [0.0] * len(prompts)
    if tasks:
        for p, t in task_anchors():
            prompts.append(p)
            y.append(t)
    return prompts, y
