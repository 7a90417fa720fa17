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
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from laion_assets.pipeline.formats.arc import MAX_ARC_LINE, arc_headers, arc_line

GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_VERSION = re.compile(r"^WARC/(0\.17|0\.18|1\.0|1\.1)\s*$")
READ_CHUNK = 1 << 20
FEED_BYTES = 16 << 10  # small slices keep zlib's copy of unused input small
MAX_HEADER_BYTES = 64 << 10
DEFAULT_MAX_BLOCK_BYTES = 8 << 20
MAX_MEMBER_RECORDS = 1 << 16
SEPARATOR_SLACK = 4  # bytes a Content-Length may miscount by (the separator's own length)
TAIL_BYTES = 4096  # bytes after a block looked at to find the next record


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


# -- gzip, one member per record (or not) ---------------------------------------------


@dataclass(slots=True)
class _Span:
    """Inflated bytes from one member, or from several when a record runs on into the next
    members: `data` is a prefix (at most cap + 64 KiB) of `total` bytes; `starts` maps a
    position in them to the stored offset of the member that begins there."""

    data: bytes
    total: int
    starts: list[tuple[int, int]]
    end: int  # stored offset where the last member ends

    def offset_at(self, pos: int) -> int:
        if len(self.starts) == 1:  # one member, the usual case
            return self.starts[0][1]
        return next(offset for start, offset in reversed(self.starts) if start <= pos)

    def extend(self, data: bytes, total: int, offset: int, end: int, keep: int) -> None:
        if len(self.data) == self.total:
            self.data += data[: max(0, keep - len(self.data))]
        self.starts.append((self.total, offset))
        self.total += total
        self.end = end

    def tail(self, pos: int) -> _Span:
        """The span from `pos` on (a record that may continue in the next member)."""
        starts = [(0, self.offset_at(pos))] + [(s - pos, o) for s, o in self.starts if s > pos]
        return _Span(self.data[pos:], self.total - pos, starts, self.end)


def _iter_gzip_members(reader: _Buffer, cap: int) -> Iterator[WarcRecord | WarcSkip]:
    pending: _Span | None = None  # a record whose block may go on in the next member
    while True:
        if len(reader.data) - reader.pos < 3:
            reader.fill(3)
            if reader.pos >= len(reader.data):
                break
        offset = reader.offset
        if not reader.data.startswith(GZIP_MAGIC, reader.pos):
            yield from _flush(pending, cap)
            pending = None
            yield _resync(reader, GZIP_MAGIC, "garbage_bytes", "bytes between gzip members")
            continue
        try:
            member = _inflate_member(reader, cap)
        except (zlib.error, inflate_lib.error) as exc:
            yield from _flush(pending, cap)
            pending = None
            reader.rewind(offset + 1)
            yield _resync(reader, GZIP_MAGIC, "corrupt_gzip_member", str(exc), offset)
            continue
        if member is None:  # no end: the file is cut here, or this member is corrupt
            yield from _flush(pending, cap)
            pending = None
            reader.rewind(offset + 1)
            skip = _resync(reader, GZIP_MAGIC, "corrupt_gzip_member", "the member never ends",
                           offset)
            if not reader.peek(1):
                yield from _truncated_member(reader, offset, cap)
                return
            yield skip
            continue
        data, total = member
        if pending is None:
            record = _whole_record(data, total, offset, reader.offset - offset, cap)
            if record is not None:
                yield record
                continue
        if pending is not None and not _starts_record(data.lstrip(b"\r\n")):
            pending.extend(data, total, offset, reader.offset, cap + MAX_HEADER_BYTES)
            span = pending
        else:
            yield from _flush(pending, cap)
            span = _Span(data, total, [(0, offset)], reader.offset)
        pending = yield from _records_in_span(span, cap)
    yield from _flush(pending, cap)


def _whole_record(data: bytes, total: int, offset: int, stored: int,
                  cap: int) -> WarcRecord | None:
    """The usual member, read without the general path: one WARC record with a plain head
    and its separator, nothing else (None: let `_records_in_span` read it)."""
    if _warc_head is None or total != len(data) or not data.startswith(b"WARC/"):
        return None
    parsed = _warc_head(data, 0, MAX_HEADER_BYTES)
    if parsed is None:
        return None
    headers, body_start, length = parsed
    end = body_start + length
    if end + 4 != total or length > cap or not data.endswith(b"\r\n\r\n"):
        return None
    return WarcRecord(offset, headers, data[body_start:end], length, stored)


