"""The image captures of a drop: where each image response sits in the WARC files.

A web archive captures a page's images too. While extraction reads a shard, every `response`
record whose HTTP Content-Type is `image/*` is indexed here (extraction parses the HTTP head
once and hands it over) (URL → WARC file, offset, stored
length, HTTP status), so the fetch stage can replay an image with one seek instead of
going to the live web.
"""

from __future__ import annotations

from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.pipeline.formats.urls import UrlRejected, normalize
from laion_assets.pipeline.formats.warc import WarcRecord

CAPTURES_SCHEMA = pa.schema(
    [
        pa.field("url", pa.string(), nullable=False),
        pa.field("warc_file", pa.string(), nullable=False),
        pa.field("warc_record_offset", pa.int64(), nullable=False),
        pa.field("warc_record_length", pa.int64(), nullable=False),
        pa.field("http_status", pa.int32(), nullable=False),
        pa.field("content_type", pa.string(), nullable=False),
        pa.field("capture_time", pa.string()),
    ]
)
_FLUSH_ROWS = 50_000


class CaptureIndexer:
    """Collects image captures and writes them as parquet in bounded batches."""

    def __init__(self, sink: BinaryIO) -> None:
        self._writer = pq.ParquetWriter(sink, CAPTURES_SCHEMA, compression="zstd")
        self._rows: list[tuple] = []
        self.count = 0

    def add(self, record: WarcRecord, warc_file: str, http_status: int, mime: str) -> None:
        """Index an image response (its HTTP head already parsed by the caller)."""
        try:
            url = normalize(record.headers.get("warc-target-uri", "").strip("<> "))
        except UrlRejected:
            return
        self._rows.append((url, warc_file, record.offset, record.stored_length, http_status,
                           mime, record.headers.get("warc-date")))
        self.count += 1
        if len(self._rows) >= _FLUSH_ROWS:
            self._flush()

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def _flush(self) -> None:
        if self._rows:
            columns = list(zip(*self._rows, strict=True))
            self._writer.write_batch(pa.RecordBatch.from_arrays(
                [pa.array(c, type=f.type) for c, f in zip(columns, CAPTURES_SCHEMA, strict=True)],
                schema=CAPTURES_SCHEMA))
            self._rows = []
