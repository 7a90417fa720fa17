"""HTTP content codings (`Content-Encoding`), decoded in bounded chunks.

Every codec is fed a slice of input at a time and asked for a bounded amount of output, so
a decompression bomb (a 3 KB brotli body that inflates to gigabytes) stops at the cap after
at most one output chunk past it, with the reason `page_too_large`. Nested codings
(`gzip, br`) are undone last-applied first, each step under the same cap.

Leniency follows warcio: a body that does not decode from its first byte is used as stored
(crawlers that saved the decoded body but kept the header), counted as
`content_encoding_not_applied`; a body whose coding breaks part-way keeps what decoded,
counted as `content_encoding_cut`. Codings this project cannot decode (`compress`,
unknown names; `br` or `zstd` where their package is missing) are
`unsupported_content_encoding`.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterator, MutableMapping

try:  # brotli is optional: without it, br-encoded bodies are unsupported (a named skip)
    import brotli
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None
try:  # as brotli: without zstandard, zstd-encoded bodies are a named skip
    import zstandard
except ImportError:  # pragma: no cover - depends on the environment
    zstandard = None

FEED_BYTES = 16 << 10  # input handed to a codec at a time
OUT_BYTES = 256 << 10  # output asked of a codec at a time
IDENTITY = ("", "identity")
Notes = MutableMapping[str, int]


class CodingError(ValueError):
    """A body that cannot be decoded within the rules; `reason` names why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def codings_of(header: str) -> list[str]:
    """The codings of a `Content-Encoding` value in the order they were applied."""
    names = [name.strip().lower() for name in header.split(",")]
    return [name for name in names if name not in IDENTITY]


def decode_content(body: bytes, header: str, limit: int, notes: Notes | None = None) -> bytes:
    """Undo every coding named by `header` (a `Content-Encoding` value), never holding more
    than `limit` bytes of output; leniencies are counted in `notes` (see the module doc)."""
    for coding in reversed(codings_of(header)):
        body = _decode_one(body, coding, limit, notes)
    return body


def supported(coding: str) -> bool:
    needs = {"br": brotli, "zstd": zstandard}
    return coding in _CHUNKERS and (coding not in needs or needs[coding] is not None)


def _decode_one(body: bytes, coding: str, limit: int, notes: Notes | None) -> bytes:
    if not supported(coding):
        raise CodingError("unsupported_content_encoding", coding)
    parts: list[bytes] = []
    size = 0
    try:
        for piece in _CHUNKERS[coding](body):
            size += len(piece)
            if size > limit:
                raise CodingError(
                    "page_too_large", f"over {limit} bytes after {coding} decoding (stopped there)"
                )
            parts.append(piece)
    except (zlib.error, _BrotliError, _ZstdError):
        note = "content_encoding_cut" if size else "content_encoding_not_applied"
        if notes is not None:
            notes[note] += 1
        if not size:
            return body  # not encoded after all: the stored body is the body
    return b"".join(parts)


def _inflate(body: bytes, wbits: int) -> Iterator[bytes]:
    """zlib/gzip/raw deflate output in chunks of at most OUT_BYTES; gzip members in a row
    are read one after another."""
    view, pos = memoryview(body), 0
    while pos < len(body):
        inflater = zlib.decompressobj(wbits)
        while not inflater.eof and pos < len(body):
            pending: bytes | memoryview = view[pos : pos + FEED_BYTES]
            pos += len(pending)
            while pending:
                yield inflater.decompress(pending, OUT_BYTES)
                pending = inflater.unconsumed_tail
        pos -= len(inflater.unused_data)
        if not inflater.eof or wbits != 47 or view[pos : pos + 2] != b"\x1f\x8b":
            return  # a cut stream keeps what it gave; bytes after the stream are ignored


def _gzip(body: bytes) -> Iterator[bytes]:
    return _inflate(body, 47)  # gzip or zlib header, detected


def _deflate(body: bytes) -> Iterator[bytes]:
    """`deflate` is meant to be zlib-wrapped, but servers send raw deflate too."""
    try:
        first = zlib.decompressobj(15).decompress(body[:FEED_BYTES], 1)
    except zlib.error:
        first = None
    return _inflate(body, 15 if first is not None else -15)


def _brotli(body: bytes) -> Iterator[bytes]:
    decompressor = brotli.Decompressor()
    view, pos = memoryview(body), 0
    while not decompressor.is_finished():
        if decompressor.can_accept_more_data():
            if pos >= len(body):
                return  # a cut stream keeps what it gave
            piece: bytes = view[pos : pos + FEED_BYTES].tobytes()
            pos += len(piece)
        else:
            piece = b""
        yield decompressor.process(piece, output_buffer_limit=OUT_BYTES)


def _zstd(body: bytes) -> Iterator[bytes]:
    """zstd output in chunks of at most OUT_BYTES (a cut stream keeps what it gave)."""
    reader = zstandard.ZstdDecompressor().read_to_iter(
        io.BytesIO(body), read_size=FEED_BYTES, write_size=OUT_BYTES)
    yield from reader


_BrotliError = brotli.error if brotli is not None else zlib.error
_ZstdError = zstandard.ZstdError if zstandard is not None else zlib.error
_CHUNKERS: dict[str, Callable[[bytes], Iterator[bytes]]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
