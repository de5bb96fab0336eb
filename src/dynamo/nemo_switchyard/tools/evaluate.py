"""``switchyard eval``: how well a router routes between two models, on prompts with known outcomes."""

from __future__ import annotations

import argparse
import collections
import json
import math
from typing import Any

from .. import evaluation
from . import common, jsonl
from .jsonl import InputError
from .score import prompt_text

NAME = "eval"
HELP = "Measure a router's routing quality (APGR, CPT) for a strong/weak model pair on labeled prompts."
DESCRIPTION = """\
Score labeled prompts with a router and report, for one strong/weak model pair, the
RouteLLM metrics: APGR (area under the performance-gap-recovered curve; a random router
gets 0.5, the best possible routing on these prompts is shown as 'oracle'), CPT(50%) and
CPT(80%) (the smallest share of strong calls that recovers 50% / 80% of the quality gap),
and the PGR curve at 10% steps. Prompts with equal scores are routed as a group, split
in expectation (see dynamo.nemo_switchyard.evaluation).

Input: the format of the shared routing corpus, one JSON object per line (.jsonl or
.jsonl.gz, '-' = stdin): {"id", "prompt": str (or "messages": a chat messages list),
"outcomes": {model: quality in [0, 1]}, ...}. Prompts without an outcome for both models are
left out. Prompts with no text to score count as always sent to the strong model (the
server's fallback, by default the strong model)."""

