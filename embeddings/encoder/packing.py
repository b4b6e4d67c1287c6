"""Texts to packed batches for the CPU: every real token once, no padding in the matrix products.

Only attention mixes the tokens of a text; embeddings, the projections, layer norms and the
feed-forward work token by token. A packed batch therefore lays its texts' tokens end to end,
one row each, and those steps compute real tokens only. Attention runs per group of texts of
similar length, gathered into a padded block for the kernel and scattered back. Padding then
costs only in attention (a small share of the arithmetic), where a padded batch paid it in every
product: 10 % of the tokens of 256-text calls and 15-18 % of 10- to 100-text calls on the
pipeline benchmark's texts (bench/packing.py).
"""

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from tokenizers import Tokenizer

from embeddings.encoder.batches import Batching, padded_cells, tokenized_chunks, within_fill


@dataclass(frozen=True)
class AttentionGroup:
    """Texts of a packed batch that attend in one padded block: tokens `start:stop`."""

    start: int
    stop: int
    texts: int
    width: int  # the group's longest text, in tokens
    # Index of each (text, column) cell's token in the batch, padding cells repeating the
    # text's last token, and True on real tokens. Both None when every text has `width`
    # tokens: the slice `start:stop` is the block as it stands.
    cells: torch.Tensor | None
    mask: torch.Tensor | None


@dataclass(frozen=True)
class PackedBatch:
    """Token ids of some texts end to end, longest text first; rows are `positions` of the input."""

    positions: NDArray[np.int64]
    ids: torch.Tensor  # (tokens,) int32
    token_positions: torch.Tensor  # (tokens,) int64: each token's place in its text
    text_of_token: torch.Tensor  # (tokens,) int64: each token's text, 0 .. texts - 1
    lengths: torch.Tensor  # (texts,) int64
    groups: tuple[AttentionGroup, ...]


def make_packed_batches(
    texts: Sequence[str],
    *,
    tokenizer: Tokenizer,
    lower: bool,
    batching: Batching,
    batch_size: int | None,
) -> Generator[PackedBatch, None, None]:
    """Yield packed batches of length-sorted texts, about `batching.batch_tokens` tokens each.

    A batch holds `batch_size` texts when given, else texts while their tokens fit the
    budget (at least one, at most `batching.max_batch`). Within a batch a text joins the
    attention group of longer texts while it has at least `batching.min_fill` of the
    group's longest length.
    """
    for chunk in tokenized_chunks(texts, tokenizer=tokenizer, lower=lower, batching=batching):
        lengths, order = chunk.lengths, chunk.order
        start = 0
        while start < len(order):
            if batch_size:
                size = batch_size
            else:
                totals = np.cumsum(lengths[order[start : start + batching.max_batch]])
                size = max(1, int(np.searchsorted(totals, batching.batch_tokens, side="right")))
            chosen = order[start : start + size]
            start += len(chosen)
            yield _pack(
                chunk.flat,
                chunk.offsets[chosen],
                lengths[chosen],
                batching.min_fill,
                chosen + chunk.start,
            )


def _pack(
    flat: NDArray[np.int32],
    offsets: NDArray[np.int64],
    counts: NDArray[np.int64],
    min_fill: float,
    positions: NDArray[np.int64],
) -> PackedBatch:
    """Return the packed batch of texts whose tokens start at `offsets` of `flat`, longest first."""
    starts = np.cumsum(counts) - counts  # each text's first token in the batch
    text_of_token = np.repeat(np.arange(len(counts)), counts)
    token_positions = np.arange(int(counts.sum())) - starts[text_of_token]
    ids = flat[offsets[text_of_token] + token_positions]
    return PackedBatch(
        positions=positions,
        ids=torch.from_numpy(ids),
        token_positions=torch.from_numpy(token_positions),
        text_of_token=torch.from_numpy(text_of_token),
        lengths=torch.from_numpy(counts),
        groups=tuple(_groups(counts, starts, min_fill)),
    )


def _groups(
    counts: NDArray[np.int64], starts: NDArray[np.int64], min_fill: float
) -> Generator[AttentionGroup, None, None]:
    first = 0
    while first < len(counts):
        width = int(counts[first])
        last = first + within_fill(counts[first:], min_fill)
        group = counts[first:last]
        begin, end = int(starts[first]), int(starts[first]) + int(group.sum())
        if int(group[-1]) == width:
            yield AttentionGroup(begin, end, len(group), width, cells=None, mask=None)
        else:
            cells, valid = padded_cells(starts[first:last], group, width)
            yield AttentionGroup(
                begin,
                end,
                len(group),
                width,
                cells=torch.from_numpy(cells),
                mask=torch.from_numpy(valid),
            )
        first = last
