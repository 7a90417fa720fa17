"""The extraction stage, end to end: real samples against an independent reference, hostile
files, every drop reason, and dedup across buckets.

The reference implementation below shares no code with the library: it reads WARCs with
warcio, parses HTML with lxml (libxml2), detects charsets with charset-normalizer, and
applies the rules of docs/extraction.md as written there.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
import zlib
from collections import Counter
from pathlib import Path

import ada_url
import brotli
import charset_normalizer
import lxml.html
import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator

from laion_assets.pipeline.extract.pairs import EXTRACTED_PAIRS_SCHEMA, pair_id
from laion_assets.pipeline.extract.stage import (
    ExtractConfig,
    ExtractionError,
    extract_shard,
)
from laion_assets_tests.conftest import SHARED_WARCS
from laion_assets_tests.pipeline.formats.test_warc import gz, http_block, warc_record

SAMPLES_DIR = SHARED_WARCS
SAMPLES = [
    "cc-main-2020-34-excerpt.warc.gz",
    "cc-main-2024-22-whirlwind.warc.gz",
    "heritrix-2013-magazine.warc.gz",
    "wget-2024-sample.warc.gz",
    "wikipedia-2012-homepage.warc.gz",
]
# pages, <img> candidates, pairs before dedup, rows after dedup (docs/extraction.md's table)
SAMPLE_COUNTS = {
    "cc-main-2020-34-excerpt.warc.gz": (16, 153, 26, 21),
    "cc-main-2024-22-whirlwind.warc.gz": (1, 13, 7, 7),
    "heritrix-2013-magazine.warc.gz": (63, 2141, 1984, 140),
    "wget-2024-sample.warc.gz": (22, 240, 169, 56),
    "wikipedia-2012-homepage.warc.gz": (1, 17, 17, 17),
}
# WARC records read, and HTTP response records among them
SAMPLE_RECORDS = {
    "cc-main-2020-34-excerpt.warc.gz": (50, 16),
    "cc-main-2024-22-whirlwind.warc.gz": (4, 1),
    "heritrix-2013-magazine.warc.gz": (231, 65),
    "wget-2024-sample.warc.gz": (48, 22),
    "wikipedia-2012-homepage.warc.gz": (164, 74),
}


# -- the independent reference ---------------------------------------------------------------

REF_MAX_PAGE_BYTES = 8 << 20
REF_LAZY = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url")
REF_SRCSET = ("srcset", "data-srcset", "data-lazy-srcset")
REF_URL_KEEP = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/%:@!$&'()*+,;="
)
# WHATWG Encoding Standard labels that Python names differently (the ones that matter here)
REF_LABELS = {
    **dict.fromkeys(
        ["ascii", "us-ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "cp819"],
        "cp1252",
    ),
    **dict.fromkeys(["gb2312", "gb_2312", "gb_2312-80", "chinese", "x-gbk", "csgb2312"], "gbk"),
    **dict.fromkeys(["iso-8859-9", "latin5", "l5"], "cp1254"),
    "latin_1": "cp1252",  # charset-normalizer's name for what HTML calls windows-1252
}


def ref_codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    try:
        return codecs.lookup(REF_LABELS.get(label, label)).name
    except LookupError:
        return None


def ref_decode(body: bytes, header_label: str | None) -> str:
    """HTTP charset, else <meta> in the first 1024 bytes, else UTF-8, else detection."""
    codec = ref_codec(header_label)
    if codec is None:
        meta = re.search(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([\w.:+-]+)", body[:1024], re.I)
        codec = ref_codec(meta.group(1).decode("ascii")) if meta else None
    if codec:
        return body.decode(codec, "replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        best = charset_normalizer.from_bytes(body).best()
        return body.decode(ref_codec(best.encoding if best else None) or "cp1252", "replace")


def ref_percent_encode(text: str, keep: frozenset[str]) -> str:
    return "".join(
        ch if ch in keep else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in text
    )


def ref_url(raw: str, base: str) -> str | None:
    """The absolute http(s) URL of an attribute value per the WHATWG URL standard, or None.

    URL parsing is the one rule the reference shares with the library: both follow the URL
    standard, here through ada-url's own `URL` class rather than the library's code.
    """
    value = raw.strip(" \t\n\r\x0c")
    if not value or value.lower().startswith("data:"):
        return None
    try:
        url = ada_url.URL(value, base) if base else ada_url.URL(value)
    except ValueError:
        return None
    host = url.hostname.rstrip(".")
    if url.protocol not in ("http:", "https:") or url.username or url.password or not host:
        return None
    port = f":{url.port}" if url.port else ""
    out = f"{url.protocol}//{host}{port}{url.pathname}{url.search}"
    return out if len(out) <= 2048 else None


def ref_widest(srcset: str) -> str | None:
    """The HTML standard's candidate split: URL = non-whitespace run; descriptors to a comma."""
    best, best_key = None, None
    for match in re.finditer(r"[\s,]*([^\s]+)([^,]*)", srcset):
        url, descriptors = match.group(1), match.group(2)
        if url.endswith(","):
            url, descriptors = url.rstrip(","), ""
        words = descriptors.split()
        key = (0, 0.0)  # no descriptor: the lowest density
        if words and words[0][-1:] in ("w", "x"):
            try:
                number = float(words[0][:-1])
            except ValueError:
                number = None
            if number is not None:
                key = (1, number) if words[0].endswith("w") else (0, number)
        if url and (best_key is None or key > best_key):
            best, best_key = url, key
    return best


