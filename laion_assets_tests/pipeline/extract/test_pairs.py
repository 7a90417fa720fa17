"""The pair record: its schema and its stable id (LAION's signed 64-bit `hash`)."""

from __future__ import annotations

import pyarrow as pa
import xxhash

from laion_assets.pipeline.extract.pairs import EXTRACTED_PAIRS_SCHEMA, PROVENANCE_COLUMNS, pair_id

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def test_pair_id_is_a_stable_literal():
    # these literals must never change: pair_id is stored in every released shard
    assert pair_id("https://example.com/cat.jpg", "A cat sitting on a windowsill") == (
        2883000903281861760
    )
    assert pair_id("https://example.com/dog.jpg", "A dog running on the beach") == (
        -1356799018766697118
    )
    assert pair_id("", "") == -1642502924627794072


def test_pair_id_is_xxh64_of_url_nul_text_as_signed():
    url, text = "https://例え.jp/画像.jpg", "Ünïcödé text"
    unsigned = xxhash.xxh64_intdigest(f"{url}\x00{text}".encode())
    assert pair_id(url, text) == (unsigned - 2**64 if unsigned >= 2**63 else unsigned)


def test_pair_id_separates_url_and_text():
    assert pair_id("https://e.com/a", "bc") != pair_id("https://e.com/ab", "c")
    assert pair_id("https://example.com/cat.jpg", "A cat sitting on a windowsil") != (
        pair_id("https://example.com/cat.jpg", "A cat sitting on a windowsill")
    )


def test_pair_id_is_in_signed_64_bit_range_and_fits_int64_arrays():
    ids = [pair_id(f"https://example.com/{i}.jpg", f"alt text {i}") for i in range(5000)]
    assert all(INT64_MIN <= i <= INT64_MAX for i in ids)
    assert any(i < 0 for i in ids) and any(i > 0 for i in ids)
    assert len(set(ids)) == len(ids)
    assert pa.array(ids, pa.int64()).to_pylist() == ids


def test_schema_columns():
    assert EXTRACTED_PAIRS_SCHEMA.names[:3] == ["pair_id", "url", "text"]
    assert EXTRACTED_PAIRS_SCHEMA.field("pair_id").type == pa.int64()
    assert not EXTRACTED_PAIRS_SCHEMA.field("pair_id").nullable
    assert EXTRACTED_PAIRS_SCHEMA.field("declared_width").nullable
    capture_time = EXTRACTED_PAIRS_SCHEMA.field("capture_time").type
    assert pa.types.is_timestamp(capture_time) and capture_time.tz == "UTC"
    assert set(PROVENANCE_COLUMNS) <= set(EXTRACTED_PAIRS_SCHEMA.names)
