"""The models' names: the target one from settings, the served one from the database (no torch here).

The target model (`model_name`) is what workers load and what new vectors are computed
with. The served model (`served_model`) is what `Item.embedding` holds for search: the
same, except while a model change waits for `manage.py reembed` to swap the new vectors
in. The web tier (API, admin, search) needs the names only; workers need the model
itself (`embeddings.worker`).
"""

from dataclasses import dataclass

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper


@dataclass(frozen=True)
class Served:
    name: str
    model_dir: str  # where workers load it from; "" is the packaged default


def model_name() -> str:
    """Return the name stored with (and searched among) current embeddings."""
    return str(settings.EMBEDDINGS_MODEL_NAME)


def target_model() -> Served:
    """Return the model of the settings, which workers load."""
    return Served(model_name(), str(settings.EMBEDDINGS_MODEL_DIR or ""))


def served_model(database: BaseDatabaseWrapper) -> Served:
    """Return the model whose vectors search reads, as `database` sees it.

    Without the row (a database emptied by hand, or by a test's flush), the target.
    """
    with database.cursor() as cursor:
        cursor.execute("SELECT name, model_dir FROM embeddings_servedmodel ORDER BY id LIMIT 1")
        row = cursor.fetchone()
    return Served(str(row[0]), str(row[1])) if row else target_model()
