"""Packed against padded CPU batches: the encoder's CPU ms per text by call size, side by side.

    scripts/stack.sh exec python bench/packing.py [--sizes 10,25,100,256] [--dtype auto]
        [--threads 1] [--texts 1024] [--rounds 3]

On the CPU the encoder packs a batch's texts end to end, so every step but attention computes
real tokens only (embeddings/encoder/packing.py). Before packing the CPU computed padded
batches (embeddings/encoder/batches.py, as a GPU still does): each text padded to its batch's
longest, a batch cut where a text is shorter than half the longest. This encodes the pipeline benchmark's
texts (bench/pipeline.py: product descriptions from a few words to past 256 tokens) both ways
in one process, in calls of `--sizes` texts as the embedding worker makes them (a trickle's
claims hold tens, a bulk load's hundreds), alternating which goes first every round. It also
prints the share of padded tokens a padded batch computes. Figures are the process's CPU
milliseconds per text, medians over rounds. Last line: one JSON object {"dtype", "threads",
"padded_ms", "packed_ms", "ratio": {size: packed / padded}, "padding_share": {size: share}}.
"""

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics.settings.local")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,25,100,256", help="texts per encode call, commas")
    parser.add_argument("--dtype", default="auto", help="auto, fp32 or bf16")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a worker's: 1)")
    parser.add_argument("--texts", type=int, default=1024, help="texts encoded per size and way")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import django
    import numpy as np
    import torch
    import torch.nn.functional as F

    django.setup()
    from pipeline import encoder_inputs, make_items

    from embeddings.encoder import load_encoder
    from embeddings.encoder.batches import make_batches

    torch.set_num_threads(args.threads)
    encoder = load_encoder(dtype=args.dtype)
    texts = encoder_inputs(make_items(args.texts))
    sizes = [int(size) for size in args.sizes.split(",")]
    padding: dict[int, list[int]] = {size: [0, 0] for size in sizes}  # padded cells, all cells

    def padded(part: list[str], size: int) -> None:
        """Encode `part` in padded batches (the GPU path, and the CPU path before packing)."""
        with torch.inference_mode():
            for batch in make_batches(
                part,
                tokenizer=encoder.tokenizer,
                pad_id=encoder.pad_id,
                lower=encoder.spec.do_lower_case,
                batching=encoder.batching,
                batch_size=None,
            ):
                F.normalize(encoder.bert(batch.ids, batch.mask), dim=-1).numpy()
                cells = batch.ids.numel()
                real = cells if batch.mask is None else int(batch.mask.sum())
                padding[size][0] += cells - real
                padding[size][1] += cells

    def packed(part: list[str], size: int) -> None:
        encoder.encode(part)

    print(
        f"==> {encoder!r}, {args.threads} threads, {len(texts)} texts in calls of {args.sizes},"
        f" {args.rounds} rounds",
        file=sys.stderr,
        flush=True,
    )
    check = np.sum(encoder.encode(texts[:100]) * encoder.encode(texts[:100][::-1])[::-1], axis=1)
    assert check.min() > 0.9999, "the encoder's vectors depend on the order of its input"
    ways: dict[str, Callable[[list[str], int], None]] = {"padded": padded, "packed": packed}
    figures: dict[str, dict[int, list[float]]] = {way: {size: [] for size in sizes} for way in ways}
    for number in range(args.rounds):
        for size in sizes:
            order = list(ways) if number % 2 == 0 else list(ways)[::-1]
            for way in order:
                started = time.process_time()
                for start in range(0, len(texts), size):
                    ways[way](texts[start : start + size], size)
                figures[way][size].append(1000 * (time.process_time() - started) / len(texts))
        print(
            f"    round {number + 1}: "
            + ", ".join(
                f"{size}: {figures['padded'][size][-1]:.2f} / {figures['packed'][size][-1]:.2f}"
                for size in sizes
            )
            + " ms per text (padded / packed)",
            file=sys.stderr,
            flush=True,
        )
    medians = {
        way: {size: round(statistics.median(values), 2) for size, values in per_size.items()}
        for way, per_size in figures.items()
    }
    print(
        json.dumps(
            {
                "dtype": str(encoder.dtype).removeprefix("torch."),
                "threads": args.threads,
                "padded_ms": medians["padded"],
                "packed_ms": medians["packed"],
                "ratio": {
                    size: round(medians["packed"][size] / medians["padded"][size], 3)
                    for size in sizes
                },
                "padding_share": {
                    size: round(padded_cells / max(1, cells), 3)
                    for size, (padded_cells, cells) in padding.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
