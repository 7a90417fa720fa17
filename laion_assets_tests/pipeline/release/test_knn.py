"""The kNN index of a release version: planted vectors, recall against exact search, row
mapping across parts (one of them empty), atomic commit beside the version, lists served
memory-mapped, a build in several batches, an object store."""

import signal
import subprocess
import sys
import threading
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.pipeline.core.store import DatasetStore, StoreError, SupersededAttempt
from laion_assets.pipeline.release import knn
from laion_assets.pipeline.release.knn import build_index, load_index, read_index_manifest
from laion_assets.pipeline.release.publish import MANIFEST, version_folder
from laion_assets.settings import storage_options
from laion_assets_tests import s3 as s3_server

moto_endpoint = s3_server.moto_endpoint
s3 = s3_server.s3

NAME = "planted"
PART_ROWS = (1200, 0, 800)
DIM = 64


def _unit(rng, n):
    centres = rng.standard_normal((64, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 64, n)] + 0.3 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _write_release(store, part_rows=PART_ROWS):
    """Version 1 of a release written in the release layout: data parts with `hash`, and
    float16 `img_emb` parts row-aligned with them; returns the vectors and hashes."""
    rng = np.random.default_rng(7)
    folder = version_folder(NAME, 1)
    vectors, hashes = [], []
    for part, n in enumerate(part_rows):
        emb = _unit(rng, n).astype(np.float16)
        ids = rng.integers(-(1 << 62), 1 << 62, n, dtype=np.int64)
        with store.open(f"{folder}/img_emb/part-{part:05d}.npy", "wb") as handle:
            np.save(handle, emb)
        with store.open(f"{folder}/data/part-{part:05d}.parquet", "wb") as handle:
            pq.write_table(pa.table({"hash": pa.array(ids, pa.int64())}), handle)
        vectors.append(emb)
        hashes.append(ids)
    store.create_json(f"{folder}/{MANIFEST}", {"name": NAME, "version": 1, "folder": folder,
                                               "rows": sum(part_rows),
                                               "parts": len(part_rows)})
    return np.concatenate(vectors), np.concatenate(hashes)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    store = DatasetStore(str(tmp_path_factory.mktemp("knn")))
    vectors, hashes = _write_release(store)
    manifest = build_index(store, NAME, 1, threads=1)
    return store, manifest, vectors, hashes


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
    assert manifest["params"]["dtype"] == "f16" and manifest["library"].startswith("faiss")
    attempt = store.path(manifest["folder"])
    assert sorted(p.name for p in Path(attempt).iterdir()) == [
        knn.INDEX_FILE, knn.LISTS_FILE, knn.ROWS_FILE]


def test_the_lists_are_served_memory_mapped_from_the_store(release):
    """The inverted lists (the float16 codes) stay in `image.ivfdata`, mapped, not loaded."""
    store, manifest, _, _ = release
    index = load_index(store, NAME, 1)
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index.index).invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists)
    assert lists.filename == store.path(manifest["lists_file"])
    assert faiss.extract_index_ivf(index.index).nprobe == manifest["params"]["nprobe"]


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


def _search_rows(index, queries, k=10):
    return [index.search(q[None, :].astype(np.float32), k)[1][0].tolist() for q in queries]


def test_a_build_in_many_batches_finds_what_one_batch_finds(release, tmp_path, monkeypatch):
    """Batches written apart and merged on disk give the same index as one batch."""
    _, _, vectors, _ = release
    parts = [vectors[:700], vectors[700:]]
    one, many = tmp_path / "one", tmp_path / "many"
    one.mkdir(), many.mkdir()
    knn.build_ivf(lambda: parts, len(vectors), DIM, str(one), threads=1)
    monkeypatch.setattr(knn, "BLOCK_ROWS", 128)
    monkeypatch.setattr(knn, "BATCH_CODE_BYTES", 300 * DIM * 2)
    knn.build_ivf(lambda: parts, len(vectors), DIM, str(many), threads=1, work_dir=str(tmp_path))
    queries = vectors[::97]
    assert _search_rows(knn.open_ivf(str(one), 8), queries) == _search_rows(
        knn.open_ivf(str(many), 8), queries)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many", "one"]  # scratch removed


def test_vectors_fewer_than_announced_are_refused(tmp_path):
    vectors = np.ones((10, DIM), np.float16)
    with pytest.raises(ValueError, match="hold 10 rows, not the 12 announced"):
        knn.build_ivf(lambda: [vectors], 12, DIM, str(tmp_path))


