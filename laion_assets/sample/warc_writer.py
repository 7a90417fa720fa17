"""Writes the sample drop's WARC files: warcinfo, request/response pairs, images, revisits.

Records come from warcio's WARCWriter (one gzip member per record) with seeded record ids and
a fixed clock that ticks one second per record, so the same seed gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from laion_assets.sample.catalogue import Extra, ImageSpec, Page
from laion_assets.sample.images import render_image

START_DATE = datetime(2026, 11, 21, tzinfo=UTC)
USER_AGENT = "SampleBot/1.0 (+https://crawler.example/bot)"


@dataclass
class _Capture:
    """Where an image URL was first captured (for revisit records)."""

    record_id: str
    date: str
    digest: str




def _payload_digest(body: bytes) -> str:
    """WARC-style ``sha1:<base32>`` digest."""
    return "sha1:" + base64.b32encode(hashlib.sha1(body).digest()).decode("ascii")


def _host_ip(url: str) -> str:
    """A stable fake address in TEST-NET-1 (192.0.2.0/24) for the URL's host."""
    host = urlsplit(url).hostname or ""
    return f"192.0.2.{zlib.crc32(host.encode()) % 254 + 1}"


_REASONS = {200: "OK", 301: "Moved Permanently", 404: "Not Found"}


