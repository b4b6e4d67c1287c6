"""Packed CPU batches: every real token once, attention in length groups, the padded result.

No Django here, like test_encoder.py: the encoder is importable and testable without it.
"""

import random
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embeddings.encoder import SentenceEncoder, load_encoder
from embeddings.encoder.batches import make_batches, tokenize
from embeddings.encoder.packing import PackedBatch, make_packed_batches
from tests.embeddings.test_encoder import MODEL_DIR, TEXTS, cosines

_rng = random.Random(20261206)
# Lengths from two tokens to past the 256-token limit, in no order, with repeats.
MIXED = [
    " ".join(["stock"] * _rng.choice([0, 1, 2, 5, 5, 9, 30, 31, 64, 120, 300])) for _ in range(60)
]


@pytest.fixture(scope="module")
def fp32_encoder() -> SentenceEncoder:
    return load_encoder(MODEL_DIR, device="cpu", dtype="fp32")


def packed_batches(encoder: SentenceEncoder, texts: list[str], **changes: Any) -> list[PackedBatch]:
    return list(
        make_packed_batches(
            texts,
            tokenizer=encoder.tokenizer,
            lower=encoder.spec.do_lower_case,
            batching=replace(encoder.batching, **changes),
            batch_size=None,
        )
    )


def test_a_packed_batch_holds_each_texts_tokens_once_longest_first(
    fp32_encoder: SentenceEncoder,
) -> None:
    """Each text's token ids appear once, end to end, at positions 0..n-1, within the budget."""
    flat, lengths = tokenize(fp32_encoder.tokenizer, MIXED, lower=True)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    batches = packed_batches(fp32_encoder, MIXED, batch_tokens=300)
    assert len(batches) > 5
    for batch in batches:
        counts = batch.lengths.numpy()
        assert list(counts) == sorted(counts, reverse=True)
        assert counts.sum() <= 300 or len(counts) == 1
        offset = 0
        for number, (text, count) in enumerate(zip(batch.positions, counts, strict=True)):
            tokens = slice(offset, offset + count)
            np.testing.assert_array_equal(
                batch.ids[tokens], flat[starts[text] : starts[text] + count]
            )
            np.testing.assert_array_equal(batch.token_positions[tokens], np.arange(count))
            assert set(batch.text_of_token[tokens].tolist()) == {number}
            offset += count
        assert offset == len(batch.ids)
    every = np.concatenate([batch.positions for batch in batches])
    assert sorted(every.tolist()) == list(range(len(MIXED)))


def test_attention_groups_cover_the_batch_and_keep_texts_near_the_longest(
    fp32_encoder: SentenceEncoder,
) -> None:
    """Groups tile the tokens in order; each text has >= min_fill of its group's longest length."""
    for min_fill in (0.0, 0.5, 0.9):
        for batch in packed_batches(fp32_encoder, MIXED, min_fill=min_fill):
            counts, at, text = batch.lengths.numpy(), 0, 0
            for group in batch.groups:
                group_counts = counts[text : text + group.texts]
                assert group.start == at
                assert group.stop == at + group_counts.sum()
                assert group.width == group_counts[0]
                assert group_counts.min() >= min_fill * group.width
                if group.mask is None:
                    assert (group_counts == group.width).all()
                else:
                    assert group.cells is not None
                    np.testing.assert_array_equal(group.mask.sum(dim=1), group_counts)
                    # Real cells point at the group's tokens in order.
                    np.testing.assert_array_equal(
                        group.cells[group.mask], np.arange(group.start, group.stop)
                    )
                at, text = group.stop, text + group.texts
            assert (at, text) == (len(batch.ids), len(counts))
            if min_fill == 0.0:
                assert len(batch.groups) == 1


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_packed_and_padded_forward_passes_give_the_same_vectors(
    fp32_encoder: SentenceEncoder, pooling: str
) -> None:
    """The packed pass (CPU) equals the padded one (GPU path) for every pooling, text by text."""
    bert = fp32_encoder.bert
    spec = bert.spec
    bert.spec = replace(spec, pooling=pooling)
    texts = TEXTS + MIXED
    packed = np.empty((len(texts), fp32_encoder.dimensions), np.float32)
    padded = np.empty_like(packed)
    try:
        with torch.inference_mode():
            for batch in packed_batches(fp32_encoder, texts, batch_tokens=700):
                packed[batch.positions] = F.normalize(bert.packed(batch), dim=-1).numpy()
            for padded_batch in make_batches(
                texts,
                tokenizer=fp32_encoder.tokenizer,
                pad_id=fp32_encoder.pad_id,
                lower=spec.do_lower_case,
                batching=replace(fp32_encoder.batching, batch_tokens=700),
                batch_size=None,
            ):
                vectors = bert(padded_batch.ids, padded_batch.mask)
                padded[padded_batch.positions] = F.normalize(vectors, dim=-1).numpy()
    finally:
        bert.spec = spec
    assert cosines(packed, padded).min() >= 0.99999


def test_a_batch_size_packs_that_many_texts(fp32_encoder: SentenceEncoder) -> None:
    """An explicit batch_size packs that many texts per batch, whatever their tokens."""
    batches = list(
        make_packed_batches(
            MIXED,
            tokenizer=fp32_encoder.tokenizer,
            lower=True,
            batching=fp32_encoder.batching,
            batch_size=7,
        )
    )
    assert [len(batch.positions) for batch in batches] == [7] * 8 + [4]
