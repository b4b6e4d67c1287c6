"""CPU token budget per batch: the encoder's CPU ms per text at each budget, side by side.

    scripts/stack.sh exec python bench/cpu_batches.py [--budgets 512,1024,2048] [--dtype fp32]
        [--processes 2] [--threads 1] [--texts 600] [--rounds 6]

`embeddings.encoder.batches.cpu_batching` picks the CPU budget by dtype (2,048 tokens in bf16,
1,024 in fp32). This times the encoder on the pipeline benchmark's texts (bench/pipeline.py:
product descriptions from a few words to past 256 tokens) at each budget. It runs as an
embedding worker does: `--processes` processes at once (default: one per core), each with
`--threads` torch threads, every process encoding all texts once per budget per round, the
order of the budgets reversed every other round so a busy spell of a shared machine is shared
out. Figures are CPU milliseconds per text (the process's own CPU time, which the other
processes on the machine move less than wall time), medians over rounds and processes.
Last line: one JSON object {"dtype", "processes", "threads", "ms_per_text": {budget: ms},
"ratio_to_default": {budget: ms / the default budget's ms}, "default": budget}.
"""

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics.settings.local")

from analytics.settings.machine import usable_cores  # noqa: E402


def child(args: argparse.Namespace) -> None:
    """Encode the texts at every budget for every round; print one JSON line of figures."""
    import django
    import torch

    django.setup()
    from pipeline import encoder_inputs, make_items

    from embeddings.encoder import load_encoder

    torch.set_num_threads(args.threads)
    encoder = load_encoder(dtype=args.dtype)
    budgets = [int(budget) for budget in args.budgets.split(",")]
    texts = encoder_inputs(make_items(args.texts, seed=args.seed))
    encoder.encode(texts[:64])  # warm-up
    base = encoder.batching  # the default for this dtype; each budget replaces its tokens
    figures: dict[int, list[float]] = {budget: [] for budget in budgets}
    for number in range(args.rounds):
        for budget in budgets if number % 2 == 0 else budgets[::-1]:
            encoder.batching = dataclasses.replace(base, batch_tokens=budget)
            started = time.process_time()
            encoder.encode(texts)
            figures[budget].append(1000 * (time.process_time() - started) / len(texts))
        print(
            f"    process {args.seed}, round {number + 1}: "
            + ", ".join(f"{budget}: {values[-1]:.1f}" for budget, values in figures.items()),
            file=sys.stderr,
            flush=True,
        )
    print(json.dumps({"default": base.batch_tokens, "ms": figures}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", default="512,1024,2048", help="tokens per batch, commas")
    parser.add_argument("--dtype", default="fp32", help="fp32 or bf16 (the encoder's dtypes)")
    parser.add_argument(
        "--processes", type=int, default=usable_cores(), help="default: one per usable core"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--texts", type=int, default=600, help="texts per encode call")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(
        f"==> {args.processes} processes x {args.threads} threads, {args.dtype}, budgets"
        f" {args.budgets}, {args.rounds} rounds of {args.texts} texts",
        file=sys.stderr,
        flush=True,
    )
    children = [
        subprocess.Popen(
            [sys.executable, __file__, *sys.argv[1:], "--child", "--seed", str(7 + number)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for number in range(args.processes)
    ]
    results = []
    for process in children:
        out, _ = process.communicate()
        if process.returncode:
            sys.exit(f"a measuring process failed (exit {process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    default = results[0]["default"]
    pooled: dict[str, list[float]] = {}
    for result in results:
        for budget, values in result["ms"].items():
            pooled.setdefault(budget, []).extend(values)
    medians = {budget: round(statistics.median(values), 2) for budget, values in pooled.items()}
    base = medians.get(str(default))
    ratios = {budget: round(ms / base, 3) for budget, ms in medians.items()} if base else {}
    print(f"==> CPU ms per text, medians: {medians}", file=sys.stderr)
    print(
        json.dumps(
            {
                "dtype": args.dtype,
                "processes": args.processes,
                "threads": args.threads,
                "ms_per_text": medians,
                "ratio_to_default": ratios,
                "default": default,
            }
        )
    )


if __name__ == "__main__":
    main()
