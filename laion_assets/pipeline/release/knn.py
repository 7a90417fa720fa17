"""A kNN index per release version over its image embeddings (usearch HNSW, float16).

Layout (a store partition, committed atomically by `_CURRENT.json` like a stage output; the
release version's own folder and manifest are never touched):

    knn/<name>/v<NNNN>/<attempt>/
      image.usearch     usearch HNSW index, cosine metric, f16 vectors; key = release row
      rows.parquet      row (int64), part (int32), part_row (int64), hash (int64)

Row i of the index is row i of the version read part by part in order (row i of the
concatenated `img_emb/part-*.npy`), so `rows.parquet` maps a hit back to its part and to the
release's `hash` (pair_id). The embeddings are read memory-mapped part by part; the index is
served with `Index.restore(view=True)` (memory-mapped, not loaded into RAM). Why usearch and
not faiss: BENCHMARKS.md, "kNN index".
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import usearch
from usearch.index import Index

from laion_assets.pipeline.core.store import DatasetStore, StoreError
from laion_assets.pipeline.formats.embeddings import _load_npy
from laion_assets.pipeline.release.publish import read_release

KNN = "knn"
INDEX_FILE = "image.usearch"
ROWS_FILE = "rows.parquet"
ROWS_SCHEMA = pa.schema([("row", pa.int64()), ("part", pa.int32()), ("part_row", pa.int64()),
                         ("hash", pa.int64())])
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 64


def partition(name: str, version: int) -> str:
    """The store partition of a version's index under `knn/`."""
    return f"{name}/v{version:04d}"


@dataclass(frozen=True)
class KnnManifest:
    release: str
    version: int
    rows: int
    dim: int
    index_file: str
    rows_file: str
    library: str
    params: dict[str, Any]
    release_created_at: str = ""


def build_index(store: DatasetStore, name: str, version: int, threads: int = 0) -> dict:
    """Build and commit the image-embedding index of release `name` version `version`;
    returns the committed manifest."""
    release = read_release(store, name, version)
    parts = []
    for part in range(release.parts):
        image = _load_npy(store.open, f"{release.folder}/img_emb/part-{part:05d}.npy")
        hashes = store.read_parquet(f"{release.folder}/data/part-{part:05d}.parquet",
                                    columns=["hash"]).column("hash")
        if len(image) != len(hashes):
            raise StoreError(f"{store.uri(release.folder)}: part {part}: {len(image)} image "
                             f"embeddings for {len(hashes)} data rows")
        parts.append((image, hashes))
    dim = next((p[0].shape[1] for p in parts if p[0].ndim == 2 and len(p[0])), 0)
    index = Index(ndim=max(dim, 1), metric="cos", dtype="f16", connectivity=CONNECTIVITY,
                  expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
    tables, start = [], 0
    for part, (image, hashes) in enumerate(parts):
        n = len(image)
        if n:
            index.add(np.arange(start, start + n, dtype=np.uint64),
                      np.asarray(image, dtype=np.float16), threads=threads or os.cpu_count())
        tables.append(pa.table([pa.array(np.arange(start, start + n), pa.int64()),
                                pa.array(np.full(n, part, np.int32)),
                                pa.array(np.arange(n), pa.int64()),
                                hashes.cast(pa.int64())], schema=ROWS_SCHEMA))
        start += n
    rows = pa.concat_tables(tables) if tables else ROWS_SCHEMA.empty_table()
    with store.stage_output(KNN, partition(name, version)) as output:
        if store.is_local:
            path = store.path(output.file(INDEX_FILE))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            index.save(path)
        else:
            with tempfile.TemporaryDirectory() as folder:
                local = os.path.join(folder, INDEX_FILE)
                index.save(local)
                with open(local, "rb") as source, output.open(INDEX_FILE) as target:
                    shutil.copyfileobj(source, target, 1 << 22)
        with output.open(ROWS_FILE) as handle:
            pq.write_table(rows, handle, compression="zstd")
        manifest = KnnManifest(
            release=name, version=version, rows=rows.num_rows, dim=dim,
            index_file=output.file(INDEX_FILE), rows_file=output.file(ROWS_FILE),
            library=f"usearch {usearch.__version__}",
            params={"metric": "cos", "dtype": "f16", "connectivity": CONNECTIVITY,
                    "expansion_add": EXPANSION_ADD, "expansion_search": EXPANSION_SEARCH},
            release_created_at=release.created_at)
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
    """A committed index opened for serving: the index file memory-mapped (a local store) or
    fetched once into a local cache file (an object store), and the row mapping."""

    def __init__(self, store: DatasetStore, manifest: dict,
                 cache_dir: str | None = None) -> None:
        self.manifest = manifest
        self.rows = store.read_parquet(manifest["rows_file"])
        self._hash = self.rows.column("hash").to_numpy()
        self._part = self.rows.column("part").to_numpy()
        self._part_row = self.rows.column("part_row").to_numpy()
        if store.is_local:
            path = store.path(manifest["index_file"])
        else:
            folder = cache_dir or tempfile.mkdtemp(prefix="laion-knn-")
            path = os.path.join(folder, posixpath.basename(manifest["index_file"]))
            with store.open(manifest["index_file"]) as source, open(path, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 22)
        self.index = Index.restore(path, view=True) if manifest["rows"] else None
        if self.index is not None:
            self.index.expansion_search = manifest["params"]["expansion_search"]

    def __len__(self) -> int:
        return int(self.manifest["rows"])

    def vector(self, row: int) -> np.ndarray:
        """The stored (float16) image embedding of release row `row` ("more like this")."""
        if self.index is None or not 0 <= row < len(self):
            raise IndexError(f"row {row} is not in the index ({len(self)} rows)")
        return np.asarray(self.index.get(row), dtype=np.float32)

    def search(self, vector: np.ndarray, k: int = 10) -> list[Hit]:
        """The `k` nearest rows to one vector (cosine), best first."""
        if self.index is None or k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        found = self.index.search(query, min(k, len(self)))
        return [Hit(int(r), int(self._part[r]), int(self._part_row[r]), int(self._hash[r]),
                    1.0 - float(d))
                for r, d in zip(found.keys, found.distances, strict=True)]


def load_index(store: DatasetStore, name: str, version: int,
               cache_dir: str | None = None) -> KnnIndex:
    """The committed index of a version; StoreError when none is built."""
    manifest = read_index_manifest(store, name, version)
    if manifest is None:
        raise StoreError(f"{store.uri(posixpath.join(KNN, partition(name, version)))}: no "
                         f"kNN index built (materialize `knn_index`)")
    return KnnIndex(store, manifest, cache_dir)