EPILOG = """\
example:
  switchyard eval --input ../shared/data/routing/arena_hard_v1.jsonl.gz \\
      --strong gpt-4-1106-preview --weak mistralai/Mixtral-8x7B-Instruct-v0.1 --plot arena.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, metavar="FILE", help="Labeled prompts, JSONL or JSONL.gz ('-' = stdin).")
    parser.add_argument("--strong", required=True, type=_aliases, metavar="MODEL[,ALIAS...]",
                        help="The strong model's name in 'outcomes'; comma-separated aliases: the first one a line has is used.")
    parser.add_argument("--weak", required=True, type=_aliases, metavar="MODEL[,ALIAS...]", help="The weak model, likewise.")
    parser.add_argument("--plot", metavar="PNG", help='Also write a PNG of quality against strong-call share (needs matplotlib: pip install -e ".[plot]").')
    parser.add_argument("--json", action="store_true", help="Print JSON (summary and the full curve at 1%% steps) instead of text.")
    common.add_common_arguments(parser)


def _aliases(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("needs a model name")
    return names


def read_labeled(path: str, scope: str = "last-user") -> list[dict[str, Any]]:
    """Rows ``{"prompt": text to score, "outcomes": {...}, "line": n}``; InputError names the bad line."""
    name = jsonl.display_name(path)
    rows = []
    for lineno, row in jsonl.read_objects(path):
        where = f"{name}:{lineno}"
        text = prompt_text(row, scope, where, require_id=False)  # type: ignore[arg-type]
        outcomes = row.get("outcomes")
        if not isinstance(outcomes, dict):
            raise InputError(f'{where}: missing "outcomes" (an object of model name -> quality in [0, 1])')
        rows.append({**row, "prompt": text, "outcomes": outcomes, "line": lineno})
    if not rows:
        raise InputError(f"{name}: no prompts (the file is empty)")
    return rows


def pair(rows: list[dict[str, Any]], strong: list[str], weak: list[str], path: str) -> tuple[list[str], list[float], list[float]]:
    """``evaluation.pair_rows`` with checked outcome values and a helpful error when a name matches nothing."""
    name = jsonl.display_name(path)
    for row in rows:
        for aliases in (strong, weak):
            for alias in aliases:
                value = row["outcomes"].get(alias)
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise InputError(f"{name}:{row['line']}: outcome of {alias!r} must be a number, got {value!r}")
                break
    prompts, q_strong, q_weak = evaluation.pair_rows(rows, strong, weak)
    if not prompts:
        counts = collections.Counter(model for row in rows for model in row["outcomes"])
        listed = ", ".join(f"{model} ({count})" for model, count in counts.most_common(40))
        raise InputError(
            f"{name}: no prompt has outcomes for both --strong {','.join(strong)} and --weak {','.join(weak)}; "
            f"models in the file (prompts): {listed or 'none'}"
        )
    return prompts, q_strong, q_weak


def run(args: argparse.Namespace) -> int:
    settings = common.tool_settings(args)
    if args.plot:
        from . import plot

        plot.require()
    rows = read_labeled(args.input, settings.prompt_scope)
    prompts, q_strong, q_weak = pair(rows, args.strong, args.weak, args.input)
    router = common.build_router(settings)
    try:
        scored = common.score_texts(router, prompts, args.batch_size, common.progress_shown(args))
    finally:
        router.close()
    scores = [math.inf if score is None else score for score in scored]  # no text: the fallback (strong) model
    try:
        curve = evaluation.pgr_curve(scores, q_strong, q_weak)
        gains = [s - w for s, w in zip(q_strong, q_weak)]  # the oracle: routes by the true gain
        oracle = evaluation.pgr_curve(gains, q_strong, q_weak)
    except ValueError as exc:
        raise InputError(f"{jsonl.display_name(args.input)}: {exc}") from None
    n = len(prompts)
    summary = {
        "router": settings.router_type,
        "strong": _used(rows, args.strong),
        "weak": _used(rows, args.weak),
        "n": n,
        "skipped": len(rows) - n,
        "unscored": sum(score is None for score in scored),
        "q_strong": curve[-1][1],
        "q_weak": curve[0][1],
        "apgr": evaluation.apgr(scores, q_strong, q_weak),
        "oracle_apgr": evaluation.apgr(gains, q_strong, q_weak),
        "cpt50": evaluation.cpt(curve, 0.5),
        "cpt80": evaluation.cpt(curve, 0.8),
    }
    if args.json:
        summary["curve"] = [_at(curve, step / 100) for step in range(101)]
        print(json.dumps(summary))
    else:
        _print_text(summary, curve)
    if args.plot:
        from . import plot

        title = (f"{settings.router_type}: APGR {summary['apgr']:.3f} (random 0.500, oracle {summary['oracle_apgr']:.3f}), "
                 f"{n} prompts")
        plot.quality_curve(args.plot, curve, strong=str(summary["strong"]), weak=str(summary["weak"]), router=settings.router_type,
                           summary=title, oracle=oracle)
        if not args.quiet:
            common.note(f"wrote {args.plot}")
    return 0


def _used(rows: list[dict[str, Any]], aliases: list[str]) -> str:
    """The alias(es) that matched, for display."""
    found = [alias for alias in aliases if any(row["outcomes"].get(alias) is not None for row in rows)]
    return ",".join(found) or ",".join(aliases)


def _at(curve: list[tuple[float, float, float]], share: float) -> dict[str, float]:
    n = len(curve) - 1
    point = curve[round(share * n)]
    return {"share": point[0], "quality": point[1], "pgr": point[2]}


def _print_text(summary: dict[str, Any], curve: list[tuple[float, float, float]]) -> None:
    def share(value: float | None) -> str:
        return "never" if value is None else f"{value:.1%}"

    skipped = f" ({summary['skipped']} left out: no outcome for both models)" if summary["skipped"] else ""
    print(f"router {summary['router']}: {summary['n']} prompts{skipped}")
    print(f"  strong {summary['strong']}: mean quality {summary['q_strong']:.4f}")
    print(f"  weak   {summary['weak']}: mean quality {summary['q_weak']:.4f}")
    if summary["unscored"]:
        print(f"  {summary['unscored']} prompts with no text to score counted as sent to the strong model")
    print()
    print(f"APGR      {summary['apgr']:.4f}   (random 0.5000, oracle {summary['oracle_apgr']:.4f})")
    print(f"CPT(50%)  {share(summary['cpt50'])}   (random 50.0%)")
    print(f"CPT(80%)  {share(summary['cpt80'])}   (random 80.0%)")
    print()
    print(f"{'strong calls':>12}  {'quality':>8}  {'PGR':>7}  {'random PGR':>10}")
    for step in range(11):
        point = _at(curve, step / 10)
        print(f"{point['share']:>12.1%}  {point['quality']:>8.4f}  {point['pgr']:>7.3f}  {point['share']:>10.3f}")
