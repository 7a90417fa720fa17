"""Deduplicate rows by key in bounded memory: spill to hash buckets, then dedup each bucket.

Rows go to one of `buckets` Arrow IPC files by their key's low bits; each bucket is then read
alone, its first occurrence of each key kept (arrival order), and appended to the output.
Peak memory is one bucket, so a shard's bucket count grows with its input size.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3}


class DedupWriter:
    """Collect record batches, then write the deduplicated rows as one parquet stream."""

    def __init__(self, schema: pa.Schema, key: str, buckets: int = 1, tmp_dir: str | None = None):
        if buckets < 1 or buckets & (buckets - 1):
            raise ValueError(f"buckets must be a power of two, got {buckets}")
        self.schema, self.key, self.buckets = schema, key, buckets
        self._tmp = tempfile.TemporaryDirectory(prefix="laion-dedup-", dir=tmp_dir)
        self._paths = [Path(self._tmp.name) / f"bucket-{i:04d}.arrow" for i in range(buckets)]
        self._writers = [ipc.new_file(str(p), schema) for p in self._paths]
        self.rows_in = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows_in += batch.num_rows
        if self.buckets == 1:
            self._writers[0].write_batch(batch)
            return
        bucket = pc.bit_wise_and(batch.column(self.key), self.buckets - 1)
        for i, writer in enumerate(self._writers):
            part = batch.filter(pc.equal(bucket, i))
            if part.num_rows:
                writer.write_batch(part)

    def finish(self, sink: BinaryIO) -> int:
        """Write the unique rows to `sink` as parquet; returns how many rows were written."""
        for writer in self._writers:
            writer.close()
        written = 0
        with pq.ParquetWriter(sink, self.schema, **PARQUET_OPTIONS) as out:
            for path in self._paths:
                with ipc.open_file(str(path)) as bucket:
                    unique = first_occurrences(bucket.read_all(), self.key)
                if unique.num_rows:
                    out.write_table(unique)
                    written += unique.num_rows
                path.unlink()
        self.close()
        return written

    def close(self) -> None:
        """Remove the spill files (also after a failure)."""
        for writer in self._writers:
            with contextlib.suppress(OSError, pa.ArrowInvalid):
                writer.close()
        self._tmp.cleanup()


def first_occurrences(table: pa.Table, key: str) -> pa.Table:
    """The rows of `table` holding the first occurrence of each key, in their original order."""
    rows = table.append_column("__row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    firsts = rows.group_by(key, use_threads=False).aggregate([("__row", "min")])
    keep = np.sort(firsts.column("__row_min").to_numpy())
    return table.take(pa.array(keep))
