"""``switchyard score``: score a JSONL file of prompts with a router, as the server would."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..prompt import PromptError, extract_prompt
from . import common, jsonl
from .jsonl import InputError

NAME = "score"
HELP = "Score prompts from a JSONL file with a router (no server)."
DESCRIPTION = """\
Score every prompt of a JSONL file with a router, exactly as the server would: same router
construction (--router-type, --checkpoint-path, --router-options, --random-seed, --config and
SWITCHYARD_* variables) and same prompt extraction (--prompt-scope).

Input: one JSON object per line with "id" and either "prompt" (a string, as in a completions
body) or "messages" (a chat body's messages list; chat extraction: by default the text of the
last user message). Blank lines are skipped. A bad line stops the run before anything is
scored, with its line number: prompts.jsonl:17: missing "prompt" or "messages".

Output: each input object, unchanged, plus "score" (a float in [0, 1]; higher = needs the
strong model more), in input order. A prompt with no text to score (e.g. only an image, or no
user message) gets "score": null: the server sends such requests to the fallback model.

'-' reads stdin / writes stdout; .gz files are read and written gzipped."""

EPILOG = """\
examples:
  switchyard score --input prompts.jsonl --output scores.jsonl
  cat prompts.jsonl | switchyard score --router-type random --input - --output - | head"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True, metavar="FILE", help="Prompts, JSONL ('-' = stdin).")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="Where to write the scored lines ('-' = stdout).")
    common.add_common_arguments(parser)


def read_prompts(path: str, scope: str, require_id: bool = True) -> tuple[list[dict[str, Any]], list[str]]:
    """Input objects and the text the server would score for each; InputError names the bad line."""
    name = jsonl.display_name(path)
    rows: list[dict[str, Any]] = []
    texts: list[str] = []
    for lineno, row in jsonl.read_objects(path):
        texts.append(prompt_text(row, scope, f"{name}:{lineno}", require_id))
        rows.append(row)
    if not rows:
        raise InputError(f"{name}: no prompts (the file is empty)")
    return rows, texts


def prompt_text(row: dict[str, Any], scope: str, where: str, require_id: bool = True) -> str:
    if require_id and "id" not in row:
        raise InputError(f'{where}: missing "id"')
    try:
        if "messages" in row:
            return extract_prompt("chat", row, scope)  # type: ignore[arg-type]
        if "prompt" in row:
            prompt = row["prompt"]
            if not isinstance(prompt, (str, list)):
                raise PromptError(f'"prompt" must be a string, not {jsonl._kind(prompt)}')
            return extract_prompt("completions", row, scope)  # type: ignore[arg-type]
    except PromptError as exc:
        raise InputError(f"{where}: {exc}") from None
    raise InputError(f'{where}: missing "prompt" or "messages"')


def run(args: argparse.Namespace) -> int:
    settings = common.tool_settings(args)
    rows, texts = read_prompts(args.input, settings.prompt_scope)
    router = common.build_router(settings)
    try:
        started = time.perf_counter()
        scores = common.score_texts(router, texts, args.batch_size, common.progress_shown(args))
        elapsed = time.perf_counter() - started
    finally:
        router.close()
    dumps = jsonl.dumps
    with jsonl.open_output(args.output) as out:
        out.writelines(dumps({**row, "score": score}) for row, score in zip(rows, scores))
    unscored = sum(score is None for score in scores)
    if not args.quiet:
        rate = (len(rows) - unscored) / elapsed if elapsed > 0 else float("inf")
        common.note(
            f"scored {len(rows) - unscored} prompts with router {settings.router_type!r} in {elapsed:.2f}s ({rate:,.0f}/s)"
            + (f"; {unscored} with no text to score got score null" if unscored else "")
        )
    return 0
