"""Re-embedding benchmark: `manage.py reembed --force` by the bulk path against the incremental path.

    scripts/stack.sh exec python bench/reembed.py [--items 100000] [--incremental-items 10000]
        [--encoder model|stand-in] [--search-every 0.5] [--keep]

Everything happens in a database of its own (`<DATABASE_URL's name>_bench_reembed`,
created, migrated and dropped at the end unless --keep). It starts from a filled table:
`--items` items with texts of a realistic spread of lengths (3 to 350 words, many short,
some past the model's 256-token limit) and vectors already stored and indexed (synthetic
clustered unit vectors: computing the starting vectors would double the run). Then, both
in this process with the real encoder (`--inline`, so both paths get the same cores):

1. the incremental path on one project of `--incremental-items` items, the HNSW index
   holding the whole table (`reembed --force --project … --path incremental --inline`):
   one insertion into the index per item; its rate gives the extrapolation to `--items`;
2. the bulk path on the whole table (`reembed --force --path bulk --inline`), with a
   thread searching the other project every `--search-every` seconds throughout, to
   show what search answers and how fast in each phase.

`--encoder stand-in` replaces the model by a function of the text's hash that returns
clustered unit vectors at once: what remains is the storage side of each path (writes,
index insertions, the index build), which is all that differs between them, measured at
a size the model would need an hour for on a shared 2-core machine.

The last line printed is one JSON object.
"""

import argparse
import io
import json
import os
import re
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics.settings.local")
os.environ["DEBUG"] = "0"  # no query log in the timed process
os.environ.setdefault("LOG_LEVEL", "WARNING")

from throwaway import say, throwaway_database  # noqa: E402

SEED = 20_261_205
DIMENSIONS = 384
CLUSTERS = 300
WORDS = [
    "kettle",
    "lantern",
    "copper",
    "meadow",
    "violin",
    "harbor",
    "pepper",
    "glacier",
    "canvas",
    "orchard",
    "thunder",
    "marble",
    "saddle",
    "quartz",
    "willow",
    "ember",
    "biscuit",
    "falcon",
    "cobalt",
    "prairie",
    "tunnel",
    "velvet",
    "walnut",
    "beacon",
    "sturdy",
    "cast",
    "iron",
    "skillet",
    "searing",
    "steaks",
    "baking",
    "cornbread",
    "open",
    "fire",
    "handle",
    "stays",
    "cool",
    "surface",
    "seasoned",
    "years",
    "breakfast",
    "waterproof",
    "jacket",
    "hiking",
    "trail",
    "lightweight",
    "breathable",
    "zipper",
    "pocket",
    "hood",
    "adjustable",
    "cuffs",
    "ceramic",
    "mug",
    "dishwasher",
    "safe",
    "glaze",
    "handmade",
    "studio",
    "stoneware",
    "wireless",
    "headphones",
    "noise",
    "cancelling",
    "battery",
    "hours",
    "charging",
    "case",
    "bluetooth",
    "microphone",
    "garden",
    "hose",
    "flexible",
    "brass",
    "fittings",
    "lawn",
    "sprinkler",
    "mystery",
    "novel",
    "detective",
    "foggy",
    "winter",
    "chapter",
    "author",
    "award",
    "acoustic",
    "guitar",
    "strings",
    "warm",
    "sound",
    "campfire",
    "songs",
    "spruce",
    "top",
]