def ref_image_url(img, base: str) -> str | None:
    for name in (*REF_LAZY, "src"):
        url = ref_url(img.get(name) or "", base)
        if url:
            return url
    for name in REF_SRCSET:
        widest = ref_widest(img.get(name) or "")
        url = ref_url(widest, base) if widest else None
        if url:
            return url
    return None


def ref_alt(value: str) -> str:
    value = re.sub("[\x00-\x08\x0e-\x1b\x7f\u200b-\u200f\ufeff]", "", value)
    return " ".join(value.split())


def ref_dimension(value: str | None) -> int | None:
    value = (value or "").strip()
    value = value[:-2] if value.endswith("px") else value
    ok = value.isascii() and value.isdigit() and len(value) < 7
    return int(value) if ok else None


def ref_is_html(mime: str, identified: str, body: bytes) -> bool:
    mime = mime or identified.split(";")[0].strip().lower()
    if mime:
        return mime in ("text/html", "application/xhtml+xml")
    return body[:512].lstrip().lower().startswith((b"<!doctype html", b"<html"))


def ref_images(doc):
    """<img> as an HTML5 parser with scripting off builds them (lxml needs two corrections)."""
    for el in doc.iter("img", "image"):  # HTML5 tree building renames <image> to <img>
        ancestors = {a.tag for a in el.iterancestors()}
        if "template" in ancestors:  # template contents are not part of the document
            continue
        if el.tag == "image" and ancestors & {"svg", "math"}:
            continue
        yield el


def reference_extract(path: Path) -> dict:
    """Pages, candidates, and every pair (url, text, record offset) in arrival order."""
    pages = candidates = 0
    pairs: list[tuple[str, str, int]] = []
    with path.open("rb") as f:
        iterator = ArchiveIterator(f)
        for rec in iterator:
            warc_type = rec.rec_headers.get_header("Content-Type") or ""
            if rec.rec_type != "response" or not warc_type.startswith("application/http"):
                continue
            if int(rec.rec_headers.get_header("Content-Length")) > REF_MAX_PAGE_BYTES:
                continue
            content_type = rec.http_headers.get_header("Content-Type") or ""
            body = rec.content_stream().read()  # warcio undoes chunked and gzip/deflate/br
            identified = rec.rec_headers.get_header("WARC-Identified-Payload-Type") or ""
            mime = content_type.split(";")[0].strip().lower()
            if not ref_is_html(mime, identified, body):
                continue
            if rec.http_headers.get_statuscode() != "200":
                continue
            page_url = ref_url(rec.rec_headers.get_header("WARC-Target-URI").strip("<>"), "")
            if page_url is None:
                continue
            label = None
            for param in content_type.split(";")[1:]:
                name, _, value = param.partition("=")
                if name.strip().lower() == "charset" and value.strip(" \"'"):
                    label = value.strip(" \"'")
            pages += 1
            html = ref_decode(body, label)
            if not html.strip():
                continue
            doc = lxml.html.document_fromstring(html)
            base = page_url
            for el in doc.iter("base"):
                if el.get("href") is not None:
                    base = ref_url(el.get("href"), page_url) or page_url
                    break
            for img in ref_images(doc):
                candidates += 1
                if img.get("alt") is None:
                    continue
                alt = ref_alt(img.get("alt"))
                if not 5 <= len(alt) <= 2000:
                    continue
                url = ref_image_url(img, base)
                if url is None:
                    continue
                width, height = ref_dimension(img.get("width")), ref_dimension(img.get("height"))
                if (width is not None and width <= 1) or (height is not None and height <= 1):
                    continue
                pairs.append((url, alt, iterator.get_record_offset()))
    return {"pages": pages, "candidates": candidates, "pairs": pairs}


