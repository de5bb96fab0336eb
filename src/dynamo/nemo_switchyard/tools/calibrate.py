"""``switchyard calibrate``: the threshold that sends a chosen share of prompts to the strong model."""

from __future__ import annotations

import argparse
import bisect
import json
from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from ..routers import registry
from . import common
from .jsonl import InputError
from .score import read_prompts

NAME = "calibrate"
HELP = "Find the threshold that sends a given share of your prompts to the strong model."
DESCRIPTION = """\
Score your prompts (same input format and options as 'switchyard score') and print the
threshold that sends --strong-fraction of them to the strong model (a prompt goes to strong
when score >= threshold), then a table for 10% to 90%. Use the threshold as --threshold,
or in the model name router-<router>-<threshold> of RouteLLM-style clients.

Ties: prompts with equal scores always go the same way, so when many prompts share a score
(identical prompts always do; coarse routers often) not every share can be hit exactly. The
threshold chosen is the one whose actual share on these prompts is closest to the target
(the smaller share when two are equally close); the 'actual' column shows what it gives.
Each threshold printed is the shortest decimal that lies above the next lower score and at
most the score it admits, so it is exact on these prompts and robust to rounding.

Prompts with no text to score (score null in 'switchyard score') are left out: the server
sends them to the fallback model whatever the threshold."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, metavar="FILE", help="Prompts, JSONL as for 'switchyard score' ('-' = stdin).")
    parser.add_argument(
        "--strong-fraction", type=_fraction, default=None, metavar="F",
        help="Share of prompts to send to the strong model, in [0, 1] (e.g. 0.3 = 30%%); without it, only the table.",
    )
    parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")
    common.add_common_arguments(parser)


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (or 0% and 100%), got {text!r}")
    return value


def shortest_between(low: float, high: float) -> float:
    """The shortest decimal ``d`` with ``low < d <= high`` (``high`` itself at worst)."""
    exact = Decimal(high)
    for places in range(18):
        for rounding in (ROUND_HALF_EVEN, ROUND_FLOOR):  # nearest first: 0.7 is a hair below 7/10 as a float
            candidate = float(exact.quantize(Decimal(1).scaleb(-places), rounding=rounding))
            if low < candidate <= high:
                return candidate
    return high


def thresholds(scores: Sequence[float]) -> list[tuple[float, int]]:
    """Every achievable split: ``(threshold, prompts with score >= threshold)``, from 0 strong calls up to all."""
    values = sorted(set(scores), reverse=True)
    ordered = sorted(scores)
    n = len(ordered)
    options: list[tuple[float, int]] = []
    if values[0] < 1.0:
        options.append((shortest_between(values[0], 1.0), 0))
    for index, value in enumerate(values):
        lower = values[index + 1] if index + 1 < len(values) else -1.0  # the lowest score: 0 admits it
        options.append((shortest_between(lower, value), n - bisect.bisect_left(ordered, value)))
    return options


def pick(options: list[tuple[float, int]], n: int, fraction: float) -> tuple[float, int]:
    """The option whose share is closest to ``fraction`` (the smaller share on a tie)."""
    return min(options, key=lambda option: (abs(option[1] / n - fraction), option[1]))


def run(args: argparse.Namespace) -> int:
    settings = common.tool_settings(args)
    _, texts = read_prompts(args.input, settings.prompt_scope, require_id=False)
    router = common.build_router(settings)
    try:
        scored = common.score_texts(router, texts, args.batch_size, common.progress_shown(args))
    finally:
        router.close()
    scores = [score for score in scored if score is not None]
    if not scores:
        raise InputError(f"{args.input}: no prompt has text to score")
    n = len(scores)
    options = thresholds(scores)
    targets = [step / 10 for step in range(1, 10)]
    table = []
    for target in targets:
        threshold, count = pick(options, n, target)
        table.append({"target": target, "threshold": threshold, "strong": count, "actual": count / n})
    chosen = None
    if args.strong_fraction is not None:
        threshold, count = pick(options, n, args.strong_fraction)
        chosen = {"target": args.strong_fraction, "threshold": threshold, "strong": count, "actual": count / n}
    if args.json:
        print(json.dumps({"router": settings.router_type, "n": n, "unscored": len(scored) - n, "threshold": chosen, "table": table}))
        return 0
    if chosen is not None:
        print(
            f"threshold {chosen['threshold']} sends {chosen['actual']:.1%} of these prompts ({chosen['strong']} of {n}) "
            f"to the strong model (target {chosen['target']:.1%}; router {settings.router_type})"
        )
        if settings.router_type in registry.names():
            print(f"  serve with --router-type {settings.router_type} --threshold {chosen['threshold']}, "
                  f"or ask for model router-{settings.router_type}-{chosen['threshold']}")
        print()
    print(f"{'target':>7}  {'threshold':>12}  {'actual':>7}  {'strong':>8}")
    for row in table:
        print(f"{row['target']:>7.0%}  {row['threshold']!s:>12}  {row['actual']:>7.1%}  {row['strong']:>8}")
    if len(scored) > n:
        common.note(f"{len(scored) - n} prompts with no text to score were left out (they go to the fallback model)")
    return 0
