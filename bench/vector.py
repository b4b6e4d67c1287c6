"""Vector search benchmark: recall@10 against exact search, latency and queries/s of the search.

    scripts/stack.sh exec python bench/vector.py [--items 100000] [--queries 300] [--runs 3]
        [--clients 2] [--qps-seconds 10] [--keep]

Everything happens in a database of its own (`<DATABASE_URL's name>_bench_vector`, created,
migrated, and dropped at the end unless --keep), so users' data is never touched. It
writes `--items` items with binary COPY: synthetic unit vectors in clusters of low
intrinsic dimension, as sentence embeddings are (embedding 100k texts on 2 cores takes
minutes), each with one of 10 categories. The HNSW index is the one `embeddings.Item`
declares, built after the load as production would after a bulk import. Queries are
fresh vectors from the same clusters; each is answered by `embeddings.queries.nearest_items`,
the function behind the search API, unfiltered and with `category` keeping 10% of the
items, and compared with an exact numpy search. Latencies are the median over `--runs`
passes of each query; queries/s comes from `--clients` threads, each with its own
connection. The last line printed is one JSON object.
"""

import argparse
import json
import os
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

# Into a log (not a terminal) a bar writes its final line only, not one per redraw.
from throwaway import say, throwaway_database  # noqa: E402

from analytics.progress import progress_bar  # noqa: E402

SEED = 20_261_125
DIMENSIONS = 384
CLUSTERS = 500
INTRINSIC = 16  # dimensions of variation inside a cluster
SPREAD = 0.55  # size of that variation relative to the centre
NOISE = 0.02  # isotropic noise on every coordinate
CATEGORIES = 10
K = 10
COPY_BATCH = 10_000
TARGET_RECALL, TARGET_P50_MS, TARGET_FILTERED_RECALL = 0.95, 5.0, 0.9


