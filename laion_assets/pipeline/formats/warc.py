"""Streaming WARC reader that survives hostile files.

Common Crawl writes one gzip member per record (WARC 1.1, Annex D), so each member is
decompressed on its own: a corrupt or truncated member costs one record, never the file.
Uncompressed WARCs are read by Content-Length and checked against the record separator.

Each record comes out as a `WarcRecord`; whatever cannot be read comes out as a
`WarcSkip` naming the byte offset and the reason, and reading resumes at the next record.
Offsets are positions in the file as stored (compressed), so a record can be read back
with one seek (`read_record_at`).
"""

from __future__ import annotations

import re
import zlib

try:  # ISA-L inflates about twice as fast as zlib; same API
    from isal import isal_zlib as inflate_lib
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    inflate_lib = zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_VERSION = re.compile(r"^WARC/(0\.17|0\.18|1\.0|1\.1)\s*$")
READ_CHUNK = 1 << 20
FEED_BYTES = 16 << 10  # small slices keep zlib's copy of unused input small
MAX_HEADER_BYTES = 64 << 10
DEFAULT_MAX_BLOCK_BYTES = 8 << 20
MAX_MEMBER_RECORDS = 1 << 16


class WarcFormatError(ValueError):
    """A file that cannot be read as a WARC at all (named, with the offset)."""


@dataclass(slots=True)
class WarcRecord:
    """One WARC record: its headers (lower-cased names) and its block, possibly capped."""

    offset: int
    headers: dict[str, str]
    block: bytes
    block_length: int  # the record's true block length (bytes), even when `block` is capped
    stored_length: int = 0  # bytes the record takes in the file (its gzip member), for ranged reads

    @property
    def rec_type(self) -> str:
        return self.headers.get("warc-type", "").lower()

    @property
    def capped(self) -> bool:
        return self.block_length > len(self.block)


@dataclass(frozen=True, slots=True)
class WarcSkip:
    """A stretch of the file that could not be read as a record, and why."""

    offset: int
    reason: str
    detail: str


def iter_warc(
    stream: BinaryIO, *, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES
) -> Iterator[WarcRecord | WarcSkip]:
    """Yield every record of a WARC stream (gzip per record, or uncompressed) and every skip.

    Blocks longer than `max_block_bytes` are read through without being kept: the record
    comes out with its first `max_block_bytes` bytes and its true `block_length`.
    """
    reader = _Buffer(stream)
    head = reader.peek(READ_CHUNK)
    gzip_at, plain_at = head.find(GZIP_MAGIC), head.find(b"WARC/")
    if gzip_at >= 0 and (plain_at < 0 or gzip_at < plain_at):
        yield from _iter_gzip_members(reader, max_block_bytes)
    else:
        yield from _iter_plain(reader, max_block_bytes)


def read_record_at(stream: BinaryIO, offset: int, *, max_block_bytes: int = 64 << 20) -> WarcRecord:
    """Read the one record that starts at `offset` (as recorded in a pair's provenance)."""
    stream.seek(offset)
    for item in iter_warc(stream, max_block_bytes=max_block_bytes):
        if isinstance(item, WarcSkip):
            raise WarcFormatError(f"offset {offset}: {item.reason}: {item.detail}")
        item.offset = offset
        return item
    raise WarcFormatError(f"offset {offset}: no record there (end of file)")