def texts(count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Return (title, text) pairs: log-uniform lengths from 3 to 350 words."""
    lengths = np.exp(rng.uniform(np.log(3), np.log(350), size=count)).astype(int)
    vocabulary = np.array(WORDS)
    pairs = []
    for index, length in enumerate(lengths):
        words = vocabulary[rng.integers(0, len(vocabulary), size=int(length))]
        pairs.append((f"Item {index} {words[0]}", " ".join(words)))
    return pairs


def vectors(count: int, rng: np.random.Generator) -> Any:
    centres = rng.normal(size=(CLUSTERS, DIMENSIONS)).astype(np.float32)
    chosen = centres[rng.integers(0, CLUSTERS, size=count)]
    result = chosen + rng.normal(size=chosen.shape).astype(np.float32) * 0.35
    result /= np.linalg.norm(result, axis=1, keepdims=True)
    return result.astype(np.float32)


def load(url: str, projects: list[tuple[int, int]], model: str) -> None:
    """COPY the items (binary), current with `model`: `projects` is [(project id, items)]."""
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    from embeddings.validation import content_hash

    rng = np.random.default_rng(SEED)
    total = sum(count for _, count in projects)
    pairs = texts(total, rng)
    stored = vectors(total, rng)
    stamp = datetime.now(UTC)
    columns = (
        "project_id, external_id, title, text, attributes, content_hash, embedding,"
        " embedded_hash, embedding_model, embedded_at, created_at, updated_at"
    )
    types = ["bigint", "varchar", "varchar", "text", "jsonb", "varchar", "vector"]
    types += ["varchar", "varchar", "timestamptz", "timestamptz", "timestamptz"]
    with psycopg.connect(url) as conn:
        register_vector(conn)
        with (
            conn.cursor() as cursor,
            cursor.copy(
                sql.SQL("COPY embeddings_item ({}) FROM STDIN WITH (FORMAT BINARY)").format(
                    sql.SQL(columns)
                )
            ) as copy,
        ):
            copy.set_types(types)
            index = 0
            for project_id, count in projects:
                for _ in range(count):
                    title, text = pairs[index]
                    digest = content_hash(title, text)
                    copy.write_row(
                        (
                            project_id,
                            f"i-{index}",
                            title,
                            text,
                            Jsonb({"category": f"c{index % 10}"}),
                            digest,
                            stored[index],
                            digest,
                            model,
                            stamp,
                            stamp,
                            stamp,
                        )
                    )
                    index += 1


def build_index(url: str) -> float:
    """Build the served HNSW index of the starting table (dropped before the load)."""
    from embeddings import bulk

    started = time.perf_counter()
    with psycopg.connect(
        url,
        autocommit=True,
        options="-c maintenance_work_mem=1GB -c max_parallel_maintenance_workers=1",
    ) as ddl:
        bulk.build_index(ddl)
        ddl.execute("ANALYZE embeddings_item")
    return time.perf_counter() - started


def stand_in_encoder() -> Any:
    """Return an encode function that maps each text to a clustered unit vector by its hash."""
    import hashlib

    centres = vectors(CLUSTERS, np.random.default_rng(SEED + 1))

    def encode(batch: list[str]) -> Any:
        rows = []
        for text in batch:
            digest = hashlib.sha256(text.encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            rows.append(centres[digest[8] % CLUSTERS] + rng.normal(size=DIMENSIONS) * 0.02)
        result = np.asarray(rows, dtype=np.float32)
        return result / np.linalg.norm(result, axis=1, keepdims=True)

    return encode


class Searcher(threading.Thread):
    """Search one project every `every` seconds, recording (phase, ms, results) each time."""

    def __init__(self, project_id: int, every: float) -> None:
        super().__init__(daemon=True)
        self.project_id, self.every = project_id, every
        self.stop = threading.Event()
        self.samples: list[tuple[str, float, int]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        from django.db import connection

        from embeddings.active_model import served_model
        from embeddings.queries import nearest_items

        rng = np.random.default_rng(1)
        try:
            while not self.stop.wait(self.every):
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT coalesce((SELECT state FROM embeddings_embeddingrun"
                        " WHERE state NOT IN ('done', 'cancelled') LIMIT 1), 'idle')"
                    )
                    row = cursor.fetchone()
                phase = str(row[0]) if row else "idle"
                query = vectors(1, rng)[0]
                started = time.perf_counter()
                found = nearest_items(
                    project_id=self.project_id,
                    vector=query,
                    k=10,
                    model=served_model(connection).name,
                )
                ms = (time.perf_counter() - started) * 1000
                self.samples.append((phase, ms, len(found.results)))
        except Exception as exc:  # reported in the figures, never hidden
            self.errors.append(repr(exc))
        finally:
            connection.close()

    def summary(self) -> dict[str, Any]:
        phases: dict[str, Any] = {}
        for phase in dict.fromkeys(sample[0] for sample in self.samples):
            times = sorted(ms for name, ms, _ in self.samples if name == phase)
            phases[phase] = {
                "searches": len(times),
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1),
                "fewest_results": min(n for name, _, n in self.samples if name == phase),
            }
        return phases


def reembed(*arguments: str) -> tuple[float, str]:
    """Run `manage.py reembed` in this process; return its seconds and what it printed."""
    from django.core.management import call_command

    out = io.StringIO()
    started = time.perf_counter()
    call_command("reembed", *arguments, stdout=out)
    seconds = time.perf_counter() - started
    say(out.getvalue().strip())
    return seconds, out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--incremental-items", type=int, default=10_000)
    parser.add_argument("--search-every", type=float, default=0.5)
    parser.add_argument("--encoder", choices=["model", "stand-in"], default="model")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    if not 0 < args.incremental_items < args.items:
        parser.error("need 0 < --incremental-items < --items")
    with throwaway_database("reembed", keep=args.keep) as url:
        figures = run(url, args)
    print(json.dumps(figures))


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from analytics.services import ensure_project
    from embeddings import bulk
    from embeddings.worker import get_encoder, model_name

    say("==> migrating")
    call_command("migrate", verbosity=0)
    large = ensure_project(slug="bench-bulk", name="Bulk")
    small = ensure_project(slug="bench-incremental", name="Incremental")
    bulk_items = args.items - args.incremental_items
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(bulk.INDEX_NAME)))
    say(f"==> loading {args.items:,} items with stored vectors")
    started = time.perf_counter()
    load(url, [(large.pk, bulk_items), (small.pk, args.incremental_items)], model_name())
    say(f"    {time.perf_counter() - started:.1f} s; building the HNSW index")
    initial_build_s = build_index(url)
    say(f"    built in {initial_build_s:.1f} s")
    if args.encoder == "model":
        encoder = get_encoder()  # loaded once, outside both timings
        say(f"==> encoder {encoder.model_name} on {encoder.device}")
    else:
        import embeddings.worker

        # `reembed --inline` takes `encode_texts` from the worker module when it runs.
        embeddings.worker.encode_texts = stand_in_encoder()
        say("==> stand-in encoder: vectors from the texts' hashes, no model")

    say(f"==> incremental path: {args.incremental_items:,} items of one project")
    incremental_s, _ = reembed(
        "--force", "--project", small.slug, "--path", "incremental", "--inline", "-v", "1"
    )

    say(f"==> bulk path: all {args.items:,} items, searching project {large.slug} meanwhile")
    searcher = Searcher(large.pk, args.search_every)
    searcher.start()
    bulk_s, printed = reembed("--force", "--path", "bulk", "--inline", "-v", "1")
    time.sleep(args.search_every * 4)  # a few searches after the run, on the new index
    searcher.stop.set()
    searcher.join()
    phases = {
        name: float(seconds)
        for name, seconds in re.findall(r"(fill|swap|index) ([0-9.]+) s", printed)
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE embedded_hash = content_hash AND embedding_model = %s"
            " AND embedding IS NOT NULL), count(*) FROM embeddings_item",
            [model_name()],
        )
        current, total = cursor.fetchone() or (0, 0)
    incremental_rate = args.incremental_items / incremental_s
    figures: dict[str, Any] = {
        "items": args.items,
        "encoder": args.encoder,
        "cores": os.cpu_count(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "initial_index_build_s": round(initial_build_s, 1),
        "bulk_s": round(bulk_s, 1),
        "bulk_items_per_s": round(args.items / bulk_s, 1),
        "bulk_phases_s": phases,
        "incremental_measured_items": args.incremental_items,
        "incremental_s": round(incremental_s, 1),
        "incremental_items_per_s": round(incremental_rate, 1),
        "incremental_extrapolated_s": round(args.items / incremental_rate, 1),
        "speedup": round(args.items / incremental_rate / bulk_s, 2),
        "current_after": int(current),
        "table": int(total),
        "search_during_bulk": searcher.summary(),
        "search_errors": searcher.errors,
    }
    say(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
