"""Embeddings in clip-retrieval's layout: `img_emb.npy`, `text_emb.npy` and `ids.parquet`.

The two `.npy` files hold float16 `[count, dim]` arrays; row i of each belongs to row i of
`ids.parquet` (`pair_id` int64, `similarity` float32). `EmbeddingWriter` streams: it writes the
`.npy` headers for the promised `count` up front, appends rows as batches arrive (so it works on
object stores, which cannot seek), and refuses to close unless exactly `count` rows came.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NamedTuple, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileOpener

from laion_assets.pipeline.core.files import Folder

IMAGE_FILE = "img_emb.npy"
TEXT_FILE = "text_emb.npy"
IDS_FILE = "ids.parquet"
EMBEDDING_DTYPE = np.dtype("<f2")
IDS_SCHEMA = pa.schema([("pair_id", pa.int64()), ("similarity", pa.float32())])


class EmbeddingRows(Protocol):
    """A batch of rows to write (`clip.ScoredBatch` is one)."""

    pair_ids: np.ndarray
    image_embeddings: np.ndarray
    text_embeddings: np.ndarray
    similarity: np.ndarray


class EmbeddingCountError(ValueError):
    """The rows written do not match the count promised in the `.npy` headers."""


class EmbeddingWriter:
    """Stream `count` rows of `dim`-wide embeddings into a folder; use as a context manager.

    On a clean exit the files are closed and the row count checked; if the block raises, the
    files are closed without the check (the caller discards the attempt folder).
    """

    def __init__(self, folder: Folder, count: int, dim: int,
                 row_group_size: int = 1 << 20) -> None:
        self.count, self.dim, self.rows = count, dim, 0
        self.row_group_size = row_group_size
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._handles: list[BinaryIO] = []
        self._image = self._open_npy(folder, IMAGE_FILE)
        self._text = self._open_npy(folder, TEXT_FILE)
        self._ids_handle = self._track(folder.open(IDS_FILE, "wb"))
        self._ids = pq.ParquetWriter(self._ids_handle, IDS_SCHEMA)
        self._closed = False

    def write(self, batch: EmbeddingRows) -> None:
        """Append a batch's rows (embeddings cast to float16)."""
        image = self._rows(batch.image_embeddings, "image_embeddings")
        text = self._rows(batch.text_embeddings, "text_embeddings")
        n = len(image)
        if len(text) != n or len(batch.pair_ids) != n or len(batch.similarity) != n:
            raise ValueError("a batch's pair_ids, embeddings and similarity differ in length")
        if self.rows + n > self.count:
            raise EmbeddingCountError(f"{self.rows + n} rows written, {self.count} promised")
        self._image.write(memoryview(image).cast("B"))
        self._text.write(memoryview(text).cast("B"))
        self._add_ids(batch.pair_ids, batch.similarity)
        self.rows += n

    def close(self) -> None:
        """Finish the files; raises `EmbeddingCountError` unless exactly `count` rows came."""
        if self._closed:
            return
        try:
            if self.rows != self.count:
                raise EmbeddingCountError(f"{self.rows} rows written, {self.count} promised")
            self._flush_ids()
            self._ids.close()
        finally:
            self._abort()

    def __enter__(self) -> EmbeddingWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self._abort()

    def _abort(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):  # idempotent; the handles get closed regardless
            self._ids.close()
        for handle in self._handles:
            handle.close()

    def _track(self, handle: BinaryIO) -> BinaryIO:
        self._handles.append(handle)
        return handle

    def _open_npy(self, folder: Folder, name: str) -> BinaryIO:
        handle = self._track(folder.open(name, "wb"))
        write_npy_header(handle, self.count, self.dim)
        return handle

    def _rows(self, values: np.ndarray, name: str) -> np.ndarray:
        array = np.ascontiguousarray(values, dtype=EMBEDDING_DTYPE)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(f"{name}: shape {array.shape}, expected (n, {self.dim})")
        return array

    def _add_ids(self, pair_ids: np.ndarray, similarity: np.ndarray) -> None:
        batch = pa.record_batch([pa.array(np.asarray(pair_ids, dtype=np.int64)),
                                 pa.array(np.asarray(similarity, dtype=np.float32))],
                                schema=IDS_SCHEMA)
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self.row_group_size:
            self._flush_ids()

    def _flush_ids(self) -> None:
        """Write the buffered ids as one row group (not one tiny group per scoring batch)."""
        if self._pending:
            self._ids.write_table(pa.Table.from_batches(self._pending, IDS_SCHEMA),
                                  row_group_size=self._pending_rows)
        self._pending, self._pending_rows = [], 0