def _truncated_member(reader: _Buffer, offset: int, cap: int) -> Iterator[WarcRecord | WarcSkip]:
    """The file ends inside a gzip member: its record, cut short, if its head is whole."""
    reader.rewind(offset)
    data = _inflate_cut(reader, cap)
    parsed = _parse_head(data, 0)
    if isinstance(parsed, str):
        yield WarcSkip(offset, "truncated_gzip_member", "file ends inside a gzip member")
        return
    headers, body_start, length = parsed
    block = data[body_start : body_start + cap]
    yield _cut_record(offset, headers, block, len(data) - body_start, reader.offset - offset)


def _cut_record(
    offset: int, headers: dict[str, str], block: bytes, block_length: int, stored: int
) -> WarcRecord:
    """A record whose block the file cuts short: read as far as it goes (as warcio does)."""
    headers.setdefault("warc-truncated", "end-of-file")
    return WarcRecord(offset, headers, block, block_length, stored)


def _inflate_cut(reader: _Buffer, cap: int) -> bytes:
    """Inflate a member that the file cuts short, as far as it goes (at most cap + 64 KiB)."""
    inflater = inflate_lib.decompressobj(31)
    parts, kept, keep = [], 0, cap + MAX_HEADER_BYTES
    try:
        while piece := reader.view(FEED_BYTES):
            reader.pos += len(piece)
            out = inflater.decompress(piece, keep - kept)
            parts.append(out)
            kept += len(out)
            if kept >= keep:
                break
    except (zlib.error, inflate_lib.error):
        pass
    reader.pos = len(reader.data)
    return b"".join(parts)


def _inflate_member(reader: _Buffer, cap: int) -> tuple[bytes, int] | None:
    """Inflate one gzip member, keeping at most cap + 64 KiB; None if the file ends inside.
    The hot loop of reading: the buffer is sliced directly, one FEED_BYTES piece at a time."""
    inflater = inflate_lib.decompressobj(31)
    decompress = inflater.decompress
    keep = cap + MAX_HEADER_BYTES
    parts: list[bytes] = []
    kept = total = 0
    while True:
        if reader.pos >= len(reader.data):
            reader.fill(1)
            if reader.pos >= len(reader.data):
                return None
        pos = reader.pos
        piece = memoryview(reader.data)[pos : pos + FEED_BYTES]
        out = decompress(piece, READ_CHUNK)
        while True:
            total += len(out)
            if kept < keep:
                if kept + len(out) > keep:
                    out = out[: keep - kept]
                parts.append(out)
                kept += len(out)
            if inflater.eof:
                reader.pos = pos + len(piece) - len(inflater.unused_data)
                return (parts[0] if len(parts) == 1 else b"".join(parts)), total
            tail = inflater.unconsumed_tail
            if not tail:
                break
            out = decompress(tail, READ_CHUNK)
        reader.pos = pos + len(piece)


def _records_in_span(span: _Span, cap: int) -> Generator[WarcRecord | WarcSkip, None,
                                                           _Span | None]:
    """Split inflated bytes into records (normally exactly one); returns the last record's
    span when its block goes on past these bytes (it may continue in the next member)."""
    data, total, pos = span.data, span.total, 0
    for _ in range(MAX_MEMBER_RECORDS):
        lead = data[pos : pos + 64]
        pos += len(lead) - len(lead.lstrip(b"\r\n"))  # a separator the last member left
        if pos >= total:
            return None
        offset = span.offset_at(pos)
        stored = span.end - offset
        if pos and total > len(data) and pos + MAX_HEADER_BYTES > len(data):
            yield _oversized_member(offset, total, len(data))
            return None
        parsed = _parse_head(data, pos)
        if isinstance(parsed, str):
            yield WarcSkip(offset, "invalid_warc_header", parsed)
            return None
        headers, body_start, length = parsed
        end = body_start + length
        if end > total:
            return span.tail(pos)
        capped = end + TAIL_BYTES > len(data) < total  # what follows the block was not kept
        after = None if capped else _after_block(data[end : end + TAIL_BYTES],
                                                 end + TAIL_BYTES >= total)
        if after is None and not capped:
            yield WarcSkip(
                offset,
                "content_length_mismatch",
                f"Content-Length {length} ends {total - end} bytes before the gzip member does",
            )
            return None
        missed, gap = after or (0, 0)
        block = data[body_start : min(end + missed, body_start + cap)]
        yield WarcRecord(offset, headers, block, length + missed, stored)
        if capped:
            if total > end + 4:  # more records after bytes that were not kept
                yield _oversized_member(offset, total, len(data))
            return None
        pos = end + gap
    yield WarcSkip(span.offset_at(pos), "too_many_records_in_member",
                   f"over {MAX_MEMBER_RECORDS} records")
    return None


