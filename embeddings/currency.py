"""The one rule for whether an item's embedding is current, as SQL every reader and writer shares.

An embedding is current when it was computed from the item's present content hash with
the current model. Otherwise it is stale while an older vector is still stored (it stays
searchable until replaced, e.g. after `reembed --force`), and pending when none is.
"""

from enum import StrEnum


class EmbeddingState(StrEnum):
    CURRENT = "current"
    STALE = "stale"  # a vector of older text or another model, still searchable
    PENDING = "pending"  # no vector yet


def needs_embedding_sql(
    *, model: str = "%(model)s", alias: str = "", content_hash: str | None = None
) -> str:
    """Return the SQL condition "this row needs an embedding with the model bound at `model`".

    `model` is the placeholder of the current model's name (`%(model)s` or `%s`);
    `alias` qualifies the columns (`i` gives `i.embedded_hash`); `content_hash` names
    the hash to test instead of the row's own (an upsert tests the incoming one).
    """
    column = f"{alias}." if alias else ""
    content = content_hash or f"{column}content_hash"
    return f"({column}embedded_hash <> {content} OR {column}embedding_model <> {model})"


def embedding_state_sql(*, model: str = "%(model)s") -> str:
    """Return a SQL expression giving the row's EmbeddingState as text."""
    return (
        f"CASE WHEN NOT {needs_embedding_sql(model=model)} THEN '{EmbeddingState.CURRENT}'"
        f" WHEN embedding IS NOT NULL THEN '{EmbeddingState.STALE}'"
        f" ELSE '{EmbeddingState.PENDING}' END"
    )
