"""kNN index libraries compared on synthetic 512-d unit vectors (issue 14).

    .venv/bin/python benchmarks/bench_knn.py --n 1000000 --queries 200

Per contender: build seconds (both cores), index bytes on disk, single-query latency p50/p95
(k=10, one query at a time, the index loaded memory-mapped from disk) and recall@10 against
exact inner-product search over the float32 vectors.

The vectors are clustered like CLIP embeddings (not uniform on the sphere, which no ANN index
handles well and no real embedding set looks like): 4,096 random centres, each vector a
centre plus Gaussian noise, normalised. Queries are fresh draws from the same mixture.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

DIM = 512
K = 10


def clustered(rng: np.random.Generator, centres: np.ndarray, n: int,
              chunk: int = 200_000) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        rows = centres[rng.integers(0, len(centres), m)]
        rows = rows + rng.standard_normal((m, DIM), dtype=np.float32) * 0.06
        out[start:start + m] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def exact_top(data: np.ndarray, queries: np.ndarray, chunk: int = 250_000) -> np.ndarray:
    best_s = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), K), dtype=np.int64)
    for start in range(0, len(data), chunk):
        scores = queries @ data[start:start + chunk].T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        s = np.take_along_axis(scores, top, 1)
        all_s = np.concatenate([best_s, s], 1)
        all_i = np.concatenate([best_i, top + start], 1)
        keep = np.argsort(-all_s, axis=1)[:, :K]
        best_s, best_i = np.take_along_axis(all_s, keep, 1), np.take_along_axis(all_i, keep, 1)
    return best_i


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def timed_queries(search, queries: np.ndarray) -> tuple[np.ndarray, float, float]:
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(search(q))
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return np.array(found), float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def bench_usearch(data, queries, truth, folder, threads):
    from usearch.index import Index
    index = Index(ndim=DIM, metric="ip", dtype="f16", connectivity=16, expansion_add=128,
                  expansion_search=64)
    t0 = time.perf_counter()
    index.add(np.arange(len(data), dtype=np.uint64), data, threads=threads)
    build = time.perf_counter() - t0
    path = os.path.join(folder, "usearch.index")
    index.save(path)
    del index
    view = Index.restore(path, view=True)
    view.expansion_search = 64

    def search(q):
        return view.search(q, K, threads=1).keys.astype(np.int64)
    found, p50, p95 = timed_queries(search, queries)
    return {"library": "usearch", "index": "HNSW M=16 ef_add=128 ef=64, f16, view()",
            "build_s": build, "bytes": os.path.getsize(path), "p50_ms": p50, "p95_ms": p95,
            "recall@10": recall(found, truth)}


def bench_faiss(data, queries, truth, folder, threads, spec, nprobe):
    import faiss
    faiss.omp_set_num_threads(threads)
    index = faiss.index_factory(DIM, spec, faiss.METRIC_INNER_PRODUCT)
    t0 = time.perf_counter()
    train = data[np.random.default_rng(1).choice(len(data), min(len(data), 100_000),
                                                 replace=False)]
    index.train(train)
    index.add(data)
    build = time.perf_counter() - t0
    path = os.path.join(folder, "faiss.index")
    faiss.write_index(index, path)
    del index
    loaded = faiss.read_index(path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    faiss.extract_index_ivf(loaded).nprobe = nprobe
    faiss.omp_set_num_threads(1)

    def search(q):
        return loaded.search(q[None, :], K)[1][0]
    found, p50, p95 = timed_queries(search, queries)
    return {"library": "faiss", "index": f"{spec} nprobe={nprobe}, IO_FLAG_MMAP",
            "build_s": build, "bytes": os.path.getsize(path), "p50_ms": p50, "p95_ms": p95,
            "recall@10": recall(found, truth)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", choices=("usearch", "faiss-pq", "faiss-sq8"), nargs="*")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4096, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data = clustered(rng, centres, args.n)
    queries = clustered(rng, centres, args.queries)
    t0 = time.perf_counter()
    truth = exact_top(data, queries)
    print(json.dumps({"n": args.n, "exact_s_per_query": (time.perf_counter() - t0)
                      / args.queries}), flush=True)
    contenders = {
        "usearch": lambda f: bench_usearch(data, queries, truth, f, args.threads),
        "faiss-pq": lambda f: bench_faiss(data, queries, truth, f, args.threads,
                                          "IVF4096,PQ64", 32),
        "faiss-sq8": lambda f: bench_faiss(data, queries, truth, f, args.threads,
                                           "IVF4096,SQ8", 32),
    }
    for name in args.only or list(contenders):
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
            row = contenders[name](folder)
        row["build_s_per_million"] = row["build_s"] / (args.n / 1e6)
        print(json.dumps({"n": args.n, **row}), flush=True)


if __name__ == "__main__":
    main()
