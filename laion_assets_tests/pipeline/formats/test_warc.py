"""The streaming WARC reader on hostile files (built here) and on the real samples.

Hostile files are built from raw bytes, one gzip member per record as Common Crawl writes
them, so every offset in the assertions can be computed from the pieces' lengths.
The builders (`warc_record`, `http_block`, `gz`) are reused by test_extract.py.
"""

from __future__ import annotations

import gzip
import io

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from laion_assets.pipeline.formats.warc import (
    DEFAULT_MAX_BLOCK_BYTES,
    WarcFormatError,
    WarcRecord,
    WarcSkip,
    iter_warc,
    read_record_at,
)
from laion_assets_tests.conftest import SHARED_WARCS

SAMPLES_DIR = SHARED_WARCS
SAMPLE_WARCS = sorted(SAMPLES_DIR.glob("*.gz"))  # the .warc.wat.gz / .warc.wet.gz are WARCs too
BIG_PAGE_BYTES = 50 * 2**20

# -- builders (also used by test_extract.py) ---------------------------------------------


def http_block(
    body: bytes | str,
    *,
    status: str = "200 OK",
    content_type: str | None = "text/html; charset=utf-8",
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """An HTTP/1.1 response as a WARC `response` record stores it."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    lines = [f"HTTP/1.1 {status}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def warc_record(
    block: bytes,
    *,
    uri: str = "http://example.com/",
    rec_type: str = "response",
    version: str = "1.0",
    content_length: int | None = None,
    content_type: str = "application/http; msgtype=response",
    record_id: str = "<urn:uuid:00000000-0000-4000-8000-000000000000>",
    date: str = "2024-05-01T12:00:00Z",
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """One uncompressed WARC record (headers, block, separator); Content-Length may lie."""
    length = len(block) if content_length is None else content_length
    lines = [
        f"WARC/{version}",
        f"WARC-Type: {rec_type}",
        f"WARC-Target-URI: {uri}",
        f"WARC-Date: {date}",
        f"WARC-Record-ID: {record_id}",
        f"Content-Type: {content_type}",
        *(f"{name}: {value}" for name, value in extra),
        f"Content-Length: {length}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + block + b"\r\n\r\n"


def gz(*records: bytes, level: int = 6) -> list[bytes]:
    """Each record as its own gzip member (deterministic: mtime 0)."""
    return [gzip.compress(record, compresslevel=level, mtime=0) for record in records]


def small_page(n: int) -> bytes:
    """An HTTP block with a small HTML page (no 'WARC/' inside, so resyncs are exact)."""
    images = "".join(
        f"<p>Paragraph {j} of page {n}, with a few words.</p>"
        f'<img src="/img/{n}-{j}.jpg" alt="Photograph number {j} of page {n}">'
        for j in range(20)
    )
    return http_block(f"<html><body>{images}</body></html>")


def items(data: bytes, **kwargs) -> list[WarcRecord | WarcSkip]:
    return list(iter_warc(io.BytesIO(data), **kwargs))


def summary(found: list[WarcRecord | WarcSkip]) -> list[tuple]:
    """Records as ('record', offset, target URI), skips as ('skip', offset, reason)."""
    return [
        ("skip", x.offset, x.reason)
        if isinstance(x, WarcSkip)
        else ("record", x.offset, x.headers.get("warc-target-uri"))
        for x in found
    ]


def offsets(parts: list[bytes]) -> list[int]:
    out, pos = [], 0
    for part in parts:
        out.append(pos)
        pos += len(part)
    return out


RECS = [warc_record(small_page(i), uri=f"http://example.com/{i}") for i in range(3)]
URIS = [f"http://example.com/{i}" for i in range(3)]


@pytest.fixture(scope="module")
def big_block() -> bytes:
    """A 50 MB HTML response block, built once for the module."""
    chunk = b"<p>" + b"filler text of a very long page " * 30 + b"</p>\n"
    body = b"<html><body>" + chunk * (BIG_PAGE_BYTES // len(chunk) + 1)
    return http_block(body[:BIG_PAGE_BYTES])


# -- well-formed files ---------------------------------------------------------------------


@pytest.mark.parametrize("gzip_records", [True, False])
def test_warcio_written_file_reads_with_warcio_offsets(gzip_records):
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=gzip_records)
    for i in range(3):
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        record = writer.create_warc_record(
            f"http://example.org/{i}",
            "response",
            payload=io.BytesIO(f"<html>page {i}</html>".encode()),
            http_headers=http,
        )
        writer.write_record(record)
    data = out.getvalue()
    expected = []
    iterator = ArchiveIterator(io.BytesIO(data))
    for record in iterator:
        expected.append(
            (iterator.get_record_offset(), record.rec_headers.get_header("WARC-Record-ID"))
        )

    found = items(data)

    assert all(isinstance(x, WarcRecord) for x in found)
    assert [(x.offset, x.headers["warc-record-id"]) for x in found] == expected
    assert [x.headers["warc-target-uri"] for x in found] == [
        f"http://example.org/{i}" for i in range(3)
    ]
    assert found[2].block.startswith(b"HTTP/1.1 200 OK\r\n")
    assert found[2].block.endswith(b"<html>page 2</html>")
    assert found[2].block_length == len(found[2].block) and not found[2].capped


def test_headers_are_lower_cased_and_version_kept():
    (record,) = items(gz(RECS[0])[0])
    assert record.headers["warc-version"] == "1.0"
    assert record.rec_type == "response"
    assert record.headers["content-type"] == "application/http; msgtype=response"
    assert record.block == small_page(0)


@pytest.mark.parametrize("version", ["0.17", "0.18", "1.0", "1.1"])
@pytest.mark.parametrize("gzip_records", [True, False])
def test_old_and_new_version_lines_are_read(version, gzip_records):
    parts = [warc_record(small_page(i), uri=URIS[i], version=version) for i in range(2)]
    if gzip_records:
        parts = gz(*parts)
    found = items(b"".join(parts))
    assert summary(found) == [
        ("record", off, uri) for off, uri in zip(offsets(parts), URIS[:2], strict=True)
    ]
    assert [x.headers["warc-version"] for x in found] == [version, version]


@pytest.mark.parametrize("gzip_records", [True, False])
def test_unknown_version_is_an_invalid_header(gzip_records):
    parts = [warc_record(small_page(0), version="2.0"), RECS[1]]
    if gzip_records:
        parts = gz(*parts)
    found = items(b"".join(parts))
    assert summary(found) == [
        ("skip", 0, "invalid_warc_header"),
        ("record", offsets(parts)[1], URIS[1]),
    ]
    assert "not a WARC version line: 'WARC/2.0'" in found[0].detail


@pytest.mark.parametrize("data", [b"", b"\r\n\r\n\n"], ids=["empty", "blank-lines"])
def test_a_file_without_records_yields_nothing(data):
    assert items(data) == []


def test_non_warc_text_file_is_one_garbage_skip():
    data = b"<!doctype html><html><body>not a WARC at all</body></html>\n" * 10
    assert [(x.offset, x.reason, x.detail) for x in items(data)] == [
        (0, "garbage_bytes", f"bytes between records: skipped {len(data)} bytes")
    ]


def test_non_warc_gzip_file_is_an_invalid_header():
    data = gzip.compress(b"GIF89a this is an image, not a WARC\r\n\r\n", mtime=0)
    (skip,) = items(data)
    assert (skip.offset, skip.reason) == (0, "invalid_warc_header")
    assert skip.detail.startswith("not a WARC version line: 'GIF89a")


# -- gzip damage -------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_gzip_member_mid_file_costs_one_record(fraction):
    members = gz(*RECS)
    members[1] = members[1][: int(len(members[1]) * fraction)]
    found = items(b"".join(members))
    starts = offsets(members)
    assert summary(found) == [
        ("record", 0, URIS[0]),
        ("skip", starts[1], "corrupt_gzip_member"),
        ("record", starts[2], URIS[2]),
    ]
    assert found[1].detail.endswith(f"skipped {len(members[1])} bytes")
    assert found[2].block == small_page(2)


@pytest.mark.parametrize("cut", [0.5, 0.05])
def test_truncated_gzip_member_at_end_of_file(cut):
    """As warcio: a final record cut short is read as far as it goes (marked truncated);
    cut inside its WARC head, it is a skip."""
    members = gz(*RECS, level=0)
    members[2] = members[2][: int(len(members[2]) * cut)]
    found = items(b"".join(members))
    starts = offsets(members)
    assert summary(found)[:2] == [("record", 0, URIS[0]), ("record", starts[1], URIS[1])]
    last = found[2]
    if cut == 0.5:
        assert (last.offset, last.headers["warc-truncated"]) == (starts[2], "end-of-file")
        assert 1000 < len(last.block) == last.block_length < len(small_page(2))
        assert small_page(2).startswith(last.block) and not last.capped
    else:
        assert (last.offset, last.reason, last.detail) == (
            starts[2], "truncated_gzip_member", "file ends inside a gzip member")


@pytest.mark.parametrize(("gzip_records", "between"),
                         [(True, "gzip members"), (False, "records")])
def test_garbage_between_records_is_one_named_skip(gzip_records, between):
    records = gz(*RECS) if gzip_records else list(RECS)
    garbage = b"\x00\x00 <garbage, not a record> \xff\xfe" * 7
    parts = [records[0], garbage, records[1], records[2]]
    found = items(b"".join(parts))
    starts = offsets(parts)
    assert summary(found) == [
        ("record", 0, URIS[0]),
        ("skip", starts[1], "garbage_bytes"),
        ("record", starts[2], URIS[1]),
        ("record", starts[3], URIS[2]),
    ]
    assert found[1].detail == f"bytes between {between}: skipped {len(garbage)} bytes"


@pytest.mark.parametrize(
    ("delta", "detail"),
    [
        # the member holds the block and the 4-byte record separator
        (100, "Content-Length {length} but the gzip member holds {held} bytes"),
        (-100, "Content-Length {length} ends 104 bytes before the gzip member does"),
    ],
    ids=["too-long", "too-short"],
)
def test_gzip_content_length_lie(delta, detail):
    block = small_page(1)
    parts = gz(RECS[0], warc_record(block, uri=URIS[1], content_length=len(block) + delta),
               RECS[2])
    found = items(b"".join(parts))
    starts = offsets(parts)
    assert summary(found) == [
        ("record", 0, URIS[0]),
        ("skip", starts[1], "content_length_mismatch"),
        ("record", starts[2], URIS[2]),
    ]
    assert found[1].detail == detail.format(length=len(block) + delta, held=len(block) + 4)


# -- uncompressed damage -------------------------------------------------------------------


@pytest.mark.parametrize("delta", [100, -100])
def test_uncompressed_content_length_lie_mid_file(delta):
    block = small_page(1)
    parts = [RECS[0], warc_record(block, uri=URIS[1], content_length=len(block) + delta), RECS[2]]
    found = items(b"".join(parts))
    starts = offsets(parts)
    assert summary(found) == [
        ("record", 0, URIS[0]),
        ("skip", starts[1], "content_length_mismatch"),
        ("record", starts[2], URIS[2]),
    ]
    assert found[1].detail == (
        f"Content-Length {len(block) + delta} is not followed by the record separator: "
        f"skipped {len(parts[1])} bytes"
    )
    assert found[2].block == small_page(2)


def test_uncompressed_content_length_too_long_at_end_of_file():
    """As warcio: the final record is read as far as the file goes, and marked truncated."""
    block = small_page(2)
    parts = [RECS[0], RECS[1], warc_record(block, uri=URIS[2], content_length=len(block) + 100)]
    found = items(b"".join(parts))
    starts = offsets(parts)
    assert summary(found) == [
        ("record", 0, URIS[0]),
        ("record", starts[1], URIS[1]),
        ("record", starts[2], URIS[2]),
    ]
    assert found[2].block == block + b"\r\n\r\n"
    assert found[2].headers["warc-truncated"] == "end-of-file"


def test_a_length_that_swallows_the_records_after_it_is_a_truncated_record():
    block = small_page(0)
    parts = [warc_record(block, uri=URIS[0], content_length=len(block) + 10_000), RECS[1]]
    found = items(b"".join(parts))
    assert summary(found) == [("skip", 0, "truncated_record"), ("record", len(parts[0]), URIS[1])]


def test_uncompressed_truncated_record_over_the_block_cap():
    """A lying Content-Length above the cap reads what the file holds, capped."""
    block = b"x" * 5000
    data = warc_record(block, rec_type="resource", content_length=50_000)
    (record,) = items(data, max_block_bytes=1000)
    assert (record.offset, record.block, record.block_length) == (0, b"x" * 1000, 5004)
    assert record.capped


@pytest.mark.parametrize("gzip_records", [True, False])
@pytest.mark.parametrize(
    ("delta", "tail"),
    [(0, b"\r\n"), (2, b"\r\n\r\n"), (4, b"\r\n\r\n"), (-2, b"\r\n\r\n"),
     (-4, b"\r\n\r\n"), (0, b"\r\n" * 3)],
    ids=["one-crlf", "counts-one-crlf", "counts-both-crlfs", "two-short", "four-short",
         "long-separator"],
)
def test_lengths_that_miscount_the_separator_are_read(gzip_records, delta, tail):
    """Writers that count the separator into Content-Length, end with one CRLF, or leave a
    few block bytes out (warcio reads these, with a warning)."""
    block = small_page(1)
    record = warc_record(block, uri=URIS[1], content_length=len(block) + delta)[:-4] + tail
    parts = [RECS[0], record, RECS[2]]
    if gzip_records:
        parts = gz(*parts)
    found = items(b"".join(parts))
    assert summary(found) == [
        ("record", off, uri) for off, uri in zip(offsets(parts), URIS, strict=True)
    ]
    assert found[1].block.startswith(block[: len(block) + min(delta, 0)])
    assert found[1].block == (block + b"\r\n\r\n")[: max(len(block), len(block) + delta)]


# -- a 50 MB block -------------------------------------------------------------------------


@pytest.mark.parametrize("gzip_records", [True, False])
def test_fifty_megabyte_block_is_capped_and_next_record_read(big_block, gzip_records):
    parts = [RECS[0], warc_record(big_block, uri="http://example.com/big"), RECS[1]]
    if gzip_records:
        parts = gz(*parts, level=1)
    found = items(b"".join(parts))
    starts = offsets(parts)
    assert summary(found) == [
        ("record", 0, URIS[0]),
        ("record", starts[1], "http://example.com/big"),
        ("record", starts[2], URIS[1]),
    ]
    big = found[1]
    assert big.block_length == len(big_block) > BIG_PAGE_BYTES
    assert len(big.block) == DEFAULT_MAX_BLOCK_BYTES
    assert big.capped
    assert big.block == big_block[:DEFAULT_MAX_BLOCK_BYTES]
    assert found[2].block == small_page(1)


# -- read_record_at ------------------------------------------------------------------------


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.seeks = 0

    def seek(self, *args):
        self.seeks += 1
        return super().seek(*args)


@pytest.mark.parametrize("gzip_records", [True, False])
def test_read_record_at_round_trips_each_offset_with_one_seek(gzip_records):
    parts = gz(*RECS) if gzip_records else list(RECS)
    data = b"".join(parts)
    for record in items(data):
        stream = CountingStream(data)
        again = read_record_at(stream, record.offset)
        assert stream.seeks == 1
        assert again.offset == record.offset
        assert again.headers == record.headers
        assert again.block == record.block


def test_read_record_at_a_bad_offset_raises():
    data = b"".join(gz(*RECS))
    with pytest.raises(WarcFormatError, match="offset 7: garbage_bytes"):
        read_record_at(io.BytesIO(data), 7)
    with pytest.raises(WarcFormatError, match="no record there"):
        read_record_at(io.BytesIO(data), len(data))


def test_read_record_at_on_a_real_sample():
    path = SAMPLES_DIR / "heritrix-2013-magazine.warc.gz"
    with path.open("rb") as f:
        records = [x for x in iter_warc(f) if isinstance(x, WarcRecord)]
        last = records[-1]
        again = read_record_at(f, last.offset)
    assert again.headers["warc-record-id"] == last.headers["warc-record-id"]
    assert again.block == last.block


# -- real samples --------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLE_WARCS, ids=lambda p: p.name)
def test_real_samples_match_warcio(path):
    expected = []
    with path.open("rb") as f:
        iterator = ArchiveIterator(f)
        for record in iterator:
            expected.append(
                (iterator.get_record_offset(), record.rec_headers.get_header("WARC-Record-ID"))
            )
    with path.open("rb") as f:
        found = list(iter_warc(f))

    assert [x for x in found if isinstance(x, WarcSkip)] == []
    assert len(found) == len(expected)
    assert [(x.offset, x.headers["warc-record-id"]) for x in found] == expected


def test_real_sample_record_counts():
    counts = {}
    for path in SAMPLE_WARCS:
        with path.open("rb") as f:
            counts[path.name] = sum(isinstance(x, WarcRecord) for x in iter_warc(f))
    assert counts == {
        "cc-main-2020-34-excerpt.warc.gz": 50,
        "cc-main-2024-22-whirlwind.warc.gz": 4,
        "cc-main-2024-22-whirlwind.warc.wat.gz": 2,
        "cc-main-2024-22-whirlwind.warc.wet.gz": 2,
        "heritrix-2013-magazine.warc.gz": 231,
        "wget-2024-sample.warc.gz": 48,
        "wikipedia-2012-homepage.warc.gz": 164,
    }


def test_whole_file_gzip_within_the_cap_reads_every_record():
    records = [warc_record(small_page(i), uri=f"http://example.org/{i}") for i in range(3)]
    found = items(gzip.compress(b"".join(records), mtime=0))
    assert summary(found) == [("record", 0, f"http://example.org/{i}") for i in range(3)]


def test_whole_file_gzip_over_the_cap_is_a_named_skip_not_a_silent_loss():
    big = http_block(b"<html>" + b"x" * (3 << 20) + b"</html>")
    records = [warc_record(big, uri=f"http://example.org/{i}") for i in range(4)]
    found = items(gzip.compress(b"".join(records), mtime=0), max_block_bytes=1 << 20)
    assert summary(found) == [("record", 0, "http://example.org/0"),
                              ("skip", 0, "oversized_gzip_member")]
    assert "one gzip member per record" in found[-1].detail


def test_garbage_before_the_first_gzip_member_is_skipped():
    parts = gz(warc_record(small_page(1), uri="http://example.org/1"),
               warc_record(small_page(2), uri="http://example.org/2"))
    junk = b"not a warc \x00\x01" * 40
    found = items(junk + b"".join(parts))
    assert summary(found) == [("skip", 0, "garbage_bytes"),
                              ("record", len(junk), "http://example.org/1"),
                              ("record", len(junk) + len(parts[0]), "http://example.org/2")]


def test_a_cut_member_that_swallows_the_next_one_is_still_resynced():
    """A stored (level 0) block cut short reads the next member as its own data, without an
    inflate error: the reader must notice the member never ends and find the next one."""
    big = warc_record(http_block(b"<html>" + b"z" * 60_000 + b"</html>"),
                      uri="http://example.org/cut")
    first, cut, last = gz(warc_record(small_page(1), uri="http://example.org/1"), big,
                          warc_record(small_page(3), uri="http://example.org/3"), level=0)
    data = first + cut[: len(cut) // 2] + last
    found = items(data)
    assert summary(found) == [("record", 0, "http://example.org/1"),
                              ("skip", len(first), "corrupt_gzip_member"),
                              ("record", len(first) + len(cut) // 2, "http://example.org/3")]


# -- ARC files and records split over gzip members -------------------------------------------


def arc_record(url: str, block: bytes, *, date: str = "20140216050221",
               content_type: str = "text/html") -> bytes:
    """One ARC v1 record: the header line, the block, the newline after it."""
    return f"{url} 93.184.216.119 {date} {content_type} {len(block)}\n".encode() + block + b"\n"


ARC_DESC = b"1 0 LiveWeb Capture\nURL IP-address Archive-date Content-type Archive-length\n"
ARC_PARTS = [
    arc_record("filedesc://test.arc.gz", ARC_DESC, content_type="text/plain"),
    arc_record("http://example.com/0", small_page(0)),
    arc_record("dns:example.com", b"example.com. 300 IN A 93.184.216.119"),
    arc_record("http://example.com/2", small_page(2)),
]


@pytest.mark.parametrize("gzip_records", [True, False])
def test_arc_files_read_as_warcio_arc2warc_does(gzip_records):
    parts = gz(*ARC_PARTS) if gzip_records else ARC_PARTS
    data = b"".join(parts)
    found = items(data)
    assert [(x.offset, x.rec_type, x.headers["warc-target-uri"]) for x in found] == [
        (offsets(parts)[0], "warcinfo", "filedesc://test.arc.gz"),
        (offsets(parts)[1], "response", "http://example.com/0"),
        (offsets(parts)[2], "response", "dns:example.com"),
        (offsets(parts)[3], "response", "http://example.com/2"),
    ]
    response = found[1]
    assert response.block == small_page(0)
    assert response.headers["content-type"] == "application/http; msgtype=response"
    assert response.headers["warc-date"] == "2014-02-16T05:02:21Z"
    assert found[2].headers["content-type"] == "text/html"
    again = read_record_at(io.BytesIO(data), found[3].offset)
    assert (again.headers, again.block) == (found[3].headers, small_page(2))
    warcio_reads = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"))
                    for r in ArchiveIterator(io.BytesIO(data), arc2warc=True)]
    assert warcio_reads == [("warcinfo", None)] + [  # warcio names no URI for the filedesc
        (x.rec_type, x.headers["warc-target-uri"]) for x in found[1:]]


def test_a_record_split_over_gzip_members_is_joined_and_the_next_found():
    """What `warcio-example-wrong-chunks` is: head, body and separator in three members."""
    record = warc_record(small_page(1), uri=URIS[1])
    cut = record.index(b"<html>")
    members = gz(RECS[0], record[:cut], record[cut:-4], b"\r\n\r\n" + RECS[2])
    data = b"".join(members)
    found = items(data)
    starts = offsets(members)
    assert summary(found) == [("record", 0, URIS[0]), ("record", starts[1], URIS[1]),
                              ("record", starts[3], URIS[2])]
    assert found[1].block == small_page(1)
    for record in found:
        assert read_record_at(io.BytesIO(data), record.offset).block == record.block
