"""The extraction stage: WARC files in, deduplicated image/alt-text pairs (parquet) out.

Streaming: records are read one at a time, pairs leave in record batches, and the dedup
spill keeps memory bounded by one bucket (see `dedup.py`), whatever the shard's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

import pyarrow as pa

from laion_assets.pipeline.core.stats import StageStats
from laion_assets.pipeline.extract.captures import CaptureIndexer
from laion_assets.pipeline.extract.dedup import DedupWriter
from laion_assets.pipeline.extract.language import LanguageIdentifier
from laion_assets.pipeline.extract.pairs import EXTRACTED_PAIRS_SCHEMA, pair_id
from laion_assets.pipeline.extract.text import normalize_alt
from laion_assets.pipeline.formats.charset import html_for_parser
from laion_assets.pipeline.formats.html import choose_url_host, dimension, image_attributes
from laion_assets.pipeline.formats.http import (
    HttpParseError,
    charset_of,
    decode_body,
    mime_type_of,
    parse_response_head,
)
from laion_assets.pipeline.formats.urls import UrlRejected, normalize
from laion_assets.pipeline.formats.warc import WarcRecord, WarcSkip, iter_warc

HTML_TYPES = ("text/html", "application/xhtml+xml")
_EPOCH, _MILLISECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(milliseconds=1)
BUCKET_INPUT_BYTES = 64 << 20  # one dedup bucket per 64 MiB of compressed WARC input
MAX_BUCKETS = 256  # open spill files at once
MAX_RECORDED_SKIPS = 100
_COLUMNS = EXTRACTED_PAIRS_SCHEMA.names
_TEXT, _LANGUAGE, _LANGUAGE_SCORE = (_COLUMNS.index(c) for c in ("text", "language",
                                                                  "language_score"))


class ExtractionError(RuntimeError):
    """A WARC file that cannot be read at all; the message names the file."""


@dataclass(frozen=True)
class ExtractConfig:
    """Extraction rules; the defaults are LAION's where LAION had one."""

    min_alt_chars: int = 5
    max_alt_chars: int = 2000
    drop_tracking_pixels: bool = True
    max_page_bytes: int = 8 << 20
    min_language_score: float = 0.0
    rows_per_batch: int = 10_000

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ExtractResult:
    rows: int
    stats: StageStats
    skips: list[dict] = field(default_factory=list)


@dataclass(slots=True)
class Page:
    url: str
    html: str | bytes
    record_id: str
    capture_time: datetime | None
    offset: int

    @property
    def capture_ms(self) -> int | None:
        """`capture_time` as the parquet column stores it (ms since the epoch, UTC)."""
        if self.capture_time is None:
            return None
        return (self.capture_time - _EPOCH) // _MILLISECOND