# -- helpers ---------------------------------------------------------------------------------


def open_local(path: str):
    return open(path, "rb")  # noqa: SIM115 - extract_shard closes it


def read_rows(data: bytes) -> list[dict]:
    table = pq.read_table(io.BytesIO(data), use_threads=False, pre_buffer=False)
    assert table.schema.equals(EXTRACTED_PAIRS_SCHEMA)
    return table.to_pylist()


def extract_bytes(files: dict[str, bytes], **kwargs):
    """Run extract_shard over in-memory WARC files; (result, rows)."""
    sink = io.BytesIO()
    result = extract_shard(
        list(files), sink, open_file=lambda name: io.BytesIO(files[name]),
        crawl="CC-TEST", shard="shard-0", **kwargs,
    )
    return result, read_rows(sink.getvalue())


def page(body: str | bytes, **kwargs) -> bytes:
    return http_block(body, **kwargs)


def html_doc(images: str, head: str = "", text: str = "") -> str:
    return f"<!doctype html><html><head>{head}</head><body><p>{text}</p>{images}</body></html>"


# -- (a) the real samples ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_runs() -> dict[str, tuple]:
    runs = {}
    for name in SAMPLES:
        sink = io.BytesIO()
        result = extract_shard(
            [str(SAMPLES_DIR / name)], sink, open_file=open_local,
            crawl="CC-TEST", shard=name,
        )
        runs[name] = (result, read_rows(sink.getvalue()))
    return runs


@pytest.fixture(scope="module")
def references() -> dict[str, dict]:
    return {name: reference_extract(SAMPLES_DIR / name) for name in SAMPLES}


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_matches_the_reference(name, sample_runs, references):
    result, rows = sample_runs[name]
    ref = references[name]
    firsts: dict[tuple[str, str], int] = {}
    for url, text, offset in ref["pairs"]:
        firsts.setdefault((url, text), offset)

    assert result.rows == len(rows) == len(firsts)
    assert {(r["url"], r["text"]) for r in rows} == set(firsts)
    assert [(r["url"], r["text"]) for r in rows] == list(firsts)  # one bucket: arrival order
    # the row kept is the first occurrence, with that page's provenance
    assert [r["warc_record_offset"] for r in rows] == list(firsts.values())
    assert result.stats.counts["html_pages"] == ref["pages"]
    assert result.stats.counts["candidates"] == ref["candidates"]
    assert result.stats.counts["pairs"] == len(ref["pairs"])


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_literal_counts(name, sample_runs):
    result, rows = sample_runs[name]
    counts = result.stats.counts
    found = (counts["html_pages"], counts["candidates"], counts["pairs"], result.rows)
    assert found == SAMPLE_COUNTS[name]
    assert (counts["records"], counts["responses"]) == SAMPLE_RECORDS[name]
    assert result.stats.dropped["duplicate"] == counts["pairs"] - result.rows
    assert sum(result.stats.languages.values()) == counts["pairs"]
    assert counts["warc_files"] == 1


