"""Bounded-memory dedup: first occurrence of each key kept, in arrival order, over buckets."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.pipeline.extract.dedup import DedupWriter, first_occurrences

SCHEMA = pa.schema([pa.field("key", pa.int64(), nullable=False), pa.field("seq", pa.int64())])


def batch(keys: list[int], start: int) -> pa.RecordBatch:
    seqs = list(range(start, start + len(keys)))
    return pa.RecordBatch.from_pydict({"key": keys, "seq": seqs}, schema=SCHEMA)


def run(batches: list[pa.RecordBatch], buckets: int, tmp_dir: str | None = None):
    writer = DedupWriter(SCHEMA, "key", buckets, tmp_dir=tmp_dir)
    for b in batches:
        writer.write(b)
    sink = io.BytesIO()
    written = writer.finish(sink)
    table = pq.read_table(io.BytesIO(sink.getvalue()), use_threads=False, pre_buffer=False)
    return writer, written, table


def test_first_occurrences_keeps_the_first_in_arrival_order():
    table = pa.table({"key": [5, 3, 5, 9, 3, 3, 7], "seq": [0, 1, 2, 3, 4, 5, 6]})
    unique = first_occurrences(table, "key")
    assert unique.column("key").to_pylist() == [5, 3, 9, 7]
    assert unique.column("seq").to_pylist() == [0, 1, 3, 6]


def test_first_occurrences_of_an_empty_table():
    empty = pa.table({"key": pa.array([], pa.int64()), "seq": pa.array([], pa.int64())})
    assert first_occurrences(empty, "key").num_rows == 0


# keys that collide across batches and buckets, negative ones included (pair_id is signed)
KEYS = [[7, -3, 7, 12, -(2**63), 5], [-3, 12, 99, 2**63 - 1, 5, 1024], [99, 7, -8, -8, 0, 13]]


def expected_firsts() -> dict[int, int]:
    firsts: dict[int, int] = {}
    seq = 0
    for keys in KEYS:
        for key in keys:
            firsts.setdefault(key, seq)
            seq += 1
    return firsts


def test_one_bucket_keeps_first_occurrences_in_arrival_order():
    batches = [batch(keys, 6 * i) for i, keys in enumerate(KEYS)]
    writer, written, table = run(batches, 1)
    firsts = expected_firsts()
    assert table.column("key").to_pylist() == list(firsts)
    assert table.column("seq").to_pylist() == list(firsts.values())
    assert written == table.num_rows == len(firsts)
    assert writer.rows_in == sum(len(k) for k in KEYS)


@pytest.mark.parametrize("buckets", [2, 4, 8, 1024])
def test_many_buckets_give_the_same_rows(buckets):
    batches = [batch(keys, 6 * i) for i, keys in enumerate(KEYS)]
    _, written, table = run(batches, buckets)
    rows = dict(zip(table.column("key").to_pylist(), table.column("seq").to_pylist(), strict=True))
    assert rows == expected_firsts()  # the same first occurrence, whatever the bucket
    assert written == len(rows) == table.num_rows  # unique keys
    # within each bucket, arrival order is kept
    for bucket in range(buckets):
        seqs = [s for k, s in zip(table.column("key").to_pylist(),
                                  table.column("seq").to_pylist(), strict=True)
                if k & (buckets - 1) == bucket]
        assert seqs == sorted(seqs)


@pytest.mark.parametrize("buckets", [0, -2, 3, 6, 12, 1000])
def test_bucket_count_must_be_a_power_of_two(buckets):
    with pytest.raises(ValueError, match="power of two"):
        DedupWriter(SCHEMA, "key", buckets)


@pytest.mark.parametrize("buckets", [1, 2, 64])
def test_powers_of_two_are_accepted(buckets):
    writer = DedupWriter(SCHEMA, "key", buckets)
    assert writer.buckets == buckets
    writer.close()


def test_no_rows_still_writes_a_valid_empty_file():
    _, written, table = run([], 4)
    assert written == 0 and table.num_rows == 0
    assert table.schema.equals(SCHEMA)


def test_spill_files_are_removed_after_finish_and_after_close(tmp_path: Path):
    run([batch([1, 2, 1], 0)], 4, tmp_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []

    writer = DedupWriter(SCHEMA, "key", 4, tmp_dir=str(tmp_path))
    writer.write(batch([1, 2, 3], 0))
    assert len(list(tmp_path.iterdir())) == 1  # the spill directory
    writer.close()  # a failed run: no finish
    assert list(tmp_path.iterdir()) == []