class PairExtractor:
    """Turns WARC records into pair rows, counting every dropped record and candidate."""

    def __init__(self, config: ExtractConfig, crawl: str, shard: str,
                 captures: CaptureIndexer | None = None) -> None:
        self.config, self.crawl, self.shard, self.captures = config, crawl, shard, captures
        self.language = LanguageIdentifier(config.min_language_score)
        self.stats = StageStats()
        self.skips: list[dict] = []

    def iter_rows(self, stream: BinaryIO, warc_file: str) -> Iterator[tuple]:
        """Rows (in `EXTRACTED_PAIRS_SCHEMA` order) of every pair in one WARC stream, their
        `language` and `language_score` still None: `label_languages` fills them."""
        for item in iter_warc(stream, max_block_bytes=self.config.max_page_bytes):
            if isinstance(item, WarcSkip):
                self._skip(warc_file, item.offset, item.reason, item.detail)
                continue
            self.stats.counts["records"] += 1
            page = self._page(item, warc_file)
            if page is not None:
                yield from self._rows(page, warc_file)

    def _skip(self, warc_file: str, offset: int, reason: str, detail: str) -> None:
        self.stats.skipped_records[reason] += 1
        if len(self.skips) < MAX_RECORDED_SKIPS:
            self.skips.append(
                {"warc_file": warc_file, "offset": offset, "reason": reason, "detail": detail}
            )

    def _page(self, record: WarcRecord, warc_file: str) -> Page | None:
        """The record as an HTML page, or None (with the reason counted when it is a skip)."""
        if record.rec_type != "response" or not record.headers.get(
            "content-type", ""
        ).startswith("application/http"):
            return None
        self.stats.counts["responses"] += 1
        try:
            status, headers, start = parse_response_head(record.block)
        except HttpParseError as exc:
            self._skip(warc_file, record.offset, exc.reason, exc.detail)
            return None
        mime = mime_type_of(headers)
        if self.captures is not None and mime.startswith("image/"):
            self.captures.add(record, warc_file, status, mime)
        is_html = _declared_html(mime, record)
        if is_html is False:
            return None  # not a page: its body is never decoded
        if record.capped:  # too large to parse: only an HTML response is a lost page
            if is_html or _sniffed_html(record.block[start : start + 512]):
                self._skip(warc_file, record.offset, "page_too_large",
                           f"{record.block_length} bytes > {self.config.max_page_bytes}")
            return None
        try:
            body = decode_body(record.block[start:], headers,
                               max_body_bytes=self.config.max_page_bytes,
                               notes=self.stats.counts)  # warcio's leniencies, counted
        except HttpParseError as exc:
            self._skip(warc_file, record.offset, exc.reason, exc.detail)
            return None
        if is_html is None and not _sniffed_html(body):
            return None
        if status != 200:
            self._skip(warc_file, record.offset, "http_status", str(status))
            return None
        try:
            page_url = normalize(record.headers.get("warc-target-uri", "").strip("<> "))
        except UrlRejected as exc:
            self._skip(warc_file, record.offset, "invalid_page_url", str(exc))
            return None
        html, _, charset_source = html_for_parser(body, charset_of(headers))
        self.stats.counts["html_pages"] += 1
        self.stats.counts[f"charset_from_{charset_source}"] += 1
        if "warc-truncated" in record.headers:
            self.stats.counts["truncated_pages"] += 1
        return Page(page_url, html, record.headers.get("warc-record-id", ""),
                    parse_warc_date(record.headers.get("warc-date")), record.offset)

    def label_languages(self, columns: list[list]) -> None:
        """Fill the language columns of a batch (`_to_batch`'s columns) from its alt texts.
        Language id runs here, a batch at a time, rather than between the pages' other work:
        fastText's tables then stay in the CPU cache (~3x faster a text on varied text)."""
        columns[_LANGUAGE], columns[_LANGUAGE_SCORE] = self.language.identify_many(columns[_TEXT])
        self.stats.languages.update(columns[_LANGUAGE])

    def _rows(self, page: Page, warc_file: str) -> Iterator[tuple]:
        """Pair rows of a page. The hot loop of the stage: it works on the attribute dicts
        directly, checks the alt text before anything else, and resolves a URL only for an
        `<img>` whose alt text passed; the page's columns are bound once."""
        config, stats = self.config, self.stats
        dropped, count_domain = stats.dropped, stats.count_domain
        min_chars, max_chars = config.min_alt_chars, config.max_alt_chars
        pixels = config.drop_tracking_pixels
        base_url, images = image_attributes(page.html, page.url)
        stats.counts["candidates"] += len(images)
        provenance = (self.crawl, self.shard, warc_file, page.offset, page.record_id, page.url,
                      page.capture_ms)
        for attrs in images:
            alt = attrs.get("alt")
            if not alt:
                dropped["empty_alt" if "alt" in attrs else "no_alt"] += 1
                continue
            alt = normalize_alt(alt)
            length = len(alt)
            if not length or length < min_chars or length > max_chars:
                dropped[_alt_reason(alt, config)] += 1
                continue
            url, host, source, reason = choose_url_host(attrs, base_url)
            width = height = None
            if reason is None:
                w, h = attrs.get("width"), attrs.get("height")
                if w or h:
                    width, height = dimension(attrs, "width"), dimension(attrs, "height")
                    if pixels and _is_pixel(width, height):
                        reason = "tracking_pixel"
            if reason is not None:
                dropped[reason] += 1
                continue
            count_domain(host)
            yield (pair_id(url, alt), url, alt, None, None, source, width, height, *provenance)


