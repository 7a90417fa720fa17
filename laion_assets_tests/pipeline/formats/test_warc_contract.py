"""The reading contract: every HTML response warcio reads, the project reads the same.

For every file in the shared `warcs/` and `warcs-quirks/` folders (real files written by
other tools, with the quirks real archives have), the project's reader, HTTP parser and
content decoding give the same HTML responses as warcio 1.8 (`arc2warc` for ARC files):
same target URL, HTTP status and decoded body, in the same order, with no skip at all.

Where warcio refuses a file part-way (`ArchiveLoadFailed`: one gzip stream over several
records, records split over gzip members), the project reads every response warcio read
before refusing (its body may be longer: warcio cuts it at the member boundary), may read
more after it, and names a reason for anything it skips.
"""

from __future__ import annotations

import io

import brotli
import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from laion_assets.pipeline.extract.stage import extract_shard
from laion_assets.pipeline.formats.http import (
    HttpParseError,
    decode_body,
    mime_type_of,
    parse_response_head,
)
from laion_assets.pipeline.formats.warc import WarcSkip, iter_warc
from laion_assets_tests.conftest import SHARED_WARCS

QUIRKS = SHARED_WARCS.parent / "warcs-quirks"
NOT_ARCHIVES = ("SOURCES.md", "SHA256SUMS")
FILES = sorted(p for folder in (SHARED_WARCS, QUIRKS) for p in folder.iterdir()
               if p.name not in NOT_ARCHIVES)
HTML = ("text/html", "application/xhtml+xml")
CAP = 8 << 20
REFUSED_BY_WARCIO = {"warcio-example-bad-non-chunked.warc.gz",
                     "warcio-example-wrong-chunks.warc.gz"}

Page = tuple[str, int, bytes]  # target URL, HTTP status, decoded body


def warcio_pages(path) -> tuple[list[Page], bool]:
    """warcio's HTML responses of a file, and whether it refused the file part-way."""
    pages: list[Page] = []
    with path.open("rb") as handle:
        try:
            for record in ArchiveIterator(handle, arc2warc=True):
                head = record.http_headers
                if record.rec_type != "response" or head is None or head.protocol == "":
                    continue
                if mime_type_of({"content-type": head.get_header("Content-Type", "")}) in HTML:
                    pages.append((record.rec_headers.get_header("WARC-Target-URI"),
                                  int(head.get_statuscode()), _warcio_body(record)))
        except ArchiveLoadFailed:
            return pages, True
    return pages, False


def _warcio_body(record) -> bytes:
    try:
        return record.content_stream().read()
    except AttributeError:  # warcio 1.8.1 calls a brotli method that brotli 1.2 lacks
        return brotli.decompress(record.raw_stream.read())


def project_pages(path) -> tuple[list[Page], list[str]]:
    """The project's HTML responses of a file, and the reasons of whatever it skipped."""
    pages: list[Page] = []
    skips: list[str] = []
    with path.open("rb") as handle:
        for item in iter_warc(handle, max_block_bytes=CAP):
            if isinstance(item, WarcSkip):
                skips.append(item.reason)
                continue
            if item.rec_type != "response" or not item.headers.get(
                "content-type", ""
            ).startswith("application/http"):
                continue
            try:
                status, headers, start = parse_response_head(item.block)
                if mime_type_of(headers) not in HTML:
                    continue
                body = decode_body(item.block[start:], headers, max_body_bytes=CAP)
            except HttpParseError as exc:
                skips.append(exc.reason)
                continue
            url = item.headers["warc-target-uri"].strip("<>").replace(" ", "%20")
            pages.append((url, status, body))
    return pages, skips


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_project_reads_what_warcio_reads(path):
    expected, refused = warcio_pages(path)
    found, skips = project_pages(path)

    assert refused == (path.name in REFUSED_BY_WARCIO)
    if not refused:
        assert skips == []
        assert [p[:2] for p in found] == [p[:2] for p in expected]
        assert found == expected
        return
    assert all(skips), "every skip names its reason"
    assert [p[:2] for p in found[: len(expected)]] == [p[:2] for p in expected]
    for (_, _, ours), (_, _, theirs) in zip(found, expected, strict=False):
        assert ours.startswith(theirs)
    assert len(found) >= 1


def test_the_contract_covers_html_pages_of_every_quirk():
    """The quirks that hold HTML responses give the project real pages to compare."""
    counts = {p.name: len(warcio_pages(p)[0]) for p in FILES if p.parent == QUIRKS}
    assert counts == {
        "warcio-example-bad-non-chunked.warc.gz": 0,  # refused before its first record
        "warcio-example-digest.warc": 0,
        "warcio-example-iana.org-chunked.warc": 1,
        "warcio-example-resource.warc.gz": 0,
        "warcio-example-space-in-target-uri.warc.gz": 0,
        "warcio-example-trunc.warc": 1,
        "warcio-example-wget-bad-target-uri.warc.gz": 1,
        "warcio-example-wrong-chunks.warc.gz": 1,
        "warcio-example.arc.gz": 1,
        "warcio-post-test.warc.gz": 0,
    }


EXTRACTED_QUIRKS = {  # file: HTML 200 pages extracted (example.com and iana.org: no <img>)
    "warcio-example-bad-non-chunked.warc.gz": 1,
    "warcio-example-iana.org-chunked.warc": 1,
    "warcio-example-trunc.warc": 1,
    "warcio-example-wget-bad-target-uri.warc.gz": 1,
    "warcio-example-wrong-chunks.warc.gz": 1,
    "warcio-example.arc.gz": 1,
}


@pytest.mark.parametrize("name", sorted(EXTRACTED_QUIRKS))
def test_extraction_reads_the_pages_of_each_quirk(name):
    """The strict reader gave 0 pages for most of these (skipped records)."""
    result = extract_shard([name], io.BytesIO(), open_file=lambda n: (QUIRKS / n).open("rb"),
                           crawl="CC-QUIRKS", shard="CC-QUIRKS/00000")
    assert result.stats.counts["html_pages"] == EXTRACTED_QUIRKS[name]
    assert dict(result.stats.skipped_records) == {}
