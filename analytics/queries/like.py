"""LIKE patterns that match user text literally, for every app's substring searches."""


def escape_like(text: str) -> str:
    """Return `text` with LIKE's wildcards and escape character escaped (PostgreSQL's `\\`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_pattern(text: str) -> str:
    """Return the LIKE pattern of values containing `text`."""
    return f"%{escape_like(text)}%"


def prefix_pattern(text: str) -> str:
    """Return the LIKE pattern of values starting with `text`."""
    return f"{escape_like(text)}%"
