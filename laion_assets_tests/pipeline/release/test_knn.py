"""The kNN index of a release version: planted vectors, recall against exact search, row
mapping across parts (one of them empty), atomic commit beside the version."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.pipeline.core.store import DatasetStore, StoreError
from laion_assets.pipeline.release.knn import build_index, load_index, read_index_manifest
from laion_assets.pipeline.release.publish import MANIFEST, version_folder

NAME = "planted"
PART_ROWS = (1200, 0, 800)
DIM = 64


def _unit(rng, n):
    centres = rng.standard_normal((64, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 64, n)] + 0.3 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """Version 1 of a release written in the release layout: data parts with `hash`, and
    float16 `img_emb` parts row-aligned with them."""
    store = DatasetStore(str(tmp_path_factory.mktemp("knn")))
    rng = np.random.default_rng(7)
    folder = version_folder(NAME, 1)
    vectors, hashes = [], []
    for part, n in enumerate(PART_ROWS):
        emb = _unit(rng, n).astype(np.float16)
        ids = rng.integers(-(1 << 62), 1 << 62, n, dtype=np.int64)
        with store.open(f"{folder}/img_emb/part-{part:05d}.npy", "wb") as handle:
            np.save(handle, emb)
        with store.open(f"{folder}/data/part-{part:05d}.parquet", "wb") as handle:
            pq.write_table(pa.table({"hash": pa.array(ids, pa.int64())}), handle)
        vectors.append(emb)
        hashes.append(ids)
    store.create_json(f"{folder}/{MANIFEST}", {"name": NAME, "version": 1, "folder": folder,
                                               "rows": sum(PART_ROWS),
                                               "parts": len(PART_ROWS)})
    manifest = build_index(store, NAME, 1, threads=1)
    return store, manifest, np.concatenate(vectors), np.concatenate(hashes)


def test_a_planted_vector_comes_back_first_with_its_part_and_hash(release):
    store, manifest, vectors, hashes = release
    index = load_index(store, NAME, 1)
    assert len(index) == manifest["rows"] == sum(PART_ROWS)
    for row in (0, 1199, 1200, 1999):  # first and last rows of both non-empty parts
        hit = index.search(vectors[row].astype(np.float32), k=5)[0]
        assert hit.row == row and hit.hash == hashes[row]
        assert (hit.part, hit.part_row) == ((0, row) if row < 1200 else (2, row - 1200))
        assert hit.similarity == pytest.approx(1.0, abs=1e-3)


def test_recall_at_10_against_exact_search(release):
    store, _, vectors, _ = release
    index = load_index(store, NAME, 1)
    rng = np.random.default_rng(1)
    queries = _unit(rng, 100)
    exact = np.argsort(-(queries @ vectors.astype(np.float32).T), axis=1)[:, :10]
    found = [[h.row for h in index.search(q, k=10)] for q in queries]
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)])
    assert recall >= 0.95
    scores = [h.similarity for h in index.search(queries[0], k=10)]
    assert scores == sorted(scores, reverse=True)


def test_the_index_is_committed_beside_the_version_not_inside_it(release):
    store, manifest, _, _ = release
    assert read_index_manifest(store, NAME, 1)["attempt"] == manifest["attempt"]
    assert manifest["index_file"].startswith(f"knn/{NAME}/v0001/")
    assert store.listdir(version_folder(NAME, 1)) == ["data", "img_emb", MANIFEST]
    rows = store.read_parquet(manifest["rows_file"])
    assert rows.column("row").to_pylist() == list(range(sum(PART_ROWS)))
    assert manifest["params"]["dtype"] == "f16" and manifest["library"].startswith("usearch")


def test_a_version_without_an_index_says_so(release):
    store = release[0]
    with pytest.raises(StoreError, match="no kNN index built"):
        load_index(store, NAME, 2)


def test_a_rows_stored_vector_is_its_embedding(release):
    """`vector(row)` ("more like this") gives back the row's float16 embedding."""
    store, _, vectors, _ = release
    index = load_index(store, NAME, 1)
    for row in (0, 1999):
        assert np.array_equal(index.vector(row), vectors[row].astype(np.float32))
    with pytest.raises(IndexError, match="row 2000 is not in the index"):
        index.vector(2000)
