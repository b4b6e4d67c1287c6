"""Progress bars and log handling shared by the bulk commands (`import_events`, `seed_demo`, `reembed`)."""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

# `ingest_points` logs one line per batch: right for HTTP, noise under a progress bar.
BATCH_LOGGER = "analytics.services.points"


class _FinalLine:
    """A stream for a bar whose output is not a terminal: keep only the bar's last state and
    write it once, as a plain line, when the bar ends (tqdm then writes its newline)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> int:
        for part in text.split("\r"):
            if "\n" in part:
                self.stream.write(self.last.strip() + "\n")
                self.last = ""
            elif part.strip():
                self.last = part
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(
    *, total: int, unit: str, desc: str, verbosity: int, stream: TextIO | None = None
) -> "tqdm[NoReturn]":
    """Return a progress bar on stderr (stdout keeps only the command's result); none at -v 0.

    When stderr is not a terminal (`make run > log 2>&1`) the bar's redraws, each a
    carriage return, would pile up as hundreds of lines: only its final line is written.
    """
    stream = stream or sys.stderr
    terminal = stream.isatty()
    return tqdm(
        total=total,
        unit=unit,
        unit_scale=True,
        unit_divisor=1024 if unit == "B" else 1000,
        desc=desc,
        file=stream if terminal else _FinalLine(stream),
        disable=verbosity == 0,
        dynamic_ncols=terminal,
        ncols=None if terminal else 100,
        # Redraws nobody sees are not worth their time.
        mininterval=0.1 if terminal else 60.0,
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
