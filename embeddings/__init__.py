"""Items, the PyTorch encoder, embedding tasks and similarity search."""
