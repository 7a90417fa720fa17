"""The image-text pair record: its columns, its stable id, and the drop reasons."""

from __future__ import annotations

import pyarrow as pa
import xxhash

EXTRACTED_PAIRS_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.int64(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("language_score", pa.float32(), nullable=False),
        pa.field("url_source", pa.string(), nullable=False),
        pa.field("declared_width", pa.int32()),
        pa.field("declared_height", pa.int32()),
        pa.field("crawl", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("warc_file", pa.string(), nullable=False),
        pa.field("warc_record_offset", pa.int64(), nullable=False),
        pa.field("warc_record_id", pa.string(), nullable=False),
        pa.field("page_url", pa.string(), nullable=False),
        pa.field("capture_time", pa.timestamp("ms", tz="UTC")),
    ]
)
PROVENANCE_COLUMNS = (
    "crawl",
    "shard",
    "warc_file",
    "warc_record_offset",
    "warc_record_id",
    "page_url",
    "capture_time",
)


def pair_id(url: str, text: str) -> int:
    """LAION's `hash`: a stable signed 64-bit xxh64 of the normalised URL and alt text."""
    value = xxhash.xxh64_intdigest(f"{url}\x00{text}".encode())
    return value - (1 << 64) if value >= 1 << 63 else value
