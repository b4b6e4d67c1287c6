"""SQL statements recorded by silk: fingerprints (literals removed), and EXPLAIN of plain SELECTs only.

EXPLAIN never runs with ANALYZE, so the statement itself is never executed; on top of that
it runs only for a single SELECT free of data-modifying parts, inside a read-only
transaction with a statement timeout, rolled back afterwards.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections, transaction
from sqlparse import lexer
from sqlparse import tokens as T

# Words that make a statement more than a read: data-modifying CTEs, SELECT ... INTO,
# row locks (FOR UPDATE / FOR SHARE hold locks), and anything that is not a query at all.
FORBIDDEN_WORDS = frozenset(
    {
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "UPSERT",
        "REPLACE",
        "INTO",
        "COPY",
        "SHARE",
        "TRUNCATE",
        "CREATE",
        "ALTER",
        "DROP",
        "GRANT",
        "REVOKE",
        "CALL",
        "DO",
        "SET",
        "RESET",
        "LOCK",
        "VACUUM",
        "ANALYZE",
        "EXPLAIN",
        "NOTIFY",
        "LISTEN",
        "PREPARE",
        "EXECUTE",
        "DECLARE",
        "REFRESH",
        "CLUSTER",
        "REINDEX",
        "COMMIT",
        "ROLLBACK",
        "BEGIN",
    }
)
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_ARRAY = re.compile(r"ARRAY\s*\[\s*\?(?:\s*,\s*\?)*\s*\]", re.I)
_ROWS = re.compile(r"\(\?\)(?:\s*,\s*\(\?\))+")
_SPACE = re.compile(r"\s+")
_DEFAULT_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class Plan:
    """The plan of a statement, or why there is none."""

    text: str | None
    note: str | None


def _tokens(sql: str) -> Iterator[tuple[Any, str]]:
    """Yield (token type, text) pairs of `sql` from sqlparse's lexer, ungrouped (fast)."""
    yield from lexer.tokenize(sql)  # type: ignore[no-untyped-call]


def _is_literal(ttype: object) -> bool:
    # T.Literal itself is what the lexer calls dollar-quoted strings.
    return ttype in T.Literal.String.Single or ttype in T.Literal.Number or ttype is T.Literal


def fingerprint(sql: str) -> str:
    """Return `sql` with comments and literals removed, keywords upper-cased and lists collapsed.

    Statements that differ only in their values (ids, times, IN-lists) share a fingerprint.
    """
    parts: list[str] = []
    for ttype, value in _tokens(sql):
        if ttype in T.Comment:
            continue
        if ttype in T.Whitespace or ttype in T.Newline:
            parts.append(" ")
        elif _is_literal(ttype):
            if parts and parts[-1] in ("E", "e"):  # E'...' escape strings
                parts.pop()
            parts.append("?")
        elif ttype in T.Keyword or ttype in T.Name.Builtin:
            parts.append(value.upper())
        else:
            parts.append(value)
    text = _SPACE.sub(" ", "".join(parts)).strip().rstrip(";").strip()
    text = _ARRAY.sub("ARRAY[?]", text)
    text = _LIST.sub("(?)", text)
    return _ROWS.sub("(?)", text)


def explain_refusal(sql: str) -> str | None:
    """Return why `sql` must not be explained, or None when it is a single plain SELECT."""
    words: list[str] = []
    for ttype, value in _tokens(sql):
        if ttype in T.Punctuation and value == ";":
            return "it contains ';' (more than one statement)"
        if ttype in T.Keyword:  # DML, DDL and CTE keywords included; names (replace()) not
            words.append(value.upper())
    if not words or words[0] not in ("SELECT", "WITH"):
        return "it is not a SELECT"
    forbidden = sorted(FORBIDDEN_WORDS.intersection(words))
    if forbidden:
        return f"it is not a plain read (it has {', '.join(forbidden)})"
    return None


class _RolledBack(Exception):
    """Leaves the EXPLAIN transaction by rolling it back, carrying the plan out."""

    def __init__(self, plan: str) -> None:
        super().__init__(plan)
        self.plan = plan


def explain(sql: str, *, timeout_ms: int = _DEFAULT_TIMEOUT_MS, using: str = "default") -> Plan:
    """Return the plan of `sql` (EXPLAIN, never ANALYZE), or a note saying why there is none."""
    refusal = explain_refusal(sql)
    if refusal is not None:
        return Plan(text=None, note=f"not explained: {refusal}")
    connection = connections[using]
    try:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            # Read-only and time-bound even though EXPLAIN without ANALYZE runs nothing;
            # both are undone by the rollback below (also inside an outer transaction).
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout_ms)])
            # The statement is the object of EXPLAIN, so it cannot be a bound parameter;
            # explain_refusal has established that it is one plain SELECT. Without
            # parameters the driver leaves its % signs alone.
            cursor.execute("EXPLAIN (FORMAT TEXT) " + sql)
            plan = "\n".join(str(row[0]) for row in cursor.fetchall())
            raise _RolledBack(plan)
    except _RolledBack as done:
        return Plan(text=done.plan, note=None)
    except DatabaseError as exc:
        return Plan(text=None, note=f"EXPLAIN failed: {str(exc).strip()}")
