"""The one rule for whether an item's embedding is current, as SQL every reader and writer shares.

An embedding is current when it was computed from the item's present content hash with
the current model. Otherwise it is stale while an older vector is still stored (it stays
searchable until replaced, e.g. after `reembed --force`), and pending when none is.

Whether the incremental path (the embedding tasks and the sweep) must compute an item is
that rule minus the work a bulk run (`embeddings.bulk`) has taken over: an item planned
in the run's next vectors, or whose next vector already matches its content, is left to
it, and so is a vector of the served model while a model change waits for `reembed`.
"""

from enum import StrEnum


class EmbeddingState(StrEnum):
    CURRENT = "current"
    STALE = "stale"  # a vector of older text or another model, still searchable
    PENDING = "pending"  # no vector yet


def needs_embedding_sql(
    *,
    model: str = "%(model)s",
    alias: str = "",
    content_hash: str | None = None,
    state_only: bool = False,
) -> str:
    """Return the SQL condition "this row needs an embedding with the model bound at `model`".

    `model` is the placeholder of the current model's name (`%(model)s` or, with
    `state_only`, `%s`); `alias` qualifies the columns (`i` gives `i.embedded_hash`);
    `content_hash` names the hash to test instead of the row's own (an upsert tests the
    incoming one). `state_only` gives the plain rule, for showing an item's state; the
    default also leaves out what a bulk run or a pending model change takes care of,
    which repeats the placeholder, so it must be a named one.
    """
    column = f"{alias}." if alias else ""
    content = content_hash or f"{column}content_hash"
    stale = f"({column}embedded_hash <> {content} OR {column}embedding_model <> {model})"
    if state_only:
        return stale
    if not model.startswith("%("):
        raise ValueError(f"model must be a named placeholder such as %(model)s, not {model!r}")
    # Inside the subqueries an unqualified column could name the subquery's own.
    outer = f"{alias or 'embeddings_item'}."
    content = content_hash or f"{outer}content_hash"
    # Planned (no vector yet: the fill reads the latest content when it gets there) or
    # done for this very content: the bulk run will move it in.
    covered = (
        "EXISTS (SELECT 1 FROM embeddings_nextvector n"
        f" WHERE n.item_id = {outer}id AND (n.embedding IS NULL OR n.content_hash = {content}))"
    )
    # The content is embedded with the served model and another one is the target:
    # re-embedding it is a model change, the bulk run's work, and until the swap search
    # answers from the served vectors.
    awaiting_swap = (
        f"EXISTS (SELECT 1 FROM embeddings_servedmodel s WHERE s.name <> {model}"
        f" AND {outer}embedded_hash = {content} AND {outer}embedding_model = s.name)"
    )
    return f"({stale} AND NOT {covered} AND NOT {awaiting_swap})"


def embedding_state_sql(*, model: str = "%(model)s") -> str:
    """Return a SQL expression giving the row's EmbeddingState as text."""
    return (
        f"CASE WHEN NOT {needs_embedding_sql(model=model, state_only=True)}"
        f" THEN '{EmbeddingState.CURRENT}'"
        f" WHEN embedding IS NOT NULL THEN '{EmbeddingState.STALE}'"
        f" ELSE '{EmbeddingState.PENDING}' END"
    )
