"""Sentence encoder in plain PyTorch: BERT forward, pooling and L2 norm; it imports no Django.

Only embedding workers import this package (it imports torch); they call `load_encoder` once per
process, after the fork. A model directory is a sentence-transformers export (config.json,
tokenizer.json, model.safetensors in fp32 or fp16, sentence_bert_config.json, modules.json and
the pooling config), and every fact the encoder needs is read from those files (`files`).

Speed comes from work not done and work done cheaply (`batches`, `bert`): texts are tokenized
once, sorted by token count and cut into batches of (nearly) one length, so padding is rare and
a batch without any skips attention masking; Q, K and V are one matrix product; bf16 on CUDA and
on CPUs with bf16 instructions; on CUDA a background thread tokenizes and pads the next batches
into pinned memory while the GPU computes, and results come back without stalling it (`sentence`).
"""

from embeddings.encoder.files import default_model_dir
from embeddings.encoder.sentence import SentenceEncoder, load_encoder

__all__ = ["SentenceEncoder", "default_model_dir", "load_encoder"]
