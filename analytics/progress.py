"""Progress bars and log handling shared by the bulk commands (`import_events`, `seed_demo`, `reembed`)."""

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

# `ingest_points` logs one line per batch: right for HTTP, noise under a progress bar.
BATCH_LOGGER = "analytics.services.points"


class _PlainLines:
    """A stream for a bar whose output is not a terminal (`make run > log 2>&1`): the bar's
    redraws, each after a carriage return, would pile up in the log. Instead its state
    is written as a plain line at most once every `every` seconds while it runs, and its
    final state always, so an hour-long `reembed` logs where it is once a minute and a quick
    import one line."""

    def __init__(self, stream: TextIO, every: float) -> None:
        self.stream = stream
        self.every = every
        self.last = ""  # the newest state not written yet
        self.written = ""
        self.written_at = time.monotonic()

    def write(self, text: str) -> int:
        for part in text.split("\r"):
            if "\n" in part:
                if self.last:
                    self._line(self.last)
            elif part.strip() and _done(part) != _done(self.written):
                # (Closing redraws the last state with a newer rate: not worth a line.)
                self.last = part.strip()
                if time.monotonic() - self.written_at >= self.every:
                    self._line(self.last)
        return len(text)

    def _line(self, state: str) -> None:
        self.stream.write(state + "\n")
        self.last, self.written = "", state
        self.written_at = time.monotonic()

    def flush(self) -> None:
        self.stream.flush()


def _done(state: str) -> str:
    """Return a bar's state without its times and rate (`x: 45%|###| 9/20 [00:10<00:12, …]`)."""
    return state.strip().rsplit(" [", 1)[0]


def progress_bar(
    *,
    total: int,
    unit: str,
    desc: str,
    verbosity: int,
    stream: TextIO | None = None,
    line_every: float = 60.0,
) -> "tqdm[NoReturn]":
    """Return a progress bar on stderr (stdout keeps only the command's result); none at -v 0.

    When stderr is not a terminal the bar writes plain lines instead of redraws: its state
    at most once every `line_every` seconds, and its final state.
    """
    stream = stream or sys.stderr
    terminal = stream.isatty()
    return tqdm(
        total=total,
        unit=unit,
        unit_scale=True,
        unit_divisor=1024 if unit == "B" else 1000,
        desc=desc,
        file=stream if terminal else _PlainLines(stream, line_every),
        disable=verbosity == 0,
        dynamic_ncols=terminal,
        ncols=None if terminal else 100,
        # Redraws nobody sees are not worth their time. (tqdm's monitor thread may redraw
        # more often than this: the lines keep their own clock as well.)
        mininterval=0.1 if terminal else line_every,
    )


@contextmanager
def batch_logs(verbosity: int) -> Iterator[None]:
    """Hide the per-batch log lines of `ingest_points`, or, at -v 2 and up, print them
    above the progress bar instead of through it."""
    if verbosity >= 2:
        with logging_redirect_tqdm(loggers=[logging.getLogger("analytics")]):
            yield
        return
    batch_logger = logging.getLogger(BATCH_LOGGER)
    previous = batch_logger.level
    batch_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        batch_logger.setLevel(previous)