class Embeddings(NamedTuple):
    ids: pa.Table  # pair_id, similarity
    image: np.ndarray  # float16 [count, dim]
    text: np.ndarray  # float16 [count, dim]


Opener = Callable[[str], BinaryIO]


def read_embeddings(source: str | os.PathLike | Folder | Opener) -> Embeddings:
    """Read a folder written by `EmbeddingWriter`.

    `source` is a local folder, an object with `open(name, mode)`, or a function `name ->
    binary file`. Local `.npy` files are memory-mapped (read-only); others are read whole.
    """
    open_fn = _opener(source)
    with open_fn(IDS_FILE) as handle:
        ids = pq.read_table(handle, use_threads=False, pre_buffer=False)
    image, text = _load_npy(open_fn, IMAGE_FILE), _load_npy(open_fn, TEXT_FILE)
    if not len(image) == len(text) == ids.num_rows:
        raise ValueError(f"{len(image)} image rows, {len(text)} text rows, "
                         f"{ids.num_rows} ids: the files do not belong together")
    return Embeddings(ids, image, text)


def _opener(source: str | os.PathLike | Folder | Opener) -> Opener:
    if isinstance(source, str | os.PathLike):
        folder = Path(source)
        return lambda name: open(folder / name, "rb")
    if hasattr(source, "open"):
        return lambda name: source.open(name, "rb")
    return source


def _load_npy(open_fn: Opener, name: str) -> np.ndarray:
    with open_fn(name) as handle:
        local = _local_path(handle)
        if local is not None:
            return np.load(local, mmap_mode="r")
        return np.load(handle)


def _local_path(handle: BinaryIO) -> str | None:
    """The local file behind a handle (a plain or fsspec local file), if it has one."""
    if isinstance(handle, LocalFileOpener):
        return handle.path
    if isinstance(handle, io.BufferedReader) and isinstance(handle.raw, io.FileIO):
        return handle.name if isinstance(handle.name, str) else None
    return None


def write_npy_header(handle: BinaryIO, rows: int, dim: int) -> None:
    """The `.npy` header of a float16 [rows, dim] array; the rows follow as raw bytes."""
    header = {"descr": np.lib.format.dtype_to_descr(EMBEDDING_DTYPE), "fortran_order": False,
              "shape": (rows, dim)}
    np.lib.format.write_array_header_1_0(handle, header)


class NpyRows:
    """Rows of a 2-D `.npy` file read from an open binary file: consecutive ones (`take`) or
    one by position (`row`, one seek), never the whole array."""

    def __init__(self, handle: BinaryIO) -> None:
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(handle)
        self.handle, self.dtype, self.start = handle, dtype, handle.tell()
        self.count = shape[0]
        self.dim = shape[1] if len(shape) > 1 else 0

    def take(self, rows: int) -> np.ndarray:
        """The next `rows` rows."""
        size = rows * self.dim * self.dtype.itemsize
        data = self.handle.read(size)
        if len(data) != size:
            raise EmbeddingCountError(f"{getattr(self.handle, 'path', self.handle)}: ends "
                                      f"before the rows its parquet part holds")
        return np.frombuffer(data, self.dtype).reshape(rows, self.dim)

    def row(self, row: int) -> np.ndarray:
        """Row `row`."""
        if self.dim == 0 or not 0 <= row < self.count:
            raise IndexError(f"{getattr(self.handle, 'path', self.handle)}: no row {row} in "
                             f"an array of {self.count} rows")
        self.handle.seek(self.start + row * self.dim * self.dtype.itemsize)
        return self.take(1)[0]
