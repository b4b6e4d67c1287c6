"""The name of the model whose vectors are current, read from settings (no torch here).

The web tier (API, admin, search) needs the name to tell current vectors from stale ones;
only workers need the model itself (`embeddings.worker`).
"""

from django.conf import settings


def model_name() -> str:
    """Return the name stored with (and searched among) current embeddings."""
    return str(settings.EMBEDDINGS_MODEL_NAME)
