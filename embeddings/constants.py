"""Facts about embeddings that models, services and the encoder share, with no imports."""

# all-MiniLM-L6-v2 produces 384 dimensions; the vector column is declared with this.
EMBEDDING_DIMENSIONS = 384
