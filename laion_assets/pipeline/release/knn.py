"""A kNN index per release version over its image embeddings (faiss IVF, float16 codes).

Layout (a store partition, committed atomically by `_CURRENT.json` like a stage output; the
release version's own folder and manifest are never touched):

    knn/<name>/v<NNNN>/<attempt>/
      image.faiss       faiss IndexIVFScalarQuantizer header: the coarse quantizer
                        (`IVF{nlist},SQfp16`, inner product on unit vectors); id = release row
      image.ivfdata     its inverted lists (faiss OnDiskInvertedLists): the float16 codes and
                        row ids, memory-mapped when served
      rows.parquet      row (int64), part (int32), part_row (int64), hash (int64)

Row i of the index is row i of the version read part by part in order (row i of the
concatenated `img_emb/part-*.npy`), so `rows.parquet` maps a hit back to its part and to the
release's `hash` (pair_id). The build never holds the release in RAM: kmeans is trained on a
bounded sample (`TRAIN_POINTS_PER_LIST` a list), the vectors are added batch by batch into
partial indexes written to disk, and those are merged into the on-disk lists. Serving maps
`image.ivfdata` (nothing of it loaded into RAM, so a 10 M index is not held twice); "more
like this" reads the row's embedding from the release's own `img_emb` part. Why faiss IVF
and not usearch HNSW (whose build costs ~35 CPU-minutes a million rows here): BENCHMARKS.md,
"kNN index".
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from faiss.contrib.ondisk import merge_ondisk

from laion_assets.pipeline.core.store import DatasetStore, StoreError
from laion_assets.pipeline.formats.embeddings import NpyRows, _load_npy
from laion_assets.pipeline.release.publish import read_release

KNN = "knn"
INDEX_FILE = "image.faiss"
LISTS_FILE = "image.ivfdata"
ROWS_FILE = "rows.parquet"
ROWS_SCHEMA = pa.schema([("row", pa.int64()), ("part", pa.int32()), ("part_row", pa.int64()),
                         ("hash", pa.int64())])
EXACT_ROWS = 200_000  # below: one list, an exact scan (p95 under 50 ms here)
MAX_LISTS = 4096  # from EXACT_ROWS on: fewer lists lost recall on clustered data
TRAIN_POINTS_PER_LIST = 64
KMEANS_ITERATIONS = 10
NPROBE = 16  # lists scanned a query: recall@10 0.996, p95 24 ms at 10 M (BENCHMARKS.md)
BATCH_CODE_BYTES = 1 << 30  # float16 codes held in RAM before a partial index is written
BLOCK_ROWS = 1 << 16  # rows converted to float32 at a time
SAMPLE_SEED = 0

Chunks = Callable[[], Iterable[np.ndarray]]
"""Opens a fresh pass over the vectors, in row order, as [rows, dim] arrays (float16)."""


def partition(name: str, version: int) -> str:
    """The store partition of a version's index under `knn/`."""
    return f"{name}/v{version:04d}"


def list_count(rows: int) -> int:
    """Inverted lists for `rows` vectors: one (an exact scan) below `EXACT_ROWS`, else
    `MAX_LISTS` (BENCHMARKS.md, "kNN index": with fewer lists than the data has clusters,
    IVF lost recall at any nprobe)."""
    return 1 if rows < EXACT_ROWS else MAX_LISTS


def index_params(rows: int) -> dict[str, Any]:
    nlist = list_count(rows)
    return {"factory": f"IVF{nlist},SQfp16", "metric": "inner_product", "nlist": nlist,
            "nprobe": min(NPROBE, nlist), "train_points": min(rows, nlist * TRAIN_POINTS_PER_LIST),
            "kmeans_iterations": KMEANS_ITERATIONS, "dtype": "f16"}


