"""Texts to padded batches of token ids for a GPU: length-sorted so padding is rare, prefetched.

Also the pieces every batching shares: the batching policy, tokenizing, chunks. The CPU
packs its batches instead (packing.py).
"""

import itertools
import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray
from tokenizers import Tokenizer

T = TypeVar("T")


@dataclass(frozen=True)
class Batching:
    """How texts are grouped: chunks are tokenized and sorted together, then cut into batches."""

    chunk_texts: int  # texts tokenized and length-sorted together (bounds host memory)
    first_chunk: int  # the first chunks are smaller, so the device starts early; they double
    batch_tokens: int  # padded tokens per batch
    max_batch: int  # texts per batch, whatever their length
    prefetch: int  # batches prepared ahead by a background thread (0: none, inline)
    pin: bool  # put ids and masks in pinned memory, for asynchronous copies to a GPU
    # A text joins an attention group of a packed batch (packing.py; a padded batch: the
    # batch) only while its length is at least this share of the longest, so a call of texts
    # of very different lengths attends in a few small blocks instead of padding short texts
    # to the longest one.
    min_fill: float = 0.0


# CPU: packed batches of ~2k bf16 tokens (half as many in fp32, `cpu_batching`) keep
# activations in cache with GEMMs as efficient as bigger ones; both cores compute, so a
# tokenizing thread would only take time from them. Padding is computed only in attention,
# in groups of texts of at least half the longest one's length.
CPU_BATCHING = Batching(
    chunk_texts=65536,
    first_chunk=65536,
    batch_tokens=2048,
    max_batch=256,
    prefetch=0,
    pin=False,
    min_fill=0.5,
)