def clustered_vectors(count: int, rng: np.random.Generator, centres: Any, bases: Any) -> Any:
    """Return `count` unit vectors: a cluster centre plus variation in its own 16-d subspace."""
    cluster = rng.integers(0, len(centres), size=count)
    coefficients = rng.normal(size=(count, INTRINSIC)).astype(np.float32) * SPREAD
    vectors = centres[cluster] + np.einsum("nk,nkd->nd", coefficients, bases[cluster])
    vectors += rng.normal(size=vectors.shape).astype(np.float32) * NOISE
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def make_data(items: int, queries: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(SEED)
    centres = rng.normal(size=(CLUSTERS, DIMENSIONS)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.normal(size=(CLUSTERS, INTRINSIC, DIMENSIONS)).astype(np.float32)
    bases /= np.linalg.norm(bases, axis=2, keepdims=True)
    vectors = np.concatenate(
        [
            clustered_vectors(min(COPY_BATCH, items - start), rng, centres, bases)
            for start in range(0, items, COPY_BATCH)
        ]
    )
    return vectors, clustered_vectors(queries, rng, centres, bases)


def load(url: str, project_id: int, vectors: Any, model: str) -> None:
    """COPY the items in binary: vectors through pgvector's binary format."""
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    with psycopg.connect(url) as conn:
        register_vector(conn)
        columns = (
            "project_id, external_id, title, text, attributes, content_hash, embedding,"
            " embedded_hash, embedding_model, embedded_at, created_at, updated_at"
        )
        types = ["bigint", "varchar", "varchar", "text", "jsonb", "varchar", "vector"]
        types += ["varchar", "varchar", "timestamptz", "timestamptz", "timestamptz"]
        stamp = datetime.now(UTC)
        with (
            conn.cursor() as cursor,
            cursor.copy(
                sql.SQL("COPY embeddings_item ({}) FROM STDIN WITH (FORMAT BINARY)").format(
                    sql.SQL(columns)
                )
            ) as copy,
            progress_bar(total=len(vectors), unit="item", desc="COPY", verbosity=1) as bar,
        ):
            copy.set_types(types)
            for index, vector in enumerate(vectors):
                copy.write_row(
                    (
                        project_id,
                        f"v-{index}",
                        f"Item {index}",
                        "",
                        Jsonb({"category": f"c{index % CATEGORIES}"}),
                        "h",
                        vector,
                        "h",
                        model,
                        stamp,
                        stamp,
                        stamp,
                    )
                )
                if index % COPY_BATCH == COPY_BATCH - 1:
                    bar.update(COPY_BATCH)
            bar.update(len(vectors) % COPY_BATCH)
        conn.commit()


def build_index(url: str) -> float:
    """Create the model's HNSW index (dropped before the load), showing pgvector's progress."""
    from django.db import connection

    from embeddings.models import Item

    index = next(i for i in Item._meta.indexes if i.name == "item_embedding_hnsw")
    done = threading.Event()

    def watch() -> None:
        with (
            psycopg.connect(url, autocommit=True) as conn,
            progress_bar(total=0, unit="tuple", desc="HNSW build", verbosity=1) as bar,
        ):
            while not done.wait(1.0):
                row = conn.execute(
                    "SELECT tuples_done, tuples_total FROM pg_stat_progress_create_index"
                    " WHERE datname = current_database()"
                ).fetchone()
                if row:
                    bar.total = row[1] or bar.total
                    bar.n = row[0] or 0
                    bar.refresh()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Enough memory that the graph builds in memory, and both cores at work.
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 2")
    with connection.schema_editor() as editor:
        editor.add_index(Item, index)
    seconds = time.perf_counter() - started
    done.set()
    watcher.join()
    with connection.cursor() as cursor:
        cursor.execute("RESET maintenance_work_mem")
        cursor.execute("ANALYZE embeddings_item")
    return seconds


def exact_top(vectors: Any, query: Any, mask: Any | None) -> list[str]:
    scores = vectors @ query
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.argpartition(-scores, K)[:K]
    return [f"v-{i}" for i in top[np.argsort(-scores[top])]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(
    project_id: int, queries: Any, truths: list[list[str]], filtered: bool, runs: int
) -> dict[str, float]:
    """Time every query `runs` times; return recall, p50/p95 (of per-query medians), fewest results."""
    from embeddings.queries import nearest_items
    from embeddings.validation import AttributeFilter
    from embeddings.worker import model_name

    model = model_name()
    times: list[list[float]] = [[] for _ in queries]
    recalls, counts = [], []
    label = "filtered" if filtered else "unfiltered"
    with progress_bar(total=runs * len(queries), unit="query", desc=label, verbosity=1) as bar:
        for run in range(runs):
            for index, query in enumerate(queries):
                where = (
                    [AttributeFilter("category", (f"c{index % CATEGORIES}",))] if filtered else []
                )
                started = time.perf_counter()
                found = nearest_items(
                    project_id=project_id, vector=query, k=K, model=model, where=where
                )
                times[index].append((time.perf_counter() - started) * 1000)
                if run == 0:
                    ids = [result.external_id for result in found.results]
                    recalls.append(len(set(ids) & set(truths[index])) / K)
                    counts.append(len(ids))
                bar.update(1)
    medians = [statistics.median(samples) for samples in times]
    return {
        "recall": statistics.fmean(recalls),
        "p50": percentile(medians, 50),
        "p95": percentile(medians, 95),
        "min_results": min(counts),
    }


def throughput(project_id: int, queries: Any, clients: int, seconds: float) -> float:
    """Return unfiltered queries/s of `clients` threads, each with its own connection."""
    from django.db import connection

    from embeddings.queries import nearest_items
    from embeddings.worker import model_name

    model = model_name()
    counts = [0] * clients
    deadline = time.perf_counter() + seconds

    def client(number: int) -> None:
        try:
            index = number
            while time.perf_counter() < deadline:
                nearest_items(
                    project_id=project_id, vector=queries[index % len(queries)], k=K, model=model
                )
                counts[number] += 1
                index += clients
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3, help="timed passes over the queries")
    parser.add_argument("--clients", type=int, default=2, help="threads for queries/s")
    parser.add_argument("--qps-seconds", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    if args.items < 1000 or args.queries < 10 or args.runs < 1 or args.clients < 1:
        parser.error("need --items >= 1000, --queries >= 10, --runs >= 1, --clients >= 1")

    with throwaway_database("vector", keep=args.keep) as url:
        figures = run(url, args)
    print(json.dumps(figures))


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from analytics.services import ensure_project
    from embeddings.models import Item
    from embeddings.queries import ef_search_for
    from embeddings.worker import model_name

    say("==> migrating")
    call_command("migrate", verbosity=0)
    project = ensure_project(slug="bench-vector", name="Vector benchmark")
    say(f"==> generating {args.items:,} clustered vectors and {args.queries} queries")
    vectors, queries = make_data(args.items, args.queries)
    index = next(i for i in Item._meta.indexes if i.name == "item_embedding_hnsw")
    with connection.schema_editor() as editor:
        editor.remove_index(Item, index)
    load(url, project.pk, vectors, model_name())
    build_s = build_index(url)
    say(f"==> HNSW index built in {build_s:.1f} s")

    categories = np.arange(args.items) % CATEGORIES
    truth = [exact_top(vectors, q, None) for q in queries]
    truth_filtered = [
        exact_top(vectors, q, categories == i % CATEGORIES) for i, q in enumerate(queries)
    ]
    say("==> warming up")
    measure(project.pk, queries[: min(50, len(queries))], truth, filtered=False, runs=1)
    plain = measure(project.pk, queries, truth, filtered=False, runs=args.runs)
    filtered = measure(project.pk, queries, truth_filtered, filtered=True, runs=args.runs)
    say(f"==> queries/s with {args.clients} clients for {args.qps_seconds:g} s")
    qps = throughput(project.pk, queries, args.clients, args.qps_seconds)

    print(
        f"items {args.items:,}, queries {args.queries}, k {K}, ef_search {ef_search_for(K)}, index build {build_s:.1f} s"
    )
    print(
        f"unfiltered: recall@10 {plain['recall']:.4f}, p50 {plain['p50']:.2f} ms, p95 {plain['p95']:.2f} ms"
    )
    print(
        f"filtered (10%): recall@10 {filtered['recall']:.4f}, p50 {filtered['p50']:.2f} ms,"
        f" p95 {filtered['p95']:.2f} ms, fewest results {filtered['min_results']}"
    )
    print(f"throughput: {qps:.0f} queries/s ({args.clients} clients)")
    checks = [
        (
            f"recall@10 >= {TARGET_RECALL} at p50 <= {TARGET_P50_MS:g} ms",
            plain["recall"] >= TARGET_RECALL and plain["p50"] <= TARGET_P50_MS,
        ),
        (
            f"filtered: always {K} results, recall >= {TARGET_FILTERED_RECALL}",
            filtered["min_results"] == K and filtered["recall"] >= TARGET_FILTERED_RECALL,
        ),
    ]
    for label, passed in checks:
        print(f"target {label}: {'PASS' if passed else 'FAIL'}")
    return {
        "recall_at_10": round(plain["recall"], 4),
        "p50_ms": round(plain["p50"], 2),
        "p95_ms": round(plain["p95"], 2),
        "qps": round(qps, 1),
        "filtered_recall_at_10": round(filtered["recall"], 4),
        "filtered_min_results": filtered["min_results"],
        "filtered_p50_ms": round(filtered["p50"], 2),
        "filtered_p95_ms": round(filtered["p95"], 2),
        "items": args.items,
        "ef_search": ef_search_for(K),
        "index_build_s": round(build_s, 1),
    }


if __name__ == "__main__":
    main()
