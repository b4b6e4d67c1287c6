"""Attention kernels of the CPU encoder, bf16: plain products against PyTorch's SDPA, by length.

    python bench/attention.py [--threads 1] [--tokens 2048] [--runs 5]

The encoder runs bf16 attention on the CPU as plain products (fp32 softmax) up to
`PLAIN_ATTENTION_MAX_LENGTH` tokens and through `scaled_dot_product_attention` beyond. This
prints both, side by side in one run, for batches as the encoder forms them (length-sorted,
about `--tokens` tokens each, the CPU default; MiniLM-L6's 12 heads of 32), with and without padding in the
batch, so the threshold can be checked on another CPU. `--threads 1` is what each worker
process runs with on a CPU machine. Times are medians of `--runs` rounds of 20 calls.
Last line: one JSON object {"rows": [...], "threshold": ...}.
"""

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from embeddings.encoder.batches import CPU_BATCHING  # noqa: E402
from embeddings.encoder.bert import PLAIN_ATTENTION_MAX_LENGTH  # noqa: E402

HEADS, HEAD_SIZE = 12, 32
LENGTHS = (16, 32, 48, 64, 96, 128, 192, 256)
Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def plain(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None
) -> torch.Tensor:
    """The encoder's plain path (embeddings/encoder/bert.py)."""
    scores = torch.matmul(q, k.transpose(-1, -2)).float()
    if keep is not None:
        scores.masked_fill_(keep.logical_not(), float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)


def sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None
) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=1.0)


def time_ms(
    kernel: Kernel,
    args: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None],
    runs: int,
    calls: int = 20,
) -> float:
    kernel(*args)
    rounds = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(calls):
            kernel(*args)
        rounds.append((time.perf_counter() - started) / calls * 1000)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--tokens", type=int, default=CPU_BATCHING.batch_tokens, help="tokens per batch"
    )
    parser.add_argument("--runs", type=int, default=5, help="rounds per figure (median)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(7)
    rows = []
    print(
        f"{'tokens':>6} {'batch':>5} {'padded':>6} {'plain ms':>9} {'sdpa ms':>8} {'sdpa/plain':>10}"
    )
    for length in LENGTHS:
        batch = max(1, args.tokens // length)
        q, k, v = (
            torch.randn(batch, HEADS, length, HEAD_SIZE, generator=generator).to(torch.bfloat16)
            for _ in range(3)
        )
        for padded in (False, True):
            keep = None
            if padded:  # a quarter of each row is padding, as in a length-sorted batch's tail
                mask = torch.ones(batch, length, dtype=torch.bool)
                mask[:, length * 3 // 4 :] = False
                keep = mask[:, None, None, :]
            plain_ms = time_ms(plain, (q, k, v, keep), args.runs)
            sdpa_ms = time_ms(sdpa, (q, k, v, keep), args.runs)
            rows.append(
                {
                    "length": length,
                    "batch": batch,
                    "padded": padded,
                    "plain_ms": round(plain_ms, 2),
                    "sdpa_ms": round(sdpa_ms, 2),
                }
            )
            print(
                f"{length:>6} {batch:>5} {padded!s:>6} {plain_ms:>9.2f} {sdpa_ms:>8.2f}"
                f" {sdpa_ms / plain_ms:>10.2f}",
                flush=True,
            )
    print(json.dumps({"rows": rows, "threshold": PLAIN_ATTENTION_MAX_LENGTH}))


if __name__ == "__main__":
    main()
