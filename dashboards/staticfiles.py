"""A staticfiles finder that serves Plotly.js from the `plotly` package's bundled file.

The file is never copied into the repository: collectstatic and WhiteNoise both find
it here as `plotly/plotly.min.js`, and pages work with no internet (no CDN).
"""

from pathlib import Path
from typing import Any

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_DIR = Path(plotly.__file__).resolve().parent / "package_data"
PLOTLY_FILE = "plotly.min.js"
PREFIX = "plotly"


class PlotlyFinder(BaseFinder):
    """Find `plotly/plotly.min.js` (and only that) in the installed plotly package."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=PLOTLY_DIR)
        # collectstatic and WhiteNoise put a storage's files under its `prefix`.
        self.storage.prefix = PREFIX  # type: ignore[attr-defined]

    def check(self, **kwargs: Any) -> list[Any]:
        return []

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str]:
        if path != f"{PREFIX}/{PLOTLY_FILE}":
            return [] if find_all else ""
        match = str(PLOTLY_DIR / PLOTLY_FILE)
        return [match] if find_all else match

    def list(self, ignore_patterns: Any) -> Any:
        yield PLOTLY_FILE, self.storage