class _WarcRecorder:
    """Writes records to one WARC file with seeded record ids and a ticking fixed clock."""

    def __init__(self, fh: BinaryIO, rng: random.Random, start: datetime) -> None:
        self.writer = WARCWriter(fh, gzip=True, warc_version="1.0")
        self.rng = rng
        self.clock = start
        self.warcinfo_id = ""

    def _new_id(self) -> str:
        return f"<urn:uuid:{uuid.UUID(int=self.rng.getrandbits(128), version=4)}>"

    def _tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def _warc_headers(self, rtype: str, date: datetime, **extra: str) -> dict[str, str]:
        headers = {"WARC-Type": rtype, "WARC-Record-ID": self._new_id(),
                   "WARC-Date": date.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if self.warcinfo_id:
            headers["WARC-Warcinfo-ID"] = self.warcinfo_id
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return headers

    def warcinfo(self, filename: str, crawl: str) -> None:
        """Write the leading ``warcinfo`` record."""
        info = (f"software: laion_assets.sample.drop\r\nformat: WARC File Format 1.0"
                f"\r\nisPartOf: {crawl}\r\ndescription: Synthetic sample crawl drop\r\n"
                f"robots: classic\r\n").encode()
        headers = self._warc_headers("warcinfo", self._tick(), WARC_Filename=filename)
        record = self.writer.create_warc_record(
            "", "warcinfo", payload=io.BytesIO(info), length=len(info),
            warc_content_type="application/warc-fields", warc_headers_dict=headers)
        self.writer.write_record(record)
        self.warcinfo_id = headers["WARC-Record-ID"]

    def request(self, url: str) -> tuple[str, datetime]:
        """Write a GET ``request`` record; return its id and date."""
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        http = StatusAndHeaders(f"GET {target} HTTP/1.1", [
            ("Host", parts.netloc), ("User-Agent", USER_AGENT), ("Accept", "*/*"),
        ], is_http_request=True)
        date = self._tick()
        headers = self._warc_headers("request", date, WARC_IP_Address=_host_ip(url))
        record = self.writer.create_warc_record(url, "request", warc_headers_dict=headers,
                                                http_headers=http)
        self.writer.write_record(record)
        return headers["WARC-Record-ID"], date

    @staticmethod
    def _http(status: int, ctype: str, length: int, date: datetime,
              extra: tuple[tuple[str, str], ...] = ()) -> StatusAndHeaders:
        headers = [("Date", format_datetime(date, usegmt=True)), ("Server", "nginx"),
                   ("Content-Type", ctype), ("Content-Length", str(length)), *extra]
        return StatusAndHeaders(f"{status} {_REASONS[status]}", headers, protocol="HTTP/1.1")

    def response(self, url: str, status: int, ctype: str, body: bytes, *,
                 extra: tuple[tuple[str, str], ...] = (), concurrent_to: str = "",
                 date: datetime | None = None) -> _Capture:
        """Write a ``response`` record; return where it was captured."""
        date = date or self._tick()
        more = {"WARC_Concurrent_To": concurrent_to} if concurrent_to else {}
        headers = self._warc_headers("response", date, WARC_IP_Address=_host_ip(url), **more)
        http = self._http(status, ctype, len(body), date, extra)
        record = self.writer.create_warc_record(
            url, "response", payload=io.BytesIO(body), length=len(body),
            warc_headers_dict=headers, http_headers=http)
        self.writer.write_record(record)
        return _Capture(headers["WARC-Record-ID"], headers["WARC-Date"], _payload_digest(body))

    def revisit(self, spec: ImageSpec, length: int, original: _Capture) -> None:
        """Write an identical-payload-digest ``revisit`` record for an earlier capture."""
        date = self._tick()
        headers = self._warc_headers(
            "revisit", date, WARC_IP_Address=_host_ip(spec.url),
            WARC_Refers_To=original.record_id)
        record = self.writer.create_revisit_record(
            spec.url, original.digest, spec.url, original.date,
            http_headers=self._http(200, spec.content_type, length, date),
            warc_headers_dict=headers)
        self.writer.write_record(record)


_NOT_FOUND = (
    b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n"
)


@dataclass
class DropState:
    """Cross-file state: first captures (for revisits), image cache, counters."""

    seed: int
    first: dict[str, _Capture] = field(default_factory=dict)
    cache: dict[str, bytes] = field(default_factory=dict)
    image_records: int = 0

    def image(self, spec: ImageSpec) -> bytes:
        """Rendered bytes for ``spec`` (cached by URL, so repeats are identical)."""
        if spec.url not in self.cache:
            self.cache[spec.url] = render_image(spec, self.seed)
        return self.cache[spec.url]


def _write_image(rec: _WarcRecorder, state: DropState, spec: ImageSpec) -> None:
    """Capture one image: 404 page, revisit of an earlier file's capture, or the bytes."""
    if spec.status == 404:
        rec.response(spec.url, 404, "text/html", _NOT_FOUND)
        return
    body = state.image(spec)
    if spec.revisit and spec.url in state.first:
        rec.revisit(spec, len(body), state.first[spec.url])
        return
    capture = rec.response(spec.url, 200, spec.content_type, body)
    state.first.setdefault(spec.url, capture)
    state.image_records += 1


def _write_page(rec: _WarcRecorder, state: DropState, page: Page, seen: set[str]) -> None:
    """Capture a page (request + response) followed by its not-yet-captured images."""
    request_id, date = rec.request(page.url)
    rec.response(page.url, 200, page.content_type, page.html.encode(page.encoding),
                 concurrent_to=request_id, date=date)
    for spec in page.images:
        if spec.url not in seen:
            seen.add(spec.url)
            _write_image(rec, state, spec)


def _write_extra(rec: _WarcRecorder, extra: Extra) -> None:
    """Capture a non-page resource (request + response)."""
    request_id, date = rec.request(extra.url)
    rec.response(extra.url, extra.status, extra.content_type, extra.body,
                 extra=extra.headers, concurrent_to=request_id, date=date)


def _records(pages: list[Page], extras: list[Extra]) -> Iterator[Page | Extra]:
    """Interleave a file's extras after its first page."""
    yield from pages[:1]
    yield from extras
    yield from pages[1:]


def write_warc(path: Path, index: int, crawl: str, pages: list[Page], extras: list[Extra],
                state: DropState) -> None:
    """Write one WARC file."""
    rng = random.Random(f"sample-drop:{state.seed}:ids:{index}")
    seen: set[str] = set()
    with path.open("wb") as fh:
        rec = _WarcRecorder(fh, rng, START_DATE + timedelta(hours=index))
        rec.warcinfo(path.name, crawl)
        for item in _records(pages, extras):
            if isinstance(item, Page):
                _write_page(rec, state, item, seen)
            else:
                _write_extra(rec, item)
