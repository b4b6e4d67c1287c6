"""Encoder benchmark: texts/s of embeddings.encoder against sentence-transformers, same texts.

    python bench/encoder.py [--device auto|cpu|cuda] [--texts N] [--runs 5] [--model-dir DIR]
        [--dtype auto] [--batch-size N] [--st-batch-size N]

Both encoders embed the same deterministic texts of 8-60 words (realistic sentences from a
seeded generator) on the same device; runs alternate ours / sentence-transformers after one
warm-up each, and the figures are medians. sentence-transformers runs with its defaults in fp32
(an fp16 model directory is widened) at --st-batch-size (64 on CPU, 512 on CUDA); ours runs with
its defaults (length-sorted token-budget batches, bf16 on CUDA and on CPUs with bf16 instructions).
Progress goes to stderr; the last line printed is one JSON object:
{"device": ..., "ours_texts_per_s": ..., "st_texts_per_s": ..., "ratio": ...}.

Imports only torch, numpy, sentence-transformers and embeddings.encoder (no Django), so it runs
on a GPU machine alone, with an fp16 copy of the model (scripts/fp16_model.py) as --model-dir.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from embeddings.encoder import default_model_dir, load_encoder  # noqa: E402

SEED = 20_261_125
TARGET_RATIO = {"cpu": 1.5, "cuda": 5.0}

SUBJECTS = (
    "The customer",
    "Our support team",
    "The new dashboard",
    "This release",
    "The warehouse in Lyon",
    "A returning user",
    "The billing service",
    "Every weekly report",
    "The mobile app",
    "Our largest client",
    "The onboarding flow",
    "The search page",
    "A small bakery",
    "The data pipeline",
    "The product manager",
)
VERBS = (
    "reported",
    "noticed",
    "asked about",
    "complained about",
    "praised",
    "could not find",
    "ordered",
    "cancelled",
    "compared",
    "tracked",
    "exported",
    "shared",
    "reviewed",
    "fixed",
    "delayed",
)
ADJECTIVES = (
    "slow",
    "missing",
    "duplicate",
    "blue",
    "refurbished",
    "monthly",
    "broken",
    "premium",
    "late",
    "confusing",
    "cheaper",
    "wireless",
    "organic",
    "overdue",
    "encrypted",
    "handmade",
    "seasonal",
)
OBJECTS = (
    "invoices",
    "ceramic mugs",
    "checkout page",
    "delivery dates",
    "latency charts",
    "refund requests",
    "subscription plans",
    "running shoes",
    "API keys",
    "error messages",
    "shipping labels",
    "coffee beans",
    "password resets",
    "conversion rates",
    "noise-cancelling headphones",
    "tax settings",
    "gift cards",
)
TAILS = (
    "after the last update",
    "before the holiday sale",
    "on Monday morning",
    "for the third time",
    "in the European region",
    "during the free trial",
    "without any warning",
    "since the migration",
    "while travelling abroad",
    "because the stock ran out",
    "despite two reminders",
    "at the end of the quarter",
)
CONNECTORS = ("and", "but", "so", "because", "although", "while", "then")


def sentence(rng: random.Random) -> str:
    """Return one realistic-looking sentence."""
    words = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} the {rng.choice(ADJECTIVES)} {rng.choice(OBJECTS)}"
    if rng.random() < 0.7:
        words += f" {rng.choice(TAILS)}"
    if rng.random() < 0.3:
        words += f", {rng.choice(CONNECTORS)} {rng.choice(SUBJECTS).lower()} {rng.choice(VERBS)} it"
    return words + rng.choice((".", ".", ".", "!", "?"))


def make_texts(count: int, seed: int = SEED) -> list[str]:
    """Return `count` texts of 8 to 60 words, the same ones for the same seed."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        target = rng.randint(8, 60)
        words: list[str] = []
        while len(words) < target:
            words.extend(sentence(rng).split())
        text = " ".join(words[:target])
        texts.append(text if text[-1] in ".!?" else text + ".")
    return texts


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def paired_run(
    encoders: dict[str, Any], texts: list[str], slice_size: int, flip: bool
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Time each encoder on the same slices, alternating slice by slice; return texts/s and vectors.

    Alternating per slice (and which goes first) spreads the load of a shared machine evenly over
    both encoders, instead of letting one whole run land in a busy moment.
    """
    seconds = dict.fromkeys(encoders, 0.0)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in encoders}
    names = list(encoders)
    for index, start in enumerate(range(0, len(texts), slice_size)):
        part = texts[start : start + slice_size]
        for name in reversed(names) if (index % 2 == 1) ^ flip else names:
            begin = time.perf_counter()
            parts[name].append(encoders[name](part))
            seconds[name] += time.perf_counter() - begin
    rates = {name: len(texts) / seconds[name] for name in encoders}
    return rates, {name: np.concatenate(parts[name]) for name in encoders}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N"
    )
    parser.add_argument(
        "--texts", type=int, default=None, help="texts per run (1000 on CPU, 50000 on CUDA)"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each encoder")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="model directory (default: packaged)"
    )
    parser.add_argument("--dtype", default="auto", help="dtype of ours: auto, fp32, fp16 or bf16")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="texts per batch of ours (default: tokens)"
    )
    parser.add_argument(
        "--slice", type=int, default=None, help="texts per call, alternating (CPU 200, CUDA all)"
    )
    parser.add_argument(
        "--st-batch-size",
        type=int,
        default=None,
        help="sentence-transformers batch (64 CPU, 512 CUDA)",
    )
    args = parser.parse_args()

    model_dir = args.model_dir or Path(
        os.environ.get("EMBEDDINGS_MODEL_DIR") or default_model_dir()
    )
    ours = load_encoder(model_dir, device=args.device, dtype=args.dtype)
    device = ours.device
    cuda = device.type == "cuda"
    count = args.texts or (50_000 if cuda else 1_000)
    st_batch = args.st_batch_size or (512 if cuda else 64)
    # On CUDA one call takes all texts, so tokenizing overlaps the GPU as it does in a worker.
    slice_size = args.slice or (count if cuda else 200)
    texts = make_texts(count)
    # float(): an fp16 directory loads in fp16 by default; the baseline is sentence-transformers' fp32.
    st = SentenceTransformer(str(model_dir), device=str(device)).float()
    name = (
        torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    )
    words = [len(text.split()) for text in texts]
    log(
        f"{name}: {count} texts of {min(words)}-{max(words)} words (mean {statistics.mean(words):.1f}), "
        f"ours {ours.dtype} batch {args.batch_size or 'by tokens'}, "
        f"sentence-transformers fp32 batch {st_batch}, {args.runs} runs in calls of {slice_size} texts"
    )

    def encode_ours(batch: list[str]) -> np.ndarray:
        return ours.encode(batch, batch_size=args.batch_size)

    def encode_st(batch: list[str]) -> np.ndarray:
        return st.encode(
            batch, batch_size=st_batch, convert_to_numpy=True, normalize_embeddings=True
        )

    warm = texts[: min(count, 4096)]
    encode_ours(warm)
    encode_st(warm)
    ours_rates, st_rates = [], []
    for run in range(1, args.runs + 1):
        rates, vectors = paired_run(
            {"ours": encode_ours, "st": encode_st}, texts, slice_size, flip=run % 2 == 0
        )
        ours_rates.append(rates["ours"])
        st_rates.append(rates["st"])
        log(
            f"run {run}: ours {rates['ours']:,.0f} texts/s, sentence-transformers {rates['st']:,.0f} texts/s, "
            f"ratio {rates['ours'] / rates['st']:.2f}"
        )
    similarity = (vectors["ours"] * vectors["st"]).sum(axis=1)
    log(
        f"cosine ours vs sentence-transformers: min {similarity.min():.6f}, mean {similarity.mean():.6f}"
    )

    ours_median, st_median = statistics.median(ours_rates), statistics.median(st_rates)
    ratio = ours_median / st_median
    target = TARGET_RATIO.get(device.type)
    if target is not None:
        log(f"ratio {ratio:.2f} ({'meets' if ratio >= target else 'MISSES'} the target {target}x)")
    print(
        json.dumps(
            {
                "device": name,
                "ours_texts_per_s": round(ours_median, 1),
                "st_texts_per_s": round(st_median, 1),
                "ratio": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
