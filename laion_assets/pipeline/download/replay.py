"""Replay images from WARC captures: one seek per image, no network."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa

from laion_assets.pipeline.formats.http import HttpParseError, parse_response
from laion_assets.pipeline.formats.warc import WarcFormatError, read_record_at

MAX_IMAGE_RECORD_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class Capture:
    warc_file: str
    offset: int
    length: int
    http_status: int


@dataclass(frozen=True, slots=True)
class Replayed:
    """What the archive holds for a URL: the body of a 200 capture, or the status it got."""

    http_status: int
    body: bytes
    content_type: str | None
    capture: Capture


class ReplayIndex:
    """URL → the best capture of it (a 200 response if any, else the first one seen)."""

    def __init__(self) -> None:
        self._by_url: dict[str, Capture] = {}

    def __len__(self) -> int:
        return len(self._by_url)

    def __contains__(self, url: str) -> bool:
        return url in self._by_url

    def add_table(self, table: pa.Table) -> None:
        """Add the rows of a captures table (see `captures.CAPTURES_SCHEMA`)."""
        columns = [table.column(n).to_pylist() for n in
                   ("url", "warc_file", "warc_record_offset", "warc_record_length", "http_status")]
        for url, warc_file, offset, length, status in zip(*columns, strict=True):
            known = self._by_url.get(url)
            if known is None or (known.http_status != 200 and status == 200):
                self._by_url[url] = Capture(warc_file, offset, length, status)

    def get(self, url: str) -> Capture | None:
        return self._by_url.get(url)


class ReplaySource:
    """Reads captured image responses back from their WARC files."""

    def __init__(self, index: ReplayIndex, open_file: Callable[[str], BinaryIO]) -> None:
        self.index = index
        self._open = open_file
        self._handles: dict[str, BinaryIO] = {}

    def fetch(self, url: str) -> Replayed | None:
        """The captured response for `url`, or None if the archive does not hold it."""
        capture = self.index.get(url)
        if capture is None:
            return None
        try:
            record = read_record_at(self._handle(capture.warc_file), capture.offset,
                                    max_block_bytes=MAX_IMAGE_RECORD_BYTES)
            response = parse_response(record.block, max_body_bytes=MAX_IMAGE_RECORD_BYTES)
        except (WarcFormatError, HttpParseError, OSError) as exc:
            raise ReplayError(f"{capture.warc_file} at offset {capture.offset}: {exc}") from exc
        return Replayed(response.status, response.body, response.mime_type or None, capture)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def _handle(self, warc_file: str) -> BinaryIO:
        if warc_file not in self._handles:
            self._handles[warc_file] = self._open(warc_file)
        return self._handles[warc_file]


class ReplayError(RuntimeError):
    """A capture that the index names but that cannot be read back."""


def index_from_tables(tables: Iterable[pa.Table]) -> ReplayIndex:
    index = ReplayIndex()
    for table in tables:
        index.add_table(table)
    return index
