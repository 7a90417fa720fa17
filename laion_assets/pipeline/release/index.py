"""The lookup index of a release version: find a row by hash, URL, image sha256 or domain.

One parquet file per kind, `index/<kind>.parquet`, with columns `key` (int64), `part`
(int32) and `row` (int64), sorted by `key` (then part, row), in small row groups that carry
min/max statistics. The key of a row is:

    hash     the pair's hash itself (LAION's `hash`, our `pair_id`)
    url      the signed xxh64 of the normalised URL (UTF-8)
    sha256   the signed xxh64 of the image's lower-case hex sha256 (rows without one: none)
    domain   the signed xxh64 of the URL's host (`urls.domain_of`; exact host, no subdomains)

A lookup reads the footer, the one or two row groups whose statistics can hold the key, and
then, per match, only the row group of `data/part-NNNNN.parquet` and
`provenance/part-NNNNN.parquet` that holds the row. 64-bit keys can collide, so `find`
compares the actual URL, sha256 or host of the rows it reads and drops the ones that differ.

All paths are relative to the version folder: callers pass `open_file(relative_path)`
(e.g. `lambda p: store.open(f"{version_folder}/{p}")`) and `open_output(relative_path)`.
Reads are single-threaded (`use_threads=False, pre_buffer=False`): pyarrow 26 can abort at
interpreter exit after threaded reads from Python file objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from laion_assets.pipeline.core.files import HashingWriter
from laion_assets.pipeline.formats.urls import domain_of
from laion_assets.pipeline.safety.takedowns import LedgerError, normalize_value

KINDS = ("hash", "url", "sha256", "domain")
INDEX_DIR = "index"
INDEX_ROW_GROUP = 32_768
INDEX_SCHEMA = pa.schema([
    pa.field("key", pa.int64(), nullable=False),
    pa.field("part", pa.int32(), nullable=False),
    pa.field("row", pa.int64(), nullable=False),
])
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class IndexQueryError(ValueError):
    """A lookup value that cannot be a key of its kind; the message says why."""


def index_path(kind: str) -> str:
    return f"{INDEX_DIR}/{kind}.parquet"


def data_path(part: int) -> str:
    return f"data/part-{part:05d}.parquet"


def provenance_path(part: int) -> str:
    return f"provenance/part-{part:05d}.parquet"


# -- keys ------------------------------------------------------------------------------------


def string_key(text: str) -> int:
    """The signed xxh64 (seed 0) of a string's UTF-8 bytes."""
    value = xxhash.xxh64_intdigest(text.encode("utf-8"))
    return value - (1 << 64) if value >= 1 << 63 else value


def _string_keys(values: Iterable[str]) -> np.ndarray:
    digest = xxhash.xxh64_intdigest
    unsigned = np.fromiter((digest(v.encode("utf-8")) for v in values), np.uint64)
    return unsigned.view(np.int64)


def normalize_query(kind: str, value: str | int) -> str | int:
    """The canonical form of a lookup value: an int hash, a normalised URL, a lower-case
    sha256, or a host (from `example.com`, `.example.com` or a URL)."""
    if kind == "hash":
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError as exc:
            raise IndexQueryError(f"hash {value!r}: expected a signed 64-bit integer") from exc
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise IndexQueryError(f"hash {value!r}: out of the signed 64-bit range")
        return number
    if kind in ("url", "sha256", "domain"):  # the same canonical forms as the ledger's
        try:
            return normalize_value(kind, str(value))
        except LedgerError as exc:
            raise IndexQueryError(str(exc)) from exc
    raise IndexQueryError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")


def query_key(kind: str, value: str | int) -> int:
    """The index key of a lookup value (normalised first)."""
    canonical = normalize_query(kind, value)
    return canonical if kind == "hash" else string_key(canonical)  # type: ignore[return-value]


def row_matches(kind: str, canonical: str | int, row: dict) -> bool:
    """Whether a data+provenance row really holds the value (not just its 64-bit key)."""
    if kind == "hash":
        return row.get("hash") == canonical
    url = row.get("URL")
    if kind == "url":
        return url == canonical
    if kind == "sha256":
        sha = row.get("sha256")
        return sha is not None and sha.lower() == canonical
    return url is not None and domain_of(url) == canonical


