"""A shard's safety-stage inputs, read a batch of candidates at a time.

The stage joins each extracted pair with its fetch result (by `url_key`) and its CLIP
embedding row (by `pair_id`). Neither side is held whole: the lookups keep fixed-width
numbers only (a fetch result's key as the uint64 its 16 hex digits spell, 16 bytes a result;
an embedding's pair id, 16 bytes a scored pair), and a batch's fetch results are read from
the row groups of `results.parquet` that hold them (the last one read is kept, as the
download stage writes results in about the order of the pairs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from laion_assets.pipeline.formats.embeddings import Embeddings

FETCH_COLUMNS = ("url_key", "status", "reason", "detail", "source", "fetched_at", "bytes",
                 "width", "height", "sha256", "md5", "sha1", "pdq", "pdq_quality", "tar")
BATCH_ROWS = 32_768  # candidates a batch (their lists, embeddings and head activations)


@dataclass
class ShardInputs:
    pairs: pq.ParquetFile  # extracted_pairs, every column
    results: pq.ParquetFile  # fetch results
    embeddings: Embeddings  # clip_scored_pairs
    open_tar: Callable[[str], BinaryIO]  # a downloaded_images tar by name
    batch_rows: int = BATCH_ROWS

    def candidates(self) -> int:
        """The shard's pairs: every one is a candidate."""
        return self.pairs.metadata.num_rows

    def batches(self) -> Iterator[pa.Table]:
        """The pairs, `batch_rows` at a time (one empty batch for a shard without pairs)."""
        empty = True
        for batch in self.pairs.iter_batches(batch_size=self.batch_rows, use_threads=False):
            empty = False
            yield pa.Table.from_batches([batch])
        if empty:
            yield self.pairs.schema_arrow.empty_table()

    def pair_ids(self) -> Iterator[np.ndarray]:
        for batch in self.pairs.iter_batches(batch_size=self.batch_rows, columns=["pair_id"],
                                             use_threads=False):
            yield batch.column(0).to_numpy()


def key_number(keys: pa.Array | pa.ChunkedArray, where: str) -> np.ndarray:
    """`url_key`s (16 lowercase hex digits) as uint64; a clear error for anything else."""
    series = pl.Series(pa.chunked_array(keys) if isinstance(keys, pa.Array) else keys)
    bad = ~(series.str.contains(r"^[0-9a-f]{16}$").fill_null(False))
    if bad.any():
        raise ValueError(f"{where}: url_key {series.filter(bad)[0]!r} is not 16 lowercase hex "
                         "digits (xxh64 of the URL)")
    return series.str.to_integer(base=16, dtype=pl.UInt64).to_numpy()


def url_numbers(urls: list[str]) -> np.ndarray:
    """`url_key(url)` of each URL as the uint64 its hex digits spell."""
    return np.fromiter((xxhash.xxh64_intdigest(u.encode("utf-8")) for u in urls), np.uint64,
                       len(urls))


@dataclass
class _Sorted:
    """Keys sorted (stable) with their original positions: the last of equal keys wins."""

    keys: np.ndarray
    positions: np.ndarray  # int32 below 2**31 keys (4 bytes a key, not 8)

    @classmethod
    def of(cls, keys: np.ndarray) -> _Sorted:
        """Sorted in place: `keys` is consumed (no second copy of the shard's keys)."""
        order = np.argsort(keys, kind="stable")
        keys.sort(kind="stable")
        return cls(keys, order.astype(np.int32) if len(keys) < 2**31 else order)

    def find(self, wanted: np.ndarray) -> np.ndarray:
        """Each wanted key's position (the last one among duplicates), -1 when absent."""
        if not len(self.keys):
            return np.full(len(wanted), -1, np.int64)
        at = np.searchsorted(self.keys, wanted, side="right") - 1
        hit = (at >= 0) & (self.keys[np.maximum(at, 0)] == wanted)
        return np.where(hit, self.positions[np.maximum(at, 0)], -1).astype(np.int64)


@dataclass
class FetchResults:
    """Fetch results by `url_key`, gathered a batch at a time from their row groups."""

    file: pq.ParquetFile
    index: _Sorted
    columns: list[str]
    offsets: np.ndarray  # first row of each row group, and the row count
    _cached: tuple[int, pa.Table] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, file: pq.ParquetFile, where: str = "results.parquet") -> FetchResults:
        keys, start = np.empty(file.metadata.num_rows, np.uint64), 0
        for batch in file.iter_batches(batch_size=1 << 20, columns=["url_key"],
                                       use_threads=False):
            keys[start:start + batch.num_rows] = key_number(batch.column(0), where)
            start += batch.num_rows
        meta = file.metadata
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        columns = [c for c in FETCH_COLUMNS if c in file.schema_arrow.names]
        return cls(file, _Sorted.of(keys), columns, np.cumsum([0, *sizes]))

    def rows(self, urls: list[str]) -> np.ndarray:
        """Each URL's result row (the last with its key), -1 when it has none."""
        return self.index.find(url_numbers(urls))

    def gather(self, rows: np.ndarray) -> pa.Table:
        """The results at `rows` (FETCH_COLUMNS present in the file), null where -1."""
        found = np.flatnonzero(rows >= 0)
        group = np.searchsorted(self.offsets, rows[found], side="right") - 1
        parts, order = [], []
        for g in np.unique(group):
            mine = found[group == g]
            parts.append(self._group(int(g)).take(pa.array(rows[mine] - self.offsets[g])))
            order.append(mine)
        table = (pa.concat_tables(parts) if parts else
                 self.file.schema_arrow.empty_table().select(self.columns))
        where = np.full(len(rows), -1, np.int64)
        if order:
            where[np.concatenate(order)] = np.arange(table.num_rows)
        return table.take(pa.array(where, mask=where < 0))

    def _group(self, g: int) -> pa.Table:
        if self._cached is None or self._cached[0] != g:
            self._cached = None  # let the previous group go before the next is read
            self._cached = (g, self.file.read_row_group(g, columns=self.columns,
                                                        use_threads=False))
        return self._cached[1]


@dataclass
class EmbeddingRows:
    """Each candidate's row in clip_scored_pairs' embeddings (by pair id) and similarity."""

    index: _Sorted
    similarity: np.ndarray  # float32 per embedding row

    @classmethod
    def of(cls, embeddings: Embeddings) -> EmbeddingRows:
        ids = np.array(embeddings.ids.column("pair_id").to_numpy(), np.int64)  # sorted in place
        sims = embeddings.ids.column("similarity").to_numpy(zero_copy_only=False)
        return cls(_Sorted.of(ids), np.asarray(sims, np.float32))

    def rows(self, pair_ids: np.ndarray) -> np.ndarray:
        return self.index.find(np.asarray(pair_ids, np.int64))

    def similarities(self, rows: np.ndarray) -> np.ndarray:
        """float32 similarity per candidate, NaN where not scored (row -1)."""
        out = np.full(len(rows), np.nan, np.float32)
        out[rows >= 0] = self.similarity[rows[rows >= 0]]
        return out
