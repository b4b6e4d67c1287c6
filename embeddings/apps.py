"""App configuration of embeddings; it must never import torch (the web tier loads it)."""

from django.apps import AppConfig


class EmbeddingsConfig(AppConfig):
    name = "embeddings"
