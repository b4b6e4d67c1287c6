"""A staticfiles finder that serves Plotly.js from the `plotly` package's bundled file.

The file is never copied into the repository: collectstatic and WhiteNoise both find
it here as `plotly/plotly.min.js`, and pages work with no internet (no CDN).
"""

from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal, overload

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage


def _plotly_dir() -> Path:
    # Located, not imported: the plotly Python package is large and the web needs one file.
    spec = find_spec("plotly")
    if spec is None or spec.origin is None:
        raise RuntimeError("the plotly package is not installed (see requirements.txt)")
    return Path(spec.origin).resolve().parent / "package_data"


PLOTLY_DIR = _plotly_dir()
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

    @overload
    def find(self, path: str, find_all: Literal[False] = False) -> str | None: ...

    @overload
    def find(self, path: str, find_all: Literal[True]) -> list[str]: ...

    def find(self, path: str, find_all: bool = False) -> str | list[str] | None:
        if path != f"{PREFIX}/{PLOTLY_FILE}":
            return [] if find_all else None
        match = str(PLOTLY_DIR / PLOTLY_FILE)
        return [match] if find_all else match

    def list(self, ignore_patterns: Any) -> Any:
        yield PLOTLY_FILE, self.storage