def _blocks(chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    for chunk in chunks:
        for start in range(0, len(chunk), BLOCK_ROWS):
            yield np.ascontiguousarray(chunk[start:start + BLOCK_ROWS], dtype=np.float32)


def training_sample(chunks: Chunks, rows: int, size: int) -> np.ndarray:
    """`size` rows drawn uniformly (a fixed seed) from one pass over the vectors."""
    chosen = np.sort(np.random.default_rng(SAMPLE_SEED).choice(rows, size, replace=False))
    picked, start = [], 0
    for chunk in chunks():
        lo, hi = np.searchsorted(chosen, [start, start + len(chunk)])
        picked.append(np.asarray(chunk[chosen[lo:hi] - start], dtype=np.float32))
        start += len(chunk)
    if start != rows:
        raise ValueError(f"the vectors hold {start} rows, not the {rows} announced")
    return np.ascontiguousarray(np.concatenate(picked))


def _write_batches(trained: faiss.Index, chunks: Iterable[np.ndarray], dim: int,
                   folder: str) -> list[str]:
    """Add the vectors to copies of the trained (empty) index, one per `BATCH_CODE_BYTES` of
    codes, each written to `folder`; returns their paths."""
    batch_rows = max(BLOCK_ROWS, BATCH_CODE_BYTES // (2 * dim))
    paths: list[str] = []
    batch, start = faiss.clone_index(trained), 0
    for block in _blocks(chunks):
        batch.add_with_ids(block, np.arange(start, start + len(block), dtype=np.int64))
        start += len(block)
        if batch.ntotal >= batch_rows:
            paths.append(_write_batch(batch, folder, len(paths)))
            batch = faiss.clone_index(trained)
    if batch.ntotal or not paths:
        paths.append(_write_batch(batch, folder, len(paths)))
    return paths


def _write_batch(batch: faiss.Index, folder: str, number: int) -> str:
    path = os.path.join(folder, f"batch-{number:05d}.faiss")
    faiss.write_index(batch, path)
    return path


def build_ivf(chunks: Chunks, rows: int, dim: int, folder: str, threads: int = 0,
              work_dir: str | None = None) -> dict[str, Any]:
    """Write `INDEX_FILE` and `LISTS_FILE` for `rows` vectors of `dim` into local `folder`
    (two passes over `chunks`: the training sample, then the vectors); returns the params.
    Partial indexes go to a temporary folder under `work_dir`."""
    if rows <= 0 or dim <= 0:
        raise ValueError(f"an index needs vectors: {rows} rows of dimension {dim}")
    if threads:
        faiss.omp_set_num_threads(threads)
    params = index_params(rows)
    index = faiss.index_factory(dim, params["factory"], faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.niter = KMEANS_ITERATIONS
    ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
    ivf.cp.min_points_per_centroid = 1
    index.train(training_sample(chunks, rows, params["train_points"]))
    with tempfile.TemporaryDirectory(prefix="laion-knn-", dir=work_dir) as scratch:
        batches = _write_batches(index, chunks(), dim, scratch)
        merge_ondisk(index, batches, os.path.join(folder, LISTS_FILE))
    if index.ntotal != rows:
        raise ValueError(f"indexed {index.ntotal} vectors, not the {rows} announced")
    faiss.write_index(index, os.path.join(folder, INDEX_FILE))
    return params


def open_ivf(folder: str, nprobe: int) -> faiss.Index:
    """An index written by `build_ivf`, its lists memory-mapped from `folder`."""
    index = faiss.read_index(os.path.join(folder, INDEX_FILE),
                             faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)
    faiss.extract_index_ivf(index).nprobe = nprobe
    return index


@dataclass(frozen=True)
class KnnManifest:
    release: str
    version: int
    rows: int
    dim: int
    index_file: str
    lists_file: str
    rows_file: str
    library: str
    params: dict[str, Any]
    release_created_at: str = ""


def _release_parts(store: DatasetStore, name: str, version: int):
    """The release, its image-embedding parts (memory-mapped where local) and row tables."""
    release = read_release(store, name, version)
    images, tables, start = [], [], 0
    for part in range(release.parts):
        image = _load_npy(store.open, f"{release.folder}/img_emb/part-{part:05d}.npy")
        hashes = store.read_parquet(f"{release.folder}/data/part-{part:05d}.parquet",
                                    columns=["hash"]).column("hash")
        if len(image) != len(hashes):
            raise StoreError(f"{store.uri(release.folder)}: part {part}: {len(image)} image "
                             f"embeddings for {len(hashes)} data rows")
        n = len(image)
        images.append(image)
        tables.append(pa.table([pa.array(np.arange(start, start + n), pa.int64()),
                                pa.array(np.full(n, part, np.int32)),
                                pa.array(np.arange(n), pa.int64()),
                                hashes.cast(pa.int64())], schema=ROWS_SCHEMA))
        start += n
    rows = pa.concat_tables(tables) if tables else ROWS_SCHEMA.empty_table()
    return release, images, rows


def build_index(store: DatasetStore, name: str, version: int, threads: int = 0) -> dict:
    """Build and commit the image-embedding index of release `name` version `version`;
    returns the committed manifest. A release without rows gets the row table only."""
    release, images, rows = _release_parts(store, name, version)
    images = [image for image in images if len(image)]
    dim = images[0].shape[1] if images else 0
    params: dict[str, Any] = {}
    with store.stage_output(KNN, partition(name, version)) as output:
        if rows.num_rows and store.is_local:
            folder = os.path.dirname(store.path(output.file(INDEX_FILE)))
            os.makedirs(folder, exist_ok=True)
            params = build_ivf(lambda: images, rows.num_rows, dim, folder, threads)
        elif rows.num_rows:
            with tempfile.TemporaryDirectory(prefix="laion-knn-") as folder:
                params = build_ivf(lambda: images, rows.num_rows, dim, folder, threads)
                for file in (INDEX_FILE, LISTS_FILE):
                    with open(os.path.join(folder, file), "rb") as source, \
                            output.open(file) as target:
                        shutil.copyfileobj(source, target, 1 << 22)
        with output.open(ROWS_FILE) as handle:
            pq.write_table(rows, handle, compression="zstd")
        built = bool(rows.num_rows)
        manifest = KnnManifest(
            release=name, version=version, rows=rows.num_rows, dim=dim,
            index_file=output.file(INDEX_FILE) if built else "",
            lists_file=output.file(LISTS_FILE) if built else "",
            rows_file=output.file(ROWS_FILE), library=f"faiss {faiss.__version__}",
            params=params, release_created_at=release.created_at)
        return output.commit(manifest.__dict__)


def read_index_manifest(store: DatasetStore, name: str, version: int) -> dict | None:
    """The committed index manifest of a version, or None when none is built."""
    return store.current(KNN, partition(name, version))


@dataclass
class Hit:
    row: int
    part: int
    part_row: int
    hash: int
    similarity: float


class KnnIndex:
    """A committed index opened for serving: its lists memory-mapped from the store (local)
    or from a local cache folder they are fetched to once (an object store), and the row
    mapping."""

    def __init__(self, store: DatasetStore, manifest: dict,
                 cache_dir: str | None = None) -> None:
        self.store, self.manifest = store, manifest
        self.rows = store.read_parquet(manifest["rows_file"])
        self._hash = self.rows.column("hash").to_numpy()
        self._part = self.rows.column("part").to_numpy()
        self._part_row = self.rows.column("part_row").to_numpy()
        self._release_folder = read_release(store, manifest["release"],
                                            manifest["version"]).folder
        self.index = None
        if manifest["rows"]:
            self.index = open_ivf(self._local_folder(cache_dir), manifest["params"]["nprobe"])

    def _local_folder(self, cache_dir: str | None) -> str:
        if self.store.is_local:
            return os.path.dirname(self.store.path(self.manifest["index_file"]))
        folder = cache_dir or tempfile.mkdtemp(prefix="laion-knn-")
        for key in ("index_file", "lists_file"):
            path = os.path.join(folder, posixpath.basename(self.manifest[key]))
            with self.store.open(self.manifest[key]) as source, open(path, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 22)
        return folder

    def __len__(self) -> int:
        return int(self.manifest["rows"])

    def vector(self, row: int) -> np.ndarray:
        """The release's float16 image embedding of row `row` ("more like this"), read from
        its `img_emb` part."""
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} is not in the index ({len(self)} rows)")
        part, part_row = int(self._part[row]), int(self._part_row[row])
        path = f"{self._release_folder}/img_emb/part-{part:05d}.npy"
        with self.store.open(path) as handle:
            return NpyRows(handle).row(part_row).astype(np.float32)

    def search(self, vector: np.ndarray, k: int = 10) -> list[Hit]:
        """The `k` nearest rows to one vector (cosine: the query is normalised, the release's
        embeddings are unit vectors), best first."""
        if self.index is None or k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        scores, rows = self.index.search(query, min(k, len(self)))
        return [Hit(int(r), int(self._part[r]), int(self._part_row[r]), int(self._hash[r]),
                    float(s))
                for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]


def load_index(store: DatasetStore, name: str, version: int,
               cache_dir: str | None = None) -> KnnIndex:
    """The committed index of a version; StoreError when none is built."""
    manifest = read_index_manifest(store, name, version)
    if manifest is None:
        raise StoreError(f"{store.uri(posixpath.join(KNN, partition(name, version)))}: no "
                         f"kNN index built (materialize `knn_index`)")
    return KnnIndex(store, manifest, cache_dir)