def extract_shard(
    warc_files: Sequence[str],
    sink: BinaryIO,
    *,
    open_file: Callable[[str], BinaryIO],
    crawl: str,
    shard: str,
    config: ExtractConfig = ExtractConfig(),
    input_bytes: int = 0,
    captures_sink: BinaryIO | None = None,
    log: Callable[[str], None] | None = None,
) -> ExtractResult:
    """Extract, deduplicate by `pair_id` and write a shard's pairs to `sink` as parquet.

    With `captures_sink`, the shard's image responses are indexed there too (`captures.py`);
    `log` gets a progress line after each WARC file.
    """
    captures = CaptureIndexer(captures_sink) if captures_sink is not None else None
    extractor = PairExtractor(config, crawl, shard, captures)
    buckets = _bucket_count(input_bytes)
    writer = DedupWriter(EXTRACTED_PAIRS_SCHEMA, "pair_id", buckets)
    try:
        for warc_file in warc_files:
            rows = _rows_of(extractor, open_file, warc_file)
            for batch in _batches(rows, config.rows_per_batch, extractor.label_languages):
                writer.write(batch)
            extractor.stats.counts["warc_files"] += 1
            if log is not None:
                counts = extractor.stats.counts
                log(f"{counts['warc_files']}/{len(warc_files)} WARC files: "
                    f"{counts['html_pages']} pages, {writer.rows_in} pairs so far")
        rows = writer.finish(sink)
        if captures is not None:
            captures.close()
            extractor.stats.counts["image_captures"] = captures.count
    finally:
        writer.close()
    stats = extractor.stats
    stats.counts["pairs"] = writer.rows_in
    stats.counts["rows"] = rows
    stats.dropped["duplicate"] = writer.rows_in - rows
    return ExtractResult(rows, stats, extractor.skips)


def _rows_of(extractor: PairExtractor, open_file: Callable, warc_file: str) -> Iterator[tuple]:
    try:
        stream = open_file(warc_file)
    except OSError as exc:
        raise ExtractionError(f"{warc_file}: cannot open: {exc}") from exc
    with stream:
        try:
            yield from extractor.iter_rows(stream, warc_file)
        except OSError as exc:
            raise ExtractionError(f"{warc_file}: read failed: {exc}") from exc


def _batches(rows: Iterator[tuple], size: int,
             label: Callable[[list[list]], None]) -> Iterator[pa.RecordBatch]:
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield _to_batch(chunk, label)
            chunk = []
    if chunk:
        yield _to_batch(chunk, label)


def _to_batch(chunk: list[tuple], label: Callable[[list[list]], None]) -> pa.RecordBatch:
    arrays = [list(col) for col in zip(*chunk, strict=True)]
    label(arrays)
    return pa.RecordBatch.from_pydict(dict(zip(_COLUMNS, arrays, strict=True)),
                                      schema=EXTRACTED_PAIRS_SCHEMA)


def _bucket_count(input_bytes: int) -> int:
    buckets = 1
    while buckets * BUCKET_INPUT_BYTES < input_bytes and buckets < MAX_BUCKETS:
        buckets *= 2
    return buckets


def _alt_reason(alt: str | None, config: ExtractConfig) -> str | None:
    if alt is None:
        return "no_alt"
    if not alt:
        return "empty_alt"
    if len(alt) < config.min_alt_chars:
        return "alt_too_short"
    if len(alt) > config.max_alt_chars:
        return "alt_too_long"
    return None


def _is_pixel(width: int | None, height: int | None) -> bool:
    return (width is not None and width <= 1) or (height is not None and height <= 1)


def _declared_html(mime: str, record: WarcRecord) -> bool | None:
    """HTML by the HTTP Content-Type, else by Common Crawl's identified type; None: unknown."""
    if not mime:
        mime = record.headers.get("warc-identified-payload-type", "").split(";")[0].strip()
    return mime.lower() in HTML_TYPES if mime else None


def _sniffed_html(body: bytes) -> bool:
    """For a response that names no type: does the body start like an HTML document?"""
    return body[:512].lstrip().lower().startswith((b"<!doctype html", b"<html"))


def parse_warc_date(value: str | None) -> datetime | None:
    """WARC-Date as a UTC datetime (ISO 8601 as WARC 1.x writes it, or 14 digits as 0.17 did)."""
    if not value:
        return None
    text = value.strip()
    try:
        if text.isdigit() and len(text) == 14:
            parsed = datetime.strptime(text, "%Y%m%d%H%M%S")
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
