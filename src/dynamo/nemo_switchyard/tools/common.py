"""What the tools share: building the router as the server does, and batched scoring."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ..config import Settings, load_settings
from ..routers.base import Router, RouterError
from .progress import Bar

# Settings the tools take, with the same flags, environment variables and config-file keys as the server.
ROUTER_FIELDS = ("router_type", "checkpoint_path", "router_options", "random_seed")
PROMPT_FIELDS = ("prompt_scope",)
DEFAULT_BATCH_SIZE = 256


def add_common_arguments(parser: argparse.ArgumentParser, batch: bool = True) -> None:
    if batch:
        parser.add_argument(
            "--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
            help=f"Prompts per router call [default: {DEFAULT_BATCH_SIZE}]. Prompts are batched by length (less padding "
            "for learned routers); the output keeps the input order.",
        )
    parser.add_argument("-q", "--quiet", action="store_true", help="No progress bar (it is drawn on stderr, and only on a terminal).")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def tool_settings(args: argparse.Namespace) -> Settings:
    """Validated settings from the tool's flags, environment and ``--config`` file, as the server reads them.

    The backend models do not matter to the tools; placeholders stand in for them.
    """
    values: dict[str, Any] = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    values.setdefault("strong_model", "unused")
    values.setdefault("weak_model", "unused")
    return load_settings(values, getattr(args, "config", None))


def build_router(settings: Settings) -> Router:
    """The configured router, built exactly as the server builds it (options, seed, checkpoint, errors)."""
    from .. import decision

    return decision.build_router(settings, settings.router_type)


def score_texts(router: Router, texts: Sequence[str], batch_size: int, show_progress: bool) -> list[float | None]:
    """Scores in input order; ``None`` for texts with nothing to score (the server's ``empty_prompt`` fallback)."""
    from ..scoring import _checked

    scores: list[float | None] = [None] * len(texts)
    todo = sorted((i for i, text in enumerate(texts) if text.strip()), key=lambda i: len(texts[i]))
    with Bar(len(todo), "scoring", show_progress) as bar:
        for start in range(0, len(todo), batch_size):
            indexes = todo[start : start + batch_size]
            batch = [texts[i] for i in indexes]
            try:
                got = _checked(router.score_batch(batch), len(batch))
            except RouterError:
                raise
            except Exception as exc:
                raise RouterError(f"router {router.name!r} failed: {exc!r}") from exc
            for i, score in zip(indexes, got):
                scores[i] = score
            bar.update(len(batch))
    return scores


def progress_shown(args: argparse.Namespace) -> bool:
    from .progress import enabled

    return enabled(args.quiet)


def note(message: str) -> None:
    """A line for the user on stderr (stdout may be the data)."""
    print(f"switchyard: {message}", file=sys.stderr)
