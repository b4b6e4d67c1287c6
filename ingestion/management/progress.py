"""Progress bars and log handling shared by the bulk commands (`import_events`, `seed_demo`)."""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

# `ingest_points` logs one line per batch: right for HTTP, noise under a progress bar.
BATCH_LOGGER = "analytics.services.points"


def progress_bar(
    *, total: int, unit: str, desc: str, verbosity: int, stream: TextIO | None = None
) -> "tqdm[NoReturn]":
    """Return a progress bar on stderr (stdout keeps only the command's result); none at -v 0,
    and none when stderr is not a terminal (`make run > log 2>&1`): a bar redraws itself with
    carriage returns, which a log file keeps as hundreds of lines."""
    stream = stream or sys.stderr
    return tqdm(
        total=total,
        unit=unit,
        unit_scale=True,
        unit_divisor=1024 if unit == "B" else 1000,
        desc=desc,
        file=stream,
        disable=verbosity == 0 or not stream.isatty(),
        dynamic_ncols=True,
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
