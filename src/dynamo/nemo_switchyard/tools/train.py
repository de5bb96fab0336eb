"""``switchyard train``: train the learned router's head on your own labeled traffic."""

from __future__ import annotations

import argparse
import importlib
import json
import os

from . import common
from .evaluate import _aliases, pair, read_labeled
from .jsonl import ToolError
from .progress import Reporter

NAME = "train"
HELP = "Train the learned router on labeled prompts; writes a checkpoint for --checkpoint-path."
DESCRIPTION = """\
Train the learned router's head on your own labeled prompts for one strong/weak model pair,
and write a checkpoint folder. Serve it with --checkpoint-path DIR (with the learned router
as --router-type); measure it with 'switchyard eval --checkpoint-path DIR ...' on prompts
that were not used for training.

Input: the format of 'switchyard eval' (the shared routing corpus format): one JSON object
per line with "prompt" (or "messages") and "outcomes": {model: quality in [0, 1]}. Only
prompts with outcomes for both models are used."""

EPILOG = """\
example:
  switchyard train --input my_traffic.jsonl.gz --strong gpt-4o --weak gpt-4o-mini --output ./my-router
  switchyard serve --checkpoint-path ./my-router --strong-model gpt-4o --weak-model gpt-4o-mini ..."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, metavar="FILE", help="Labeled prompts, JSONL or JSONL.gz ('-' = stdin).")
    parser.add_argument("--strong", required=True, type=_aliases, metavar="MODEL[,ALIAS...]",
                        help="The strong model's name in 'outcomes'; comma-separated aliases: the first one a line has is used.")
    parser.add_argument("--weak", required=True, type=_aliases, metavar="MODEL[,ALIAS...]", help="The weak model, likewise.")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="Checkpoint folder to write (created if missing).")
    parser.add_argument("--json", action="store_true", help="Print the training report as JSON.")
    common.add_common_arguments(parser, batch=False)


def run(args: argparse.Namespace) -> int:
    settings = common.tool_settings(args)
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise ToolError(f"--output {args.output} exists and is not a folder")
    rows = read_labeled(args.input, settings.prompt_scope)
    pair(rows, args.strong, args.weak, args.input)  # fail early, with the models in the file, when a name matches nothing
    try:
        training = importlib.import_module(f"{__package__.rpartition('.')[0]}.training")
    except ImportError as exc:
        raise ToolError(f"training is not available in this install: {exc}") from None
    strong = args.strong[0] if len(args.strong) == 1 else args.strong
    weak = args.weak[0] if len(args.weak) == 1 else args.weak
    for row in rows:
        row.pop("line", None)
    reporter = Reporter(common.progress_shown(args))
    try:
        report = training.train_checkpoint(rows, strong, weak, args.output, progress=reporter)
    finally:
        reporter.close()
    if args.json:
        print(json.dumps({"output": args.output, **report}))
        return 0
    print(f"wrote checkpoint {args.output} (trained on {report.get('n')} prompts)")
    for key, label in (("apgr", "APGR"), ("cpt50", "CPT(50%)"), ("cpt80", "CPT(80%)")):
        value = report.get(key)
        if isinstance(value, float) and key != "apgr":
            print(f"  {label:<9} {value:.1%}")
        elif isinstance(value, (int, float)):
            print(f"  {label:<9} {value:.4f}")
    extra = {key: value for key, value in report.items() if key not in ("n", "apgr", "cpt50", "cpt80")}
    for key, value in extra.items():
        print(f"  {key}: {value}")
    print(f"serve it with: switchyard serve --checkpoint-path {args.output} ...")
    return 0
