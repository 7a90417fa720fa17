
import numpy as np
import pytest

from laion_assets.pipeline.core.files import LocalFolder
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.formats.embeddings import (
    IDS_FILE,
    IMAGE_FILE,
    TEXT_FILE,
    EmbeddingCountError,
    EmbeddingWriter,
    NpyRows,
    read_embeddings,
)

DIM = 8


class Batch:
    def __init__(self, pair_ids, image, text, similarity) -> None:
        self.pair_ids, self.image_embeddings = pair_ids, image
        self.text_embeddings, self.similarity = text, similarity


def _batches(count: int, size: int, seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    batches = []
    for start in range(0, count, size):
        n = min(size, count - start)
        image = rng.standard_normal((n, DIM)).astype(np.float32)
        text = rng.standard_normal((n, DIM)).astype(np.float32)
        similarity = rng.standard_normal(n).astype(np.float32)
        similarity[0] = np.nan  # a pair whose image failed
        ids = np.arange(start, start + n, dtype=np.int64)[::-1] * 7  # any order is kept
        batches.append(Batch(ids, image, text, similarity))
    return batches


def _write(folder, batches, count: int | None = None, **kwargs) -> None:
    total = sum(len(b.pair_ids) for b in batches) if count is None else count
    with EmbeddingWriter(folder, total, DIM, **kwargs) as writer:
        for batch in batches:
            writer.write(batch)


def _check(result, batches) -> None:
    image = np.concatenate([b.image_embeddings for b in batches]).astype(np.float16)
    text = np.concatenate([b.text_embeddings for b in batches]).astype(np.float16)
    assert result.image.dtype == np.float16 and result.text.dtype == np.float16
    np.testing.assert_array_equal(result.image, image)
    np.testing.assert_array_equal(result.text, text)
    assert result.ids.column_names == ["pair_id", "similarity"]
    assert str(result.ids.schema.field("pair_id").type) == "int64"
    assert str(result.ids.schema.field("similarity").type) == "float"
    np.testing.assert_array_equal(result.ids["pair_id"].to_numpy(),
                                  np.concatenate([b.pair_ids for b in batches]))
    np.testing.assert_array_equal(result.ids["similarity"].to_numpy(),
                                  np.concatenate([b.similarity for b in batches]))


def test_round_trip_through_a_local_folder_is_memory_mapped(tmp_path):
    batches = _batches(10, 4)
    _write(LocalFolder(tmp_path / "emb"), batches)
    result = read_embeddings(tmp_path / "emb")
    _check(result, batches)
    assert isinstance(result.image, np.memmap) and isinstance(result.text, np.memmap)
    assert result.image.shape == (10, DIM)


def test_npy_headers_are_valid_and_aligned(tmp_path):
    _write(LocalFolder(tmp_path), _batches(5, 2))
    for name in (IMAGE_FILE, TEXT_FILE):
        with open(tmp_path / name, "rb") as handle:
            assert np.lib.format.read_magic(handle) == (1, 0)
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            assert (shape, fortran, dtype) == ((5, DIM), False, np.dtype("<f2"))
            header_size = handle.tell()
        assert header_size % 64 == 0  # rows start aligned, as numpy writes them
        assert (tmp_path / name).stat().st_size == header_size + 5 * DIM * 2
        assert np.load(tmp_path / name).shape == (5, DIM)


def test_round_trip_through_a_dataset_store_attempt_folder(tmp_path):
    store = DatasetStore(str(tmp_path / "store"))
    batches = _batches(7, 3)
    with store.stage_output("embeddings", "crawl/00000") as output:
        _write(output, batches)
        manifest = output.commit({})
    folder = manifest["folder"]
    result = read_embeddings(lambda name: store.open(f"{folder}/{name}"))
    _check(result, batches)
    assert isinstance(result.image, np.memmap)  # fsspec's local files are mapped too


def test_round_trip_on_a_remote_filesystem_reads_whole_arrays():
    store = DatasetStore("memory://embeddings-test")
    batches = _batches(6, 4, seed=3)
    with store.stage_output("embeddings", "crawl/00001") as output:
        _write(output, batches)
        manifest = output.commit({})
    folder = manifest["folder"]
    result = read_embeddings(lambda name: store.open(f"{folder}/{name}"))
    _check(result, batches)
    assert not isinstance(result.image, np.memmap)


def test_ids_are_buffered_into_row_groups_in_order(tmp_path):
    import pyarrow.parquet as pq

    batches = _batches(25, 3)
    _write(LocalFolder(tmp_path), batches, row_group_size=10)
    _check(read_embeddings(tmp_path), batches)
    metadata = pq.ParquetFile(tmp_path / IDS_FILE, pre_buffer=False).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [12, 12, 1]


def test_too_few_rows_raises_at_close(tmp_path):
    with pytest.raises(EmbeddingCountError, match="9 rows written, 10 promised"):
        _write(LocalFolder(tmp_path), _batches(9, 4), count=10)


def test_too_many_rows_raises_at_write(tmp_path):
    with pytest.raises(EmbeddingCountError, match="12 rows written, 10 promised"):
        _write(LocalFolder(tmp_path), _batches(12, 4), count=10)


def test_an_error_in_the_block_is_not_masked_by_the_count_check(tmp_path):
    writer = EmbeddingWriter(LocalFolder(tmp_path), 10, DIM)
    with pytest.raises(RuntimeError, match="scoring failed"), writer:
        writer.write(_batches(4, 4)[0])
        raise RuntimeError("scoring failed")


def test_bad_shapes_are_refused(tmp_path):
    batch = _batches(4, 4)[0]
    with EmbeddingWriter(LocalFolder(tmp_path), 4, DIM) as writer:
        with pytest.raises(ValueError, match="expected"):
            writer.write(Batch(batch.pair_ids, batch.image_embeddings[:, :3],
                               batch.text_embeddings, batch.similarity))
        with pytest.raises(ValueError, match="differ in length"):
            writer.write(Batch(batch.pair_ids[:2], batch.image_embeddings,
                               batch.text_embeddings, batch.similarity))
        writer.write(batch)


def test_an_empty_partition_round_trips(tmp_path):
    _write(LocalFolder(tmp_path), [], count=0)
    result = read_embeddings(tmp_path)
    assert result.image.shape == (0, DIM) and result.ids.num_rows == 0


def test_mismatched_files_are_refused(tmp_path):
    _write(LocalFolder(tmp_path / "a"), _batches(4, 4))
    _write(LocalFolder(tmp_path / "b"), _batches(5, 5))
    (tmp_path / "a" / TEXT_FILE).write_bytes((tmp_path / "b" / TEXT_FILE).read_bytes())
    with pytest.raises(ValueError, match="do not belong together"):
        read_embeddings(str(tmp_path / "a"))


def test_npy_rows_reads_consecutive_rows_and_one_row_by_position(tmp_path):
    values = np.arange(5 * 3, dtype=np.float16).reshape(5, 3)
    path = tmp_path / "a.npy"
    np.save(path, values)
    with open(path, "rb") as handle:
        rows = NpyRows(handle)
        assert (rows.count, rows.dim) == (5, 3)
        np.testing.assert_array_equal(rows.take(2), values[:2])
        np.testing.assert_array_equal(rows.row(4), values[4])
        with pytest.raises(IndexError, match="no row 5"):
            rows.row(5)
    np.save(path, values[:2])
    with open(path, "rb") as handle, pytest.raises(EmbeddingCountError, match="ends before"):
        NpyRows(handle).take(3)