def cpu_batching(dtype: torch.dtype) -> Batching:
    """Return the CPU batching for `dtype`: the token budget holds activations of the same bytes.

    2,048 tokens was measured in bf16; an fp32 token's activations take twice the bytes. On an
    AVX2 CPU in fp32 (bench/cpu_batches.py), 2,048-token batches cost 14 % more CPU per text
    than 1,024-token ones in worker processes of one thread and 9 % more in one process of two;
    512 cost 4.5 % less in the first and 2 % more in the second.
    """
    scale = max(1, dtype.itemsize // 2)
    return replace(CPU_BATCHING, batch_tokens=CPU_BATCHING.batch_tokens // scale)


# CUDA: only big batches keep the GPU busy (small ones are bound by kernel launches), and the
# host tokenizes the next chunk while the GPU computes. max_batch * heads stays below 65535, the
# grid limit of some attention kernels.
CUDA_BATCHING = Batching(
    chunk_texts=32768, first_chunk=4096, batch_tokens=131072, max_batch=4096, prefetch=3, pin=True
)


@dataclass(frozen=True)
class Batch:
    """Token ids of some texts, padded to the longest; rows are `positions` of the input."""

    positions: NDArray[np.int64]
    ids: torch.Tensor  # (batch, width) int32
    mask: torch.Tensor | None  # (batch, width) bool, True on real tokens; None without padding


def load_tokenizer(path: Path, *, max_length: int) -> tuple[Tokenizer, int]:
    """Return the tokenizer of tokenizer.json, truncating at `max_length`, and its padding id."""
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:
        raise ValueError(
            f"model_dir: {path.name} of {path.parent} cannot be read ({error})"
        ) from None
    # tokenizer.json carries its own truncation and fixed padding (128 for all-MiniLM-L6-v2);
    # truncation follows sentence_bert_config as in sentence-transformers, and batches are
    # padded here, each to its longest text.
    padding = tokenizer.padding
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer, int(padding["pad_id"]) if padding else 0


def tokenize(
    tokenizer: Tokenizer, texts: Sequence[str], *, lower: bool
) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """Return the token ids of all texts end to end and each text's token count."""
    if lower:
        texts = [text.lower() for text in texts]
    # encode_batch_fast (tokenizers >= 0.20) skips character offsets, which are not needed.
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    rows = [encoding.ids for encoding in encode(list(texts))]
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.fromiter(
        itertools.chain.from_iterable(rows), dtype=np.int32, count=int(lengths.sum())
    )
    return flat, lengths


def _chunk_bounds(total: int, batching: Batching) -> Iterator[tuple[int, int]]:
    start, size = 0, batching.first_chunk
    while start < total:
        yield start, min(start + size, total)
        start += size
        size = min(size * 2, batching.chunk_texts)


@dataclass(frozen=True)
class TokenizedChunk:
    """Some consecutive texts of the input, tokenized, and their order longest first."""

    start: int  # index of the chunk's first text in the input
    flat: NDArray[np.int32]  # token ids of the chunk's texts end to end
    lengths: NDArray[np.int64]
    offsets: NDArray[np.int64]  # each text's first token in `flat`
    order: NDArray[np.int64]  # the chunk's texts, longest first (stable)


def tokenized_chunks(
    texts: Sequence[str], *, tokenizer: Tokenizer, lower: bool, batching: Batching
) -> Generator[TokenizedChunk, None, None]:
    """Yield the texts in chunks of `batching`'s sizes, each tokenized and length-sorted."""
    for start, stop in _chunk_bounds(len(texts), batching):
        flat, lengths = tokenize(tokenizer, texts[start:stop], lower=lower)
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        yield TokenizedChunk(start, flat, lengths, offsets, np.argsort(-lengths, kind="stable"))


def within_fill(counts: NDArray[np.int64], min_fill: float) -> int:
    """Return how many of the falling `counts` have at least `min_fill` of the first (>= 1)."""
    return max(1, int(np.searchsorted(-counts, -min_fill * counts[0], side="right")))


def padded_cells(
    first: NDArray[np.int64], counts: NDArray[np.int64], width: int
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Return each (text, column) cell's token index and whether the cell is a real token.

    Text i's `counts[i]` tokens start at index `first[i]`; padding cells repeat its last one.
    """
    columns = np.arange(width)
    valid = columns[None, :] < counts[:, None]
    return first[:, None] + np.minimum(columns[None, :], counts[:, None] - 1), valid


def make_batches(
    texts: Sequence[str],
    *,
    tokenizer: Tokenizer,
    pad_id: int,
    lower: bool,
    batching: Batching,
    batch_size: int | None,
) -> Generator[Batch, None, None]:
    """Yield batches of texts of (nearly) equal token counts, longest first in each chunk.

    A batch holds `batch_size` texts when given, else as many as fit in the token budget.
    """
    for chunk in tokenized_chunks(texts, tokenizer=tokenizer, lower=lower, batching=batching):
        lengths, order = chunk.lengths, chunk.order
        start = 0
        while start < len(order):
            width = int(lengths[order[start]])  # the longest text of the batch comes first
            size = batch_size or min(batching.max_batch, max(1, batching.batch_tokens // width))
            chosen = order[start : start + size]
            if batch_size is None and batching.min_fill:
                chosen = chosen[: within_fill(lengths[chosen], batching.min_fill)]
            start += len(chosen)
            counts = lengths[chosen]
            cells, valid = padded_cells(chunk.offsets[chosen], counts, width)
            ids = torch.from_numpy(np.where(valid, chunk.flat[cells], np.int32(pad_id)))
            mask = None if counts[-1] == width else torch.from_numpy(valid)
            if batching.pin:
                ids = ids.pin_memory()
                mask = None if mask is None else mask.pin_memory()
            yield Batch(positions=chosen + chunk.start, ids=ids, mask=mask)


def prefetched(items: Iterator[T], *, depth: int) -> Generator[T, None, None]:
    """Iterate over `items` computed by a background thread, up to `depth` ahead.

    The Rust tokenizer releases the GIL, so the thread tokenizes while the caller's thread
    launches GPU work; an exception in the thread is raised in the caller.
    """
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as error:  # handed to the consumer, which raises it
            put(("error", error))

    thread = threading.Thread(target=produce, name="encoder-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()  # the consumer stopped early or failed: let the producer end
        thread.join()