def part_keys(table: pa.Table, batch_rows: int = 65_536
              ) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Per kind: the keys of a part's rows and their row numbers (None: every row, in order).
    Strings are turned into keys `batch_rows` at a time, so few Python strings live at once."""
    hashes = table.column("hash").to_numpy(zero_copy_only=False).astype(np.int64, copy=True)
    url_keys, domain_keys, sha_keys, sha_rows = [], [], [], []
    for start in range(0, table.num_rows, batch_rows):
        batch = table.slice(start, batch_rows)
        urls = batch.column("URL").to_pylist()
        url_keys.append(_string_keys(urls))
        domain_keys.append(_string_keys(domain_of(u) for u in urls))
        del urls
        sha = pc.utf8_lower(batch.column("sha256"))
        present = np.asarray(sha.is_valid().to_numpy(zero_copy_only=False), bool)
        if present.any():
            sha_keys.append(_string_keys(sha.filter(pa.array(present)).to_pylist()))
            sha_rows.append(np.flatnonzero(present).astype(np.int64) + start)
    empty = np.empty(0, np.int64)
    return {
        "hash": (hashes, None),
        "url": (np.concatenate(url_keys) if url_keys else empty, None),
        "sha256": (np.concatenate(sha_keys) if sha_keys else empty,
                   np.concatenate(sha_rows) if sha_rows else empty),
        "domain": (np.concatenate(domain_keys) if domain_keys else empty, None),
    }


# -- writing ---------------------------------------------------------------------------------


def write_indexes(
    parts: Iterable[tuple[int, pa.Table]], open_output: Callable[[str], BinaryIO],
    *, row_group_size: int = INDEX_ROW_GROUP,
) -> dict[str, dict]:
    """Write `index/<kind>.parquet` for every kind from the release's parts.

    `parts` yields (part number, table with `hash`, `URL`, `sha256`), once, in any order;
    only the key arrays are kept (~8 bytes a row per kind, plus the sha256 rows' numbers).
    Returns {relative path: {"rows", "bytes", "sha256"}} of the files written.
    """
    keys: dict[str, list[np.ndarray]] = {kind: [] for kind in KINDS}
    sha_rows: list[np.ndarray] = []
    offsets: list[int] = []  # global position of each part's first row
    numbers: list[int] = []
    total = 0
    for number, table in parts:
        if number in numbers:
            raise ValueError(f"part {number} given twice")
        for kind, (part_keys_, rows) in part_keys(table).items():
            keys[kind].append(part_keys_)
            if rows is not None:
                sha_rows.append(rows + total)
        numbers.append(number)
        offsets.append(total)
        total += table.num_rows
    starts = np.array(offsets, np.int64)
    part_numbers = np.array(numbers, np.int32)
    written = {}
    for kind in KINDS:
        kind_keys = np.concatenate(keys.pop(kind)) if total else np.empty(0, np.int64)
        if kind == "sha256":
            positions = np.concatenate(sha_rows) if sha_rows else np.empty(0, np.int64)
        else:
            positions = None  # position i is row i of the concatenation
        order = np.argsort(kind_keys, kind="stable")
        sorted_keys = kind_keys[order]
        del kind_keys
        sorted_positions = order if positions is None else positions[order]
        del order, positions
        path = index_path(kind)
        written[path] = _write_index(open_output(path), sorted_keys, sorted_positions, starts,
                                     part_numbers, row_group_size)
        del sorted_keys, sorted_positions
    return written


def _write_index(sink: BinaryIO, keys: np.ndarray, positions: np.ndarray, starts: np.ndarray,
                 part_numbers: np.ndarray, row_group_size: int) -> dict:
    chunk = row_group_size * 32
    with sink as handle:
        tee = HashingWriter(handle, close_inner=False)
        writer = pq.ParquetWriter(tee, INDEX_SCHEMA, compression="zstd", use_dictionary=False,
                                  column_encoding={"key": "DELTA_BINARY_PACKED"},
                                  write_statistics=True)
        try:
            for start in range(0, max(len(keys), 1), chunk):
                pos = positions[start:start + chunk]
                which = np.searchsorted(starts, pos, side="right") - 1 if len(pos) else pos
                table = pa.table({
                    "key": pa.array(keys[start:start + chunk], pa.int64()),
                    "part": pa.array(part_numbers[which] if len(pos) else [], pa.int32()),
                    "row": pa.array(pos - starts[which] if len(pos) else [], pa.int64()),
                }, schema=INDEX_SCHEMA)
                writer.write_table(table, row_group_size=row_group_size)
        finally:
            writer.close()
    return {"rows": int(len(keys)), "bytes": tee.size, "sha256": tee.digest.hexdigest()}


# -- reading ---------------------------------------------------------------------------------


class ReleaseIndex:
    """Lookups on one release version; remembers the parquet footers it has read."""

    def __init__(self, open_file: Callable[[str], BinaryIO]) -> None:
        self.open_file = open_file
        self._footers: dict[str, pq.FileMetaData] = {}
        self._bounds: dict[str, tuple[list, list]] = {}

    def _metadata(self, path: str, handle: BinaryIO) -> pq.FileMetaData:
        if path not in self._footers:
            self._footers[path] = pq.ParquetFile(handle, pre_buffer=False).metadata
        return self._footers[path]

    def _file(self, path: str, handle: BinaryIO) -> pq.ParquetFile:
        return pq.ParquetFile(handle, metadata=self._metadata(path, handle), pre_buffer=False)

    def lookup(self, kind: str, value: str | int) -> list[tuple[int, int]]:
        """(part, row) of every row whose key is the value's key (collisions included)."""
        return self.lookup_key(kind, query_key(kind, value))

    def lookup_key(self, kind: str, key: int) -> list[tuple[int, int]]:
        path = index_path(kind)
        try:
            handle = self.open_file(path)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{path}: the release has no {kind} index") from exc
        with handle:
            index = self._file(path, handle)
            found: list[tuple[int, int]] = []
            for group in self._candidate_groups(path, index.metadata, key):
                table = index.read_row_group(group, use_threads=False)
                keys = table.column("key").to_numpy()
                lo, hi = np.searchsorted(keys, key, "left"), np.searchsorted(keys, key, "right")
                if hi > lo:
                    parts = table.column("part").to_numpy()[lo:hi]
                    rows = table.column("row").to_numpy()[lo:hi]
                    found.extend(zip(parts.tolist(), rows.tolist(), strict=True))
        return found

    def _candidate_groups(self, path: str, meta: pq.FileMetaData, key: int) -> list[int]:
        """Row groups whose min/max can hold `key` (all of them where statistics are missing)."""
        if path not in self._bounds:
            lows, highs = [], []
            for i in range(meta.num_row_groups):
                stats = meta.row_group(i).column(0).statistics
                if stats is not None and stats.has_min_max:
                    lows.append(stats.min)
                    highs.append(stats.max)
                else:
                    lows.append(_INT64_MIN)
                    highs.append(_INT64_MAX)
            self._bounds[path] = (lows, highs)
        lows, highs = self._bounds[path]
        return [i for i in range(len(lows)) if lows[i] <= key <= highs[i]]

    def read_rows(self, locations: Iterable[tuple[int, int]],
                  data_columns: list[str] | None = None,
                  provenance_columns: list[str] | None = None) -> list[dict]:
        """The data row merged with its provenance row (plus `part`, `row`) per location,
        in the order given; each part file is read only in the row groups that hold them."""
        locations = list(dict.fromkeys((int(p), int(r)) for p, r in locations))
        by_part: dict[int, list[int]] = {}
        for part, row in locations:
            by_part.setdefault(part, []).append(row)
        merged: dict[tuple[int, int], dict] = {}
        for part, rows in sorted(by_part.items()):
            data = self._rows_of(data_path(part), rows, data_columns)
            provenance = self._rows_of(provenance_path(part), rows, provenance_columns)
            for row in rows:
                merged[(part, row)] = {**provenance[row], **data[row], "part": part, "row": row}
        return [merged[loc] for loc in locations]

    def _rows_of(self, path: str, rows: list[int], columns: list[str] | None) -> dict[int, dict]:
        with self.open_file(path) as handle:
            parquet = self._file(path, handle)
            meta = parquet.metadata
            ends = np.cumsum([meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
            starts = ends - np.array([meta.row_group(i).num_rows
                                      for i in range(meta.num_row_groups)])
            wanted: dict[int, list[int]] = {}
            for row in rows:
                if not 0 <= row < meta.num_rows:
                    raise IndexError(f"{path}: row {row} out of range ({meta.num_rows} rows)")
                group = int(np.searchsorted(ends, row, side="right"))
                wanted.setdefault(group, []).append(row)
            out = {}
            for group, group_rows in wanted.items():
                table = parquet.read_row_group(group, columns=columns, use_threads=False)
                offsets = [row - int(starts[group]) for row in group_rows]
                for row, values in zip(group_rows, table.take(offsets).to_pylist(), strict=True):
                    out[row] = values
        return out

    def find(self, kind: str, value: str | int, data_columns: list[str] | None = None,
             provenance_columns: list[str] | None = None) -> list[dict]:
        """The rows that really hold the value (hash collisions dropped), with `part`, `row`:
        every column, or the ones named (plus those the collision check needs)."""
        canonical = normalize_query(kind, value)
        key = canonical if kind == "hash" else string_key(canonical)  # type: ignore[arg-type]
        locations = self.lookup_key(kind, key)  # type: ignore[arg-type]
        if not locations:
            return []
        if data_columns is not None:
            data_columns = list(dict.fromkeys([*data_columns, "hash", "URL"]))
        if provenance_columns is not None and kind == "sha256":
            provenance_columns = list(dict.fromkeys([*provenance_columns, "sha256"]))
        rows = self.read_rows(locations, data_columns, provenance_columns)
        return [row for row in rows if row_matches(kind, canonical, row)]


def lookup(open_file: Callable[[str], BinaryIO], kind: str, value: str | int
           ) -> list[tuple[int, int]]:
    """(part, row) candidates for a value (may include 64-bit key collisions)."""
    return ReleaseIndex(open_file).lookup(kind, value)


def read_rows(open_file: Callable[[str], BinaryIO], locations: Iterable[tuple[int, int]]
              ) -> list[dict]:
    """Data + provenance rows at these locations (see `ReleaseIndex.read_rows`)."""
    return ReleaseIndex(open_file).read_rows(locations)


def find(open_file: Callable[[str], BinaryIO], kind: str, value: str | int) -> list[dict]:
    """Lookup, read the rows, and drop collisions (see `ReleaseIndex.find`)."""
    return ReleaseIndex(open_file).find(kind, value)