class _Buffer:
    """A read buffer over a binary stream that tracks absolute offsets and can rewind."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        try:
            self.base = stream.tell()
        except (OSError, AttributeError):
            self.base = 0
        self.data = b""
        self.pos = 0
        self.eof = False

    @property
    def offset(self) -> int:
        return self.base + self.pos

    @property
    def available(self) -> int:
        return len(self.data) - self.pos

    def fill(self, n: int) -> None:
        """Make at least `n` bytes available unless the stream ends first."""
        if self.available >= n or self.eof:
            return
        self.data, self.base, self.pos = self.data[self.pos :], self.offset, 0
        while len(self.data) < n and not self.eof:
            chunk = self.stream.read(max(READ_CHUNK, n - len(self.data)))
            if chunk:
                self.data += chunk
            else:
                self.eof = True

    def peek(self, n: int) -> bytes:
        self.fill(n)
        return self.data[self.pos : self.pos + n]

    def view(self, n: int) -> memoryview:
        self.fill(1)
        return memoryview(self.data)[self.pos : self.pos + n]

    def skip(self, n: int) -> None:
        while n > self.available and not self.eof:
            n -= self.available
            self.pos = len(self.data)
            self.fill(min(n, READ_CHUNK))
        self.pos += min(n, self.available)

    def rewind(self, offset: int) -> None:
        """Go back to an absolute offset (within the buffer, or by seeking the stream)."""
        if offset >= self.base:
            self.pos = offset - self.base
            return
        self.stream.seek(offset)
        self.data, self.base, self.pos, self.eof = b"", offset, 0, False


# -- gzip, one member per record ------------------------------------------------------


def _iter_gzip_members(reader: _Buffer, cap: int) -> Iterator[WarcRecord | WarcSkip]:
    while reader.peek(1):
        offset = reader.offset
        if reader.peek(3) != GZIP_MAGIC:
            yield _resync(reader, GZIP_MAGIC, "garbage_bytes", "bytes between gzip members")
            continue
        try:
            member = _inflate_member(reader, cap)
        except (zlib.error, inflate_lib.error) as exc:
            reader.rewind(offset + 1)
            yield _resync(reader, GZIP_MAGIC, "corrupt_gzip_member", str(exc), offset)
            continue
        if member is None:  # no end: the file is cut here, or this member is corrupt
            reader.rewind(offset + 1)
            skip = _resync(reader, GZIP_MAGIC, "corrupt_gzip_member", "the member never ends",
                           offset)
            if not reader.peek(1):
                yield WarcSkip(offset, "truncated_gzip_member", "file ends inside a gzip member")
                return
            yield skip
            continue
        data, total = member
        yield from _records_in_member(offset, data, total, cap, reader.offset - offset)


def _inflate_member(reader: _Buffer, cap: int) -> tuple[bytes, int] | None:
    """Inflate one gzip member, keeping at most cap + 64 KiB; None if the file ends inside."""
    inflater = inflate_lib.decompressobj(31)
    keep = cap + MAX_HEADER_BYTES
    parts: list[bytes] = []
    kept = total = 0
    while not inflater.eof:
        piece = reader.view(FEED_BYTES)
        if not piece:
            return None
        pending: bytes | memoryview = piece
        while pending and not inflater.eof:
            out = inflater.decompress(pending, READ_CHUNK)
            pending = inflater.unconsumed_tail
            total += len(out)
            if kept < keep:
                parts.append(out[: keep - kept])
                kept += len(parts[-1])
        reader.pos += len(piece) - (len(inflater.unused_data) if inflater.eof else 0)
    return b"".join(parts), total


def _records_in_member(
    offset: int, data: bytes, total: int, cap: int, stored: int
) -> Iterator[WarcRecord | WarcSkip]:
    """Split one member's bytes into records (normally exactly one)."""
    pos = 0
    for _ in range(MAX_MEMBER_RECORDS):
        if pos and total > len(data) and pos + MAX_HEADER_BYTES > len(data):
            yield _oversized_member(offset, total, len(data))
            return
        parsed = _parse_headers(data, pos)
        if isinstance(parsed, str):
            yield WarcSkip(offset, "invalid_warc_header", parsed)
            return
        headers, body_start, length = parsed
        end = body_start + length
        if end > total:
            yield WarcSkip(
                offset,
                "content_length_mismatch",
                f"Content-Length {length} but the gzip member holds {total - body_start} bytes",
            )
            return
        rest = data[end:] if end < len(data) else b""
        stripped = rest.lstrip(b"\r\n")
        if stripped and not stripped.startswith(b"WARC/"):
            yield WarcSkip(
                offset,
                "content_length_mismatch",
                f"Content-Length {length} ends {len(rest)} bytes before the gzip member does",
            )
            return
        block = data[body_start : min(end, body_start + cap)]
        yield WarcRecord(offset, headers, block, length, stored)
        if end > len(data) and total > end + 4:  # more records after bytes that were not kept
            yield _oversized_member(offset, total, len(data))
            return
        if not stripped:
            return  # the member ends with this block (or its tail was not kept: capped)
        pos = end + len(rest) - len(stripped)
    yield WarcSkip(offset, "too_many_records_in_member", f"over {MAX_MEMBER_RECORDS} records")


