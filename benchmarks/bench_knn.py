"""kNN index libraries compared on synthetic 512-d unit vectors (issue 14).

    .venv/bin/python benchmarks/bench_knn.py --n 1000000 --queries 200
    .venv/bin/python benchmarks/bench_knn.py --n 10000000 --only faiss

Contenders: `faiss`, the project's index built by its own `build_ivf`
(laion_assets/pipeline/release/knn.py: IVF{nlist},SQfp16, bounded kmeans sample, batches
merged into on-disk lists, served memory-mapped), timed at several nprobe; `usearch`, the
HNSW index the project used before (M=16, ef_add 128, ef 64, f16, served with view=True;
not a project dependency any more: `uv pip install usearch` first).

Per contender: build wall and CPU seconds (vector generation excluded), index bytes on disk,
RSS of the serving process (anonymous and file-backed, after the queries), single-query
latency p50/p95 (k=10, one query at a time, one thread) and recall@10 against exact
inner-product search over the float32 vectors.

The vectors are clustered like CLIP embeddings (not uniform on the sphere, which no ANN index
handles well and no real embedding set looks like): 4,096 random centres, each vector a
centre plus noise (uniform random bytes scaled to a standard deviation of 0.06 a dimension,
three times cheaper to draw than Gaussian noise), normalised. They are generated chunk by
chunk, each chunk from its own seed, so 10 M vectors (20 GB as float32) are never all in
RAM: every pass over them (exact truth, training sample, adding) regenerates the chunks; the
build is given them as float16, as a release stores them. Queries are fresh draws from the
same mixture.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator

import numpy as np

from laion_assets.pipeline.release import knn

DIM = 512
K = 10
CHUNK = 250_000
NOISE = 0.06  # standard deviation of a vector's noise in each dimension, before normalising
INT8_STD = 256 / 12 ** 0.5  # of uniform random bytes: a third of the cost of Gaussian draws
NPROBES = (8, 16, 32, 64)


class Vectors:
    """The synthetic data set: chunk i is drawn from seed (seed, i); tracks the wall and CPU
    seconds spent generating so that build timings can leave them out."""

    def __init__(self, n: int, noise: float = NOISE, seed: int = 0) -> None:
        self.n, self.noise, self.seed = n, noise, seed
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((4096, DIM), dtype=np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.wall = self.cpu = 0.0

    def draw(self, rng: np.random.Generator, m: int) -> np.ndarray:
        w0, c0 = time.perf_counter(), time.process_time()
        rows = self.centres[rng.integers(0, len(self.centres), m)]
        noise = np.frombuffer(rng.bytes(m * DIM), dtype=np.int8).reshape(m, DIM)
        rows += noise * np.float32(self.noise / INT8_STD)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        self.wall += time.perf_counter() - w0
        self.cpu += time.process_time() - c0
        return rows

    def chunks(self, dtype=np.float32) -> Iterator[np.ndarray]:
        for i, start in enumerate(range(0, self.n, CHUNK)):
            rng = np.random.default_rng((self.seed, 1, i))
            yield self.draw(rng, min(CHUNK, self.n - start)).astype(dtype, copy=False)

    def queries(self, m: int) -> np.ndarray:
        return self.draw(np.random.default_rng((self.seed, 2)), m)


def exact_top(vectors: Vectors, queries: np.ndarray) -> np.ndarray:
    best_s = np.full((len(queries), K), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), K), dtype=np.int64)
    start = 0
    for chunk in vectors.chunks():
        scores = queries @ chunk.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        all_s = np.concatenate([best_s, np.take_along_axis(scores, top, 1)], 1)
        all_i = np.concatenate([best_i, top + start], 1)
        keep = np.argsort(-all_s, axis=1)[:, :K]
        best_s, best_i = np.take_along_axis(all_s, keep, 1), np.take_along_axis(all_i, keep, 1)
        start += len(chunk)
    return best_i


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def timed_queries(search: Callable, queries: np.ndarray) -> tuple[np.ndarray, float, float]:
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(search(q))
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return np.array(found), float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def rss_mb() -> dict[str, float]:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "RssAnon", "RssFile")}


class Timer:
    """Build wall and CPU seconds, less the vector generation done meanwhile."""

    def __init__(self, vectors: Vectors) -> None:
        self.vectors = vectors

    def __enter__(self) -> Timer:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        self.gw, self.gc = self.vectors.wall, self.vectors.cpu
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.w0 - (self.vectors.wall - self.gw)
        self.cpu = time.process_time() - self.c0 - (self.vectors.cpu - self.gc)


def bench_faiss(vectors: Vectors, queries, truth, folder, threads) -> list[dict]:
    import faiss
    with Timer(vectors) as built:
        params = knn.build_ivf(lambda: vectors.chunks(np.float16), vectors.n, DIM, folder,
                               threads, work_dir=folder)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in (knn.INDEX_FILE,
                                                                   knn.LISTS_FILE))
    before = rss_mb()
    index = knn.open_ivf(folder, knn.NPROBE)
    faiss.omp_set_num_threads(1)
    rows = []
    for nprobe in NPROBES:
        faiss.extract_index_ivf(index).nprobe = nprobe
        found, p50, p95 = timed_queries(lambda q: index.search(q[None, :], K)[1][0], queries)
        rows.append({"library": f"faiss {faiss.__version__}",
                     "index": f"{params['factory']} nprobe={nprobe}, kmeans on "
                              f"{params['train_points']} points, on-disk lists mmap",
                     "build_s": built.wall, "build_cpu_s": built.cpu, "bytes": size,
                     "p50_ms": p50, "p95_ms": p95, "recall@10": recall(found, truth)})
    after = rss_mb()
    for row in rows:
        row["serving_rss_mb"] = {k: round(after[k] - before[k], 1) for k in after}
    return rows


def bench_usearch(vectors: Vectors, queries, truth, folder, threads) -> list[dict]:
    from usearch.index import Index
    index = Index(ndim=DIM, metric="ip", dtype="f16", connectivity=16, expansion_add=128,
                  expansion_search=64)
    with Timer(vectors) as built:
        start = 0
        for chunk in vectors.chunks(np.float16):
            index.add(np.arange(start, start + len(chunk), dtype=np.uint64), chunk,
                      threads=threads)
            start += len(chunk)
    path = os.path.join(folder, "usearch.index")
    index.save(path)
    del index
    before = rss_mb()
    view = Index.restore(path, view=True)
    view.expansion_search = 64
    found, p50, p95 = timed_queries(
        lambda q: view.search(q, K, threads=1).keys.astype(np.int64), queries)
    after = rss_mb()
    return [{"library": "usearch", "index": "HNSW M=16 ef_add=128 ef=64, f16, view()",
             "build_s": built.wall, "build_cpu_s": built.cpu, "bytes": os.path.getsize(path),
             "p50_ms": p50, "p95_ms": p95, "recall@10": recall(found, truth),
             "serving_rss_mb": {k: round(after[k] - before[k], 1) for k in after}}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", choices=("faiss", "usearch"), nargs="*")
    parser.add_argument("--noise", type=float, default=NOISE,
                        help="noise a dimension: higher is harder (clusters overlap more)")
    args = parser.parse_args()
    vectors = Vectors(args.n, args.noise)
    queries = vectors.queries(args.queries)
    t0 = time.perf_counter()
    truth = exact_top(vectors, queries)
    print(json.dumps({"n": args.n, "noise": args.noise,
                      "exact_truth_s": round(time.perf_counter() - t0, 1),
                      "load": os.getloadavg()}), flush=True)
    contenders = {"faiss": bench_faiss, "usearch": bench_usearch}
    for name in args.only or list(contenders):
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
            rows = contenders[name](vectors, queries, truth, folder, args.threads)
        for row in rows:
            row["build_s_per_million"] = row["build_s"] / (args.n / 1e6)
            row["build_cpu_s_per_million"] = row["build_cpu_s"] / (args.n / 1e6)
            print(json.dumps({"n": args.n, **row, "load": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
