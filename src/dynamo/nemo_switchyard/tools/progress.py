"""Progress bars on stderr for long work: shown only on a terminal, never with ``--quiet``.

tqdm draws them when it is installed; without it (or off a terminal) the bar is a no-op,
so output files and pipes never contain progress noise.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, Self


def enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


class Bar:
    """``with Bar(total, "scoring", show) as bar: bar.update(n)``."""

    def __init__(self, total: int | None, description: str, show: bool, unit: str = "prompt") -> None:
        self._bar: Any = None
        if show:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class Reporter:
    """A progress callback for library code: ``report(stage, done, total)``, one bar per stage (stderr, TTY only).

    Passed as ``progress=`` to ``training.train_checkpoint``; a new ``stage`` closes the
    previous bar. ``total`` may be None (unknown).
    """

    def __init__(self, show: bool) -> None:
        self._show = show
        self._stage: str | None = None
        self._bar: Bar | None = None
        self._done = 0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        """``report(stage, done, total)``; ``report(done, total)`` (stage "training") and keywords work too."""
        values = list(args)
        stage = values.pop(0) if values and isinstance(values[0], str) else "training"
        stage = kwargs.get("stage", stage)
        done = int(kwargs.get("done", values[0] if values else 0))
        total = kwargs.get("total", values[1] if len(values) > 1 else None)
        if stage != self._stage or self._bar is None:
            self.close()
            self._stage, self._done = stage, 0
            self._bar = Bar(total, stage, self._show, unit="it")
        if done > self._done:
            self._bar.update(done - self._done)
            self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