def test_a_release_without_rows_has_an_empty_index(tmp_path):
    store = DatasetStore(str(tmp_path))
    _write_release(store, part_rows=(0,))
    manifest = build_index(store, NAME, 1)
    assert manifest["rows"] == 0 and manifest["index_file"] == ""
    index = load_index(store, NAME, 1)
    assert len(index) == 0 and index.search(np.ones(DIM, np.float32)) == []


def test_an_index_in_an_object_store_is_fetched_to_the_cache(s3, tmp_path):
    store = DatasetStore(f"s3://{s3.bucket()}/store", storage_options(s3.endpoint))
    vectors, hashes = _write_release(store, part_rows=(300, 200))
    manifest = build_index(store, NAME, 1, threads=1)
    assert s3.keys(f"s3://{store.path(manifest['lists_file'])}")
    cache = tmp_path / "cache"
    cache.mkdir()
    index = load_index(store, NAME, 1, cache_dir=str(cache))
    assert sorted(p.name for p in cache.iterdir()) == [knn.INDEX_FILE, knn.LISTS_FILE]
    hit = index.search(vectors[450].astype(np.float32), k=3)[0]
    assert (hit.row, hit.part, hit.part_row, hit.hash) == (450, 1, 150, hashes[450])
    assert np.array_equal(index.vector(450), vectors[450].astype(np.float32))


def test_a_large_release_gets_inverted_lists_that_find_planted_vectors(release, tmp_path,
                                                                       monkeypatch):
    """From `EXACT_ROWS` on the index has `MAX_LISTS` lists, scans `NPROBE` of them, and a
    stored vector still comes back first (it sits in the list its query probes first)."""
    _, _, vectors, _ = release
    monkeypatch.setattr(knn, "EXACT_ROWS", 1000)
    monkeypatch.setattr(knn, "MAX_LISTS", 64)
    params = knn.build_ivf(lambda: [vectors], len(vectors), DIM, str(tmp_path), threads=1)
    assert params["factory"] == "IVF64,SQfp16" and params["nprobe"] == knn.NPROBE < 64
    index = knn.open_ivf(str(tmp_path), params["nprobe"])
    rows = _search_rows(index, vectors[::50], k=1)
    assert [r[0] for r in rows] == list(range(0, len(vectors), 50))


def test_two_builds_at_once_commit_one_whole_index(tmp_path):
    """Two builders of one version's index at once: each commits whole, or the one that
    started first is refused as superseded by the other's commit; the current index loads
    and finds its planted rows."""
    store = DatasetStore(str(tmp_path / "store"))
    vectors, hashes = _write_release(store)
    start = threading.Barrier(2)
    results, errors = [], []

    def build():
        start.wait()
        try:
            results.append(build_index(store, NAME, 1, threads=1))
        except Exception as exc:  # noqa: BLE001 - the test asserts there are none
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) + len(errors) == 2 and results
    assert all(isinstance(e, SupersededAttempt) for e in errors), errors
    current = read_index_manifest(store, NAME, 1)
    assert current["index_file"] in {r["index_file"] for r in results}
    index = load_index(store, NAME, 1)
    for row in (0, 1999):
        hit = index.search(vectors[row].astype(np.float32), k=1)[0]
        assert (hit.row, hit.hash) == (row, hashes[row])


KILLED_BUILDER = """
import os, signal, sys
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.release import knn

built = knn.build_ivf
def build_then_die(*args, **kwargs):
    built(*args, **kwargs)  # the index files are written, not committed
    os.kill(os.getpid(), signal.SIGKILL)
knn.build_ivf = build_then_die
knn.build_index(DatasetStore(sys.argv[1]), sys.argv[2], 1, threads=1)
"""


def test_a_build_killed_before_its_commit_leaves_no_index_and_the_rerun_builds(tmp_path):
    root = tmp_path / "store"
    store = DatasetStore(str(root))
    vectors, hashes = _write_release(store)
    child = subprocess.run([sys.executable, "-c", KILLED_BUILDER, str(root), NAME],
                           capture_output=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert list(root.glob("knn/**/image.ivfdata")), "the killed build wrote its files"
    assert read_index_manifest(store, NAME, 1) is None
    with pytest.raises(StoreError, match="no kNN index built"):
        load_index(store, NAME, 1)
    build_index(store, NAME, 1, threads=1)
    hit = load_index(store, NAME, 1).search(vectors[5].astype(np.float32), k=1)[0]
    assert (hit.row, hit.hash) == (5, hashes[5])