def _flush(pending: _Span | None, cap: int) -> Iterator[WarcRecord | WarcSkip]:
    """A record whose block ran past its member and did not go on in the next one: read if
    at most the separator's length is missing (Content-Length counted it), else a skip."""
    if pending is None:
        return
    offset = pending.offset_at(0)
    headers, body_start, length = _parse_head(pending.data, 0)  # parsed before: no error
    missing = body_start + length - pending.total
    if missing <= SEPARATOR_SLACK:
        block = pending.data[body_start : body_start + cap]
        yield WarcRecord(offset, headers, block, pending.total - body_start,
                         pending.end - offset)
        return
    yield WarcSkip(
        offset,
        "content_length_mismatch",
        f"Content-Length {length} but the gzip member holds {pending.total - body_start} bytes",
    )


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
        head = reader.peek(MAX_HEADER_BYTES)
        if not _starts_record(head):
            yield _resync(reader, b"WARC/", "garbage_bytes", "bytes between records")
            continue
        parsed = _parse_head(head, 0)
        if isinstance(parsed, str):
            reader.skip(1)
            yield _resync(reader, b"WARC/", "invalid_warc_header", parsed, offset)
            continue
        headers, body_start, length = parsed
        reader.skip(body_start)
        block = reader.peek(min(length, cap))
        reader.skip(length)
        if reader.offset < offset + body_start + length:  # the file ends inside the block
            if b"\r\n\r\nWARC/" not in block:  # cut short: read as far as it goes
                available = reader.offset - offset - body_start
                yield _cut_record(offset, headers, block, available, reader.offset - offset)
                return
            reader.rewind(offset + 1)  # a lying length swallowed the records after it
            detail = f"Content-Length {length} runs past the end of the file"
            yield _resync(reader, b"WARC/", "truncated_record", detail, offset)
            continue
        after = _after_block(reader.peek(TAIL_BYTES), reader.available < TAIL_BYTES)
        if after is None:
            reader.rewind(offset + 1)
            detail = f"Content-Length {length} is not followed by the record separator"
            yield _resync(reader, b"WARC/", "content_length_mismatch", detail, offset)
            continue
        missed, gap = after
        if missed and len(block) < cap:
            block += reader.peek(missed)[: cap - len(block)]
        reader.skip(gap)
        yield WarcRecord(offset, headers, block, length + missed, reader.offset - offset)


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


def _starts_record(data: bytes) -> bool:
    """Do these bytes begin a WARC record or an ARC record?"""
    return data.startswith(b"WARC/") or arc_line(data) is not None


def _after_block(tail: bytes, at_end: bool) -> tuple[int, int] | None:
    """Read the bytes after a block as Content-Length ends it: (block bytes the length left
    out, bytes to the next record), or None when no record follows.

    As warcio, a record separator may be shortened, missing, or longer, and up to
    SEPARATOR_SLACK bytes before it may belong to the block (writers that miscount)."""
    stripped = tail.lstrip(b"\r\n")
    if tail.startswith(b"\r\n\r\n") or (at_end and not stripped) or _starts_record(stripped):
        return 0, len(tail) - len(stripped)
    missed = next((i for i, byte in enumerate(tail[: SEPARATOR_SLACK + 1]) if byte in b"\r\n"),
                  0)
    if missed:
        rest = tail[missed:]
        stripped = rest.lstrip(b"\r\n")
        if len(rest) > len(stripped) and ((at_end and not stripped) or _starts_record(stripped)):
            return missed, len(tail) - len(stripped)
    return None


def _parse_head(data: bytes, pos: int) -> tuple[dict[str, str], int, int] | str:
    """Parse a WARC header block, or an ARC header line, at `pos`:
    (headers, block start, block length) or an error."""
    if data.startswith(b"WARC/", pos):
        return _parse_headers(data, pos)
    line = arc_line(data[pos : pos + MAX_ARC_LINE])
    if line is not None:
        return arc_headers(line), pos + line.line_bytes, line.length
    return _parse_headers(data, pos)


def _parse_headers(data: bytes, pos: int) -> tuple[dict[str, str], int, int] | str:
    """Parse a WARC header block at `pos`: (headers, block start, Content-Length) or an error.
    The compiled twin (`_html_scan.warc_head`) reads plain ASCII blocks; Python the rest."""
    if _warc_head is not None:
        parsed = _warc_head(data, pos, MAX_HEADER_BYTES)
        if parsed is not None:
            return parsed
    return python_parse_headers(data, pos)


def python_parse_headers(data: bytes, pos: int) -> tuple[dict[str, str], int, int] | str:
    """`_parse_headers` in Python (every block; the compiled twin must give the same)."""
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


try:  # the header parser in C (`_html_scan.c`, built on install); Python without it
    from laion_assets.pipeline.formats._html_scan import warc_head as _warc_head
except ImportError:  # pragma: no cover - a machine without a C compiler
    _warc_head = None