def test_sample_skips_and_drops(sample_runs):
    """The samples read without WARC damage; heritrix holds one 302 HTML page."""
    for name, (result, _) in sample_runs.items():
        expected = {"http_status": 1} if name.startswith("heritrix") else {}
        assert dict(result.stats.skipped_records) == expected, name
    (skip,) = sample_runs["heritrix-2013-magazine.warc.gz"][0].skips
    assert skip["reason"] == "http_status" and skip["detail"] == "302"
    assert skip["warc_file"].endswith("heritrix-2013-magazine.warc.gz")
    result = sample_runs["heritrix-2013-magazine.warc.gz"][0]
    assert dict(result.stats.dropped) == {
        "no_alt": 69, "empty_alt": 87, "alt_too_short": 1, "duplicate": 1844,
    }


def test_sample_rows_carry_provenance(sample_runs):
    result, rows = sample_runs["cc-main-2024-22-whirlwind.warc.gz"]
    row = rows[0]
    assert row["crawl"] == "CC-TEST"
    assert row["shard"] == "cc-main-2024-22-whirlwind.warc.gz"
    assert row["warc_file"] == str(SAMPLES_DIR / "cc-main-2024-22-whirlwind.warc.gz")
    assert row["page_url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert row["warc_record_id"].startswith("<urn:uuid:")
    assert row["capture_time"].year == 2024
    assert row["pair_id"] == pair_id(row["url"], row["text"])
    assert all(r["url"].startswith(("http://", "https://")) for r in rows)
    assert len({r["pair_id"] for r in rows}) == len(rows)


# -- (b) hostile input through extract_shard --------------------------------------------------

GOOD_ALT = "A lighthouse on a rocky coast at dawn"


def good_page(n: int) -> bytes:
    return page(html_doc(f'<img src="/img/{n}.jpg" alt="{GOOD_ALT} number {n}">'))


def good_record(n: int) -> bytes:
    return warc_record(good_page(n), uri=f"http://example.com/page{n}")


def test_hostile_gzip_file_skips_are_recorded_with_offsets():
    block = good_page(3)
    members = gz(
        good_record(0),
        good_record(1),  # truncated below
        good_record(2),
        warc_record(block, uri="http://example.com/page3", content_length=len(block) + 9),
        warc_record(page("<html>gone</html>", status="404 Not Found"), uri="http://e.com/x"),
        good_record(4),
        good_record(5),  # truncated at the end below
    )
    members[1] = members[1][: len(members[1]) // 2]
    members[-1] = members[-1][:40]
    garbage = b"\x00garbage between members\x00"
    parts = [*members[:3], garbage, *members[3:]]
    starts = [sum(len(p) for p in parts[:i]) for i in range(len(parts))]

    result, rows = extract_bytes({"hostile.warc.gz": b"".join(parts)})

    assert sorted(r["page_url"] for r in rows) == [
        "http://example.com/page0", "http://example.com/page2", "http://example.com/page4",
    ]
    assert dict(result.stats.skipped_records) == {
        "corrupt_gzip_member": 1, "garbage_bytes": 1, "content_length_mismatch": 1,
        "http_status": 1, "truncated_gzip_member": 1,
    }
    assert [(s["warc_file"], s["offset"], s["reason"]) for s in result.skips] == [
        ("hostile.warc.gz", starts[1], "corrupt_gzip_member"),
        ("hostile.warc.gz", starts[3], "garbage_bytes"),
        ("hostile.warc.gz", starts[4], "content_length_mismatch"),
        ("hostile.warc.gz", starts[5], "http_status"),
        ("hostile.warc.gz", starts[7], "truncated_gzip_member"),
    ]
    assert result.stats.counts["records"] == 4  # 0, 2, 404 page, 4


def test_hostile_uncompressed_file_skips_are_recorded_with_offsets():
    block = good_page(1)
    parts = [
        good_record(0),
        b"<<garbage>>",
        warc_record(block, uri="http://example.com/page1", content_length=len(block) - 7),
        good_record(2),
        warc_record(good_page(3), uri="http://example.com/page3", content_length=10**6),
    ]
    starts = [sum(len(p) for p in parts[:i]) for i in range(len(parts))]

    result, rows = extract_bytes({"plain.warc": b"".join(parts)})

    assert [r["page_url"] for r in rows] == [  # page3: the file cuts it short, read as warcio
        "http://example.com/page0", "http://example.com/page2", "http://example.com/page3"]
    assert [(s["offset"], s["reason"]) for s in result.skips] == [
        (starts[1], "garbage_bytes"),
        (starts[2], "content_length_mismatch"),
    ]
    assert result.stats.counts["truncated_pages"] == 1
    assert all(s["warc_file"] == "plain.warc" for s in result.skips)


@pytest.mark.parametrize("content", [b"", b"this is not a WARC file\n" * 3])
def test_empty_or_non_warc_file_gives_no_rows(content):
    result, rows = extract_bytes({"odd.warc": content, "good.warc": good_record(0)})
    assert [r["warc_file"] for r in rows] == ["good.warc"]
    expected = {"garbage_bytes": 1} if content else {}
    assert dict(result.stats.skipped_records) == expected
    assert result.stats.counts["warc_files"] == 2


def test_missing_file_raises_naming_it_and_writes_nothing(tmp_path):
    good = tmp_path / "good.warc.gz"
    good.write_bytes(b"".join(gz(good_record(0))))
    missing = tmp_path / "missing.warc.gz"
    sink = io.BytesIO()
    with pytest.raises(ExtractionError, match=r"missing\.warc\.gz: cannot open"):
        extract_shard([str(good), str(missing)], sink, open_file=open_local,
                      crawl="c", shard="s")
    assert sink.getvalue() == b""


class FailingStream(io.BytesIO):
    """Reads fine for a while, then the storage goes away."""

    def read(self, size=-1):
        if self.tell() > 100:
            raise OSError("connection reset")
        return super().read(min(size, 50) if size and size > 0 else 50)


def test_read_failure_raises_naming_the_file_and_writes_nothing():
    data = b"".join(gz(good_record(0), good_record(1), good_record(2)))
    sink = io.BytesIO()
    with pytest.raises(ExtractionError, match=r"flaky\.warc\.gz: read failed: connection reset"):
        extract_shard(["flaky.warc.gz"], sink, open_file=lambda name: FailingStream(data),
                      crawl="c", shard="s")
    assert sink.getvalue() == b""


@pytest.fixture(scope="module")
def fifty_megabyte_page() -> bytes:
    filler = "<p>" + "a paragraph of a very long page " * 30 + "</p>\n"
    body = html_doc(f'<img src="/big.jpg" alt="{GOOD_ALT} in a huge page">' + filler * 55_000)
    assert len(body) > 50 * 2**20
    return page(body)


def test_fifty_megabyte_page_is_skipped_as_too_large(fifty_megabyte_page):
    parts = gz(
        good_record(0),
        warc_record(fifty_megabyte_page, uri="http://example.com/big"),
        good_record(1),
        level=1,
    )
    result, rows = extract_bytes({"big.warc.gz": b"".join(parts)})

    assert [r["page_url"] for r in rows] == ["http://example.com/page0", "http://example.com/page1"]
    assert dict(result.stats.skipped_records) == {"page_too_large": 1}
    (skip,) = result.skips
    assert skip["offset"] == len(parts[0]) and skip["reason"] == "page_too_large"
    assert skip["detail"] == f"{len(fifty_megabyte_page)} bytes > {8 << 20}"


def test_large_non_html_response_is_not_a_skipped_page():
    video = http_block(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 3000, content_type="video/mp4")
    parts = gz(good_record(0), warc_record(video, uri="http://example.com/v.mp4"), good_record(1))
    result, rows = extract_bytes(
        {"v.warc.gz": b"".join(parts)}, config=ExtractConfig(max_page_bytes=1000)
    )
    assert len(rows) == 2
    assert dict(result.stats.skipped_records) == {}
    assert result.stats.counts["responses"] == 3 and result.stats.counts["html_pages"] == 2


def test_page_over_the_cap_after_content_decoding_is_too_large():
    body = html_doc(f'<img src="/a.jpg" alt="{GOOD_ALT}">' + "<p>zip bomb</p>" * 2000)
    block = page(gzip.compress(body.encode(), mtime=0), headers=(("Content-Encoding", "gzip"),))
    assert len(block) < 2000 < len(body)
    result, rows = extract_bytes(
        {"bomb.warc": warc_record(block)}, config=ExtractConfig(max_page_bytes=2000)
    )
    assert rows == []
    assert dict(result.stats.skipped_records) == {"page_too_large": 1}


RUSSIAN_TEXT = (
    "Выставка современного искусства открылась в Москве. Художники из разных городов "
    "представили свои работы, и посетители смогли увидеть картины и скульптуры."
)
RUSSIAN_ALT = "Картина художника на выставке в Москве"
JAPANESE_TEXT = (
    "京都の秋はとても美しいです。多くの観光客が紅葉を見に来ます。"
    "清水寺や嵐山では、赤や黄色の葉がとてもきれいです。"
)
JAPANESE_ALT = "清水寺の紅葉と夕焼けの景色"


@pytest.mark.parametrize(
    ("codec", "text", "alt", "language"),
    [
        ("cp1251", RUSSIAN_TEXT, RUSSIAN_ALT, "ru"),
        ("shift_jis", JAPANESE_TEXT, JAPANESE_ALT, "ja"),
    ],
)
def test_undeclared_charset_is_detected(codec, text, alt, language):
    body = html_doc(f'<img src="/photo.jpg" alt="{alt}">', text=text).encode(codec)
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    block = page(body, content_type="text/html")  # no charset anywhere
    result, rows = extract_bytes({"cs.warc": warc_record(block)})
    assert [(r["text"], r["language"]) for r in rows] == [(alt, language)]
    assert result.stats.counts["charset_from_detected"] == 1


def test_declared_charsets_header_then_meta():
    alt = "Ein Bär über der Brücke"
    meta = '<meta charset="iso-8859-1">'
    latin = html_doc(f'<img src="/a.jpg" alt="{alt}">', head=meta).encode("cp1252")
    files = {
        # the header wins over a wrong <meta>
        "header.warc": warc_record(page(latin.replace(b"iso-8859-1", b"utf-8"),
                                        content_type="text/html; charset=windows-1252")),
        # no header charset: the <meta> is used
        "meta.warc": warc_record(page(latin, content_type="text/html")),
    }
    result, rows = extract_bytes(files)
    assert [r["text"] for r in rows] == [alt]  # the same pair twice: one row
    assert result.stats.counts["charset_from_header"] == 1
    assert result.stats.counts["charset_from_meta"] == 1


def chunked(data: bytes, size: int = 37) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("encode", "headers"),
    [
        (lambda b: gzip.compress(b, mtime=0), (("Content-Encoding", "gzip"),)),
        (zlib.compress, (("Content-Encoding", "deflate"),)),
        (brotli.compress, (("Content-Encoding", "br"),)),
        (chunked, (("Transfer-Encoding", "chunked"),)),
        (
            lambda b: chunked(gzip.compress(b, mtime=0)),
            (("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")),
        ),
    ],
    ids=["gzip", "deflate", "br", "chunked", "chunked+gzip"],
)
def test_encoded_bodies_are_decoded(encode, headers):
    alt = "Zwei Katzen schlafen auf dem Sofa"
    body = html_doc(f'<img src="/cats.jpg" alt="{alt}">', text="Katzen " * 50).encode()
    block = page(encode(body), headers=headers)
    result, rows = extract_bytes({"enc.warc.gz": b"".join(gz(warc_record(block)))})
    assert [(r["url"], r["text"]) for r in rows] == [("http://example.com/cats.jpg", alt)]
    assert result.stats.counts["html_pages"] == 1


def test_content_encoding_not_applied_uses_the_stored_body():
    """A crawler that saved the decoded body but kept `Content-Encoding: gzip` (warcio too)."""
    body = html_doc(f'<img src="/a.jpg" alt="{GOOD_ALT}">')
    block = page(body, headers=(("Content-Encoding", "gzip"),))
    result, rows = extract_bytes({"bad.warc": warc_record(block)})
    assert [r["text"] for r in rows] == [GOOD_ALT]
    assert dict(result.stats.skipped_records) == {}
    assert result.stats.counts["content_encoding_not_applied"] == 1


@pytest.mark.parametrize("status", ["404 Not Found", "301 Moved Permanently", "500 Oops"])
def test_non_200_html_page_is_an_http_status_skip(status):
    block = page(html_doc(f'<img src="/a.jpg" alt="{GOOD_ALT}">'), status=status)
    result, rows = extract_bytes({"s.warc": good_record(0) + warc_record(block)})
    assert len(rows) == 1
    assert result.skips == [
        {"warc_file": "s.warc", "offset": len(good_record(0)), "reason": "http_status",
         "detail": status.split()[0]}
    ]


def test_which_records_are_pages():
    def html(n: int) -> str:
        return html_doc(f'<img src="/a{n}.jpg" alt="{GOOD_ALT} {n}">')

    def identified(kind: str) -> tuple[tuple[str, str], ...]:
        return (("WARC-Identified-Payload-Type", kind),)

    records = [
        # not response records / not HTTP: ignored
        warc_record(page(html(1)), rec_type="request", uri="http://e.com/1"),
        warc_record(html(2).encode(), rec_type="resource", content_type="text/html",
                    uri="http://e.com/2"),
        # non-HTML content type: ignored, even though the body is HTML
        warc_record(page(html(3), content_type="text/plain"), uri="http://e.com/3"),
        # XHTML
        warc_record(page(html(4), content_type="application/xhtml+xml"), uri="http://e.com/4"),
        # no HTTP Content-Type: Common Crawl's identified type decides
        warc_record(page(html(5), content_type=None), uri="http://e.com/5",
                    extra=identified("text/html")),
        warc_record(page(html(6), content_type=None), uri="http://e.com/6",
                    extra=identified("image/jpeg")),
        # neither: sniffed
        warc_record(page(html(7), content_type=None), uri="http://e.com/7"),
        warc_record(page("just text", content_type=None), uri="http://e.com/8"),
        # the HTTP Content-Type wins over the identified type
        warc_record(page(html(9), content_type="image/png"), uri="http://e.com/9",
                    extra=identified("text/html")),
        # a page URL that is not http(s)
        warc_record(page(html(10)), uri="ftp://e.com/10"),
        # not an HTTP response at all
        warc_record(b"SMTP 250 OK\r\n\r\nhello", uri="http://e.com/11"),
    ]
    result, rows = extract_bytes({"kinds.warc": b"".join(records)})
    assert [r["page_url"] for r in rows] == ["http://e.com/4", "http://e.com/5", "http://e.com/7"]
    assert [r["url"] for r in rows] == [f"http://e.com/a{n}.jpg" for n in (4, 5, 7)]
    assert result.stats.counts["records"] == 11
    assert result.stats.counts["responses"] == 9
    assert result.stats.counts["html_pages"] == 3
    assert dict(result.stats.skipped_records) == {"invalid_page_url": 1, "invalid_http": 1}


# -- (c) drop reasons ---------------------------------------------------------------------------


def test_every_drop_reason_is_counted():
    images = "".join([
        f'<img src="/ok1.jpg" alt="{GOOD_ALT}">',                           # kept
        f'<img data-src="/ok2.jpg" src="/spinner.gif" alt="{GOOD_ALT} 2">',  # kept (lazy)
        '<img src="/no-alt.jpg">',                                         # no_alt
        '<img src="/empty.jpg" alt="">',                                   # empty_alt
        '<img src="/blank.jpg" alt=" \n\t ">',                             # empty_alt
        '<img src="/bare.jpg" alt>',                                       # empty_alt
        '<img src="/short.jpg" alt="abcd">',                               # alt_too_short
        f'<img src="/long.jpg" alt="{"x" * 2001}">',                       # alt_too_long
        f'<img src="/limit.jpg" alt="{"y" * 2000}">',                      # kept: at the limit
        f'<img src="data:image/png;base64,iVBORw0KGgo=" alt="{GOOD_ALT}">',  # data_uri
        f'<img src="javascript:void(0)" alt="{GOOD_ALT}">',                # unsupported_scheme
        f'<img src="mailto:someone@example.com" alt="{GOOD_ALT}">',        # unsupported_scheme
        f'<img alt="{GOOD_ALT} without any source">',                      # no_src
        f'<img src="http://[::1/broken.jpg" alt="{GOOD_ALT}">',            # invalid_url
        f'<img src="/p1.gif" width="1" height="1" alt="{GOOD_ALT}">',      # tracking_pixel
        f'<img src="/p2.gif" width="0" alt="{GOOD_ALT}">',                 # tracking_pixel
        f'<img src="/p3.gif" height="1px" alt="{GOOD_ALT}">',              # tracking_pixel
        f'<img src="/ok1.jpg" alt="{GOOD_ALT}">',                          # duplicate
        # reasons are checked in order: alt first, then URL, then pixel
        '<img src="data:image/gif;base64,R0lGOD" width="1">',              # no_alt
        '<img src="javascript:x()" alt="tiny" width="1">',                 # alt_too_short
        f'<img src="data:," width="1" alt="{GOOD_ALT}">',                  # data_uri
    ])
    result, rows = extract_bytes({"drops.warc": warc_record(page(html_doc(images)))})

    assert [r["url"] for r in rows] == [
        "http://example.com/ok1.jpg", "http://example.com/ok2.jpg", "http://example.com/limit.jpg",
    ]
    assert dict(result.stats.dropped) == {
        "no_alt": 2, "empty_alt": 3, "alt_too_short": 2, "alt_too_long": 1, "data_uri": 2,
        "unsupported_scheme": 2, "no_src": 1, "invalid_url": 1, "tracking_pixel": 3,
        "duplicate": 1,
    }
    assert result.stats.counts["candidates"] == 21
    assert result.stats.counts["pairs"] == 4
    assert sum(result.stats.dropped.values()) - 1 + result.stats.counts["pairs"] == 21


def test_alt_limits_follow_the_config():
    images = '<img src="/a.jpg" alt="abc"><img src="/b.jpg" alt="abcdefghijk">'
    config = ExtractConfig(min_alt_chars=3, max_alt_chars=10, drop_tracking_pixels=False)
    result, rows = extract_bytes({"c.warc": warc_record(page(html_doc(images)))}, config=config)
    assert [r["text"] for r in rows] == ["abc"]
    assert dict(result.stats.dropped) == {"alt_too_long": 1, "duplicate": 0}


def test_tracking_pixels_kept_when_configured():
    images = f'<img src="/p.gif" width="1" height="1" alt="{GOOD_ALT}">'
    config = ExtractConfig(drop_tracking_pixels=False)
    result, rows = extract_bytes({"p.warc": warc_record(page(html_doc(images)))}, config=config)
    assert [(r["declared_width"], r["declared_height"]) for r in rows] == [(1, 1)]


def test_duplicates_across_pages_and_files_keep_the_first():
    files = {
        "a.warc": good_record(0) + warc_record(good_page(0), uri="http://example.com/again"),
        "b.warc": warc_record(good_page(0), uri="http://example.com/third"),
    }
    result, rows = extract_bytes(files)
    assert [(r["warc_file"], r["page_url"]) for r in rows] == [("a.warc", "http://example.com/page0")]
    assert result.stats.dropped["duplicate"] == 2


# -- (d) dedup across buckets -------------------------------------------------------------------


def test_bucketed_dedup_equals_one_bucket():
    paths = [str(SAMPLES_DIR / name) for name in SAMPLES]
    outputs = {}
    for input_bytes in (0, 5 * 2**30):
        sink = io.BytesIO()
        result = extract_shard(paths, sink, open_file=open_local, crawl="c",
                               shard="s", input_bytes=input_bytes)
        rows = read_rows(sink.getvalue())
        assert result.rows == len(rows)
        assert len({r["pair_id"] for r in rows}) == len(rows)
        outputs[input_bytes] = rows
    one, many = outputs[0], outputs[5 * 2**30]
    as_set = lambda rows: {tuple(sorted(r.items())) for r in rows}  # noqa: E731
    assert len(one) == len(many) == sum(v[3] for v in SAMPLE_COUNTS.values()) == 241
    assert as_set(one) == as_set(many)
    assert [r["pair_id"] for r in one] != [r["pair_id"] for r in many]  # really bucketed


def test_pair_ids_are_unique_and_match_url_and_text(sample_runs):
    for _, rows in sample_runs.values():
        assert all(r["pair_id"] == pair_id(r["url"], r["text"]) for r in rows)
        assert len({r["pair_id"] for r in rows}) == len(rows)


def test_language_counts_for_a_sample(sample_runs):
    result, rows = sample_runs["wikipedia-2012-homepage.warc.gz"]
    assert Counter(r["language"] for r in rows) == result.stats.languages
    assert result.stats.languages["en"] == 12