def _oversized_member(offset: int, total: int, kept: int) -> WarcSkip:
    return WarcSkip(
        offset, "oversized_gzip_member",
        f"one gzip member holds several records and {total} bytes; only {kept} were read "
        "(recompress the file with one gzip member per record)",
    )


# -- uncompressed -----------------------------------------------------------------------


def _iter_plain(reader: _Buffer, cap: int) -> Iterator[WarcRecord | WarcSkip]:
    while reader.peek(1):
        lead = reader.peek(4)
        if lead[:1] in (b"\r", b"\n"):
            reader.skip(len(lead) - len(lead.lstrip(b"\r\n")))
            continue
        offset = reader.offset
        if reader.peek(5) != b"WARC/":
            yield _resync(reader, b"WARC/", "garbage_bytes", "bytes between records")
            continue
        parsed = _parse_headers(reader.peek(MAX_HEADER_BYTES), 0)
        if isinstance(parsed, str):
            reader.skip(1)
            yield _resync(reader, b"WARC/", "invalid_warc_header", parsed, offset)
            continue
        headers, body_start, length = parsed
        reader.skip(body_start)
        block = reader.peek(min(length, cap))
        reader.skip(length)
        if reader.offset < offset + body_start + length:  # also when the block is over the cap
            reader.rewind(offset + 1)
            detail = f"Content-Length {length} runs past the end of the file"
            yield _resync(reader, b"WARC/", "truncated_record", detail, offset)
            continue
        if reader.peek(4) != b"\r\n\r\n" and reader.peek(1):
            reader.rewind(offset + 1)
            detail = f"Content-Length {length} is not followed by the record separator"
            yield _resync(reader, b"WARC/", "content_length_mismatch", detail, offset)
            continue
        reader.skip(4)
        yield WarcRecord(offset, headers, block, length, reader.offset - offset)


# -- shared ----------------------------------------------------------------------------


def _resync(
    reader: _Buffer,
    marker: bytes,
    reason: str,
    detail: str,
    offset: int | None = None,
) -> WarcSkip:
    """Scan forward (in bounded memory) to the next `marker`; describe what was skipped."""
    start = reader.offset if offset is None else offset
    while True:
        reader.fill(READ_CHUNK)
        found = reader.data.find(marker, reader.pos)
        if found >= 0:
            reader.pos = found
            break
        if reader.eof:
            reader.pos = len(reader.data)
            break
        reader.pos = max(reader.pos, len(reader.data) - len(marker) + 1)
    return WarcSkip(start, reason, f"{detail}: skipped {reader.offset - start} bytes")


def _parse_headers(data: bytes, pos: int) -> tuple[dict[str, str], int, int] | str:
    """Parse a WARC header block at `pos`: (headers, block start, Content-Length) or an error."""
    end = data.find(b"\r\n\r\n", pos, pos + MAX_HEADER_BYTES)
    if end < 0:
        return "no end of WARC headers within 64 KiB"
    lines = data[pos:end].decode("utf-8", "replace").split("\r\n")
    if not WARC_VERSION.match(lines[0]):
        return f"not a WARC version line: {lines[0][:40]!r}"
    headers: dict[str, str] = {"warc-version": lines[0][5:].strip()}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers["content-length"])
    except (KeyError, ValueError):
        return f"missing or bad Content-Length: {headers.get('content-length')!r}"
    if length < 0:
        return f"negative Content-Length {length}"
    return headers, end + 4, length
