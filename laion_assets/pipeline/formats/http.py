"""HTTP responses as captured in WARC `response` records: status, headers, decoded body."""

from __future__ import annotations

from dataclasses import dataclass

from laion_assets.pipeline.formats.codecs import CodingError, Notes, decode_content


class HttpParseError(ValueError):
    """The block is not an HTTP response this project can read; the message is the reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes

    @property
    def mime_type(self) -> str:
        return mime_type_of(self.headers)

    @property
    def charset(self) -> str | None:
        return charset_of(self.headers)


def mime_type_of(headers: dict[str, str]) -> str:
    """The media type of Content-Type, lower-cased, without parameters."""
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def charset_of(headers: dict[str, str]) -> str | None:
    """The charset parameter of Content-Type, if any."""
    for param in headers.get("content-type", "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip(" \"'"):
            return value.strip(" \"'")
    return None


def parse_response_head(block: bytes) -> tuple[int, dict[str, str], int]:
    """Parse status line and headers: (status, headers, body start). The compiled twin
    (`_html_scan.http_head`) reads plain ASCII heads; Python the rest, and raises."""
    if _http_head is not None:
        parsed = _http_head(block)
        if parsed is not None:
            return parsed
    return python_parse_response_head(block)


def python_parse_response_head(block: bytes) -> tuple[int, dict[str, str], int]:
    """`parse_response_head` in Python (every head; the compiled twin must give the same)."""
    end = block.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = block.find(b"\n\n"), 2
    if end < 0:
        raise HttpParseError("invalid_http", "no end of HTTP headers")
    lines = block[:end].replace(b"\r\n", b"\n").split(b"\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise HttpParseError("invalid_http", f"bad status line {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            key = name.strip().decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return int(parts[1]), headers, end + sep


def parse_response(
    block: bytes, *, max_body_bytes: int, notes: Notes | None = None
) -> HttpResponse:
    """Parse a response block and undo chunked transfer and content coding (`decode_body`)."""
    status, headers, start = parse_response_head(block)
    body = decode_body(block[start:], headers, max_body_bytes=max_body_bytes, notes=notes)
    return HttpResponse(status, headers, body)


def decode_body(
    raw: bytes, headers: dict[str, str], *, max_body_bytes: int, notes: Notes | None = None
) -> bytes:
    """A body as sent (after `parse_response_head`), with transfer and content coding undone.

    Leniencies (warcio's) are counted in `notes`: `chunked_framing_not_applied` when the
    chunked framing breaks (the rest is kept as stored), and those of `codecs.decode_content`.
    Raises `HttpParseError` with the codec's reason when the body cannot be decoded.
    """
    body = raw
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, intact = dechunk(raw)
        if not intact and notes is not None:
            notes["chunked_framing_not_applied"] += 1
    try:
        return decode_content(body, headers.get("content-encoding", ""), max_body_bytes, notes)
    except CodingError as exc:
        raise HttpParseError(exc.reason, exc.detail) from exc


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """Undo chunked transfer coding as warcio does: (body, whether the framing held).

    From the first chunk whose size line or terminator is wrong, the rest is kept as stored;
    a body cut inside a chunk keeps what is there."""
    out, pos = [], 0
    while pos < len(body):
        line_end = body.find(b"\r\n", pos, pos + 64)
        try:
            size = int(body[pos:line_end].split(b";", 1)[0], 16) if line_end >= 0 else -1
        except ValueError:
            size = -1
        if size < 0:
            break
        data_end = line_end + 2 + size
        if size == 0:
            return b"".join(out), True
        if data_end >= len(body):  # cut off inside the chunk
            out.append(body[line_end + 2 :])
            return b"".join(out), True
        if body[data_end : data_end + 2] != b"\r\n":
            break
        out.append(body[line_end + 2 : data_end])
        pos = data_end + 2
    else:
        return b"".join(out), True
    out.append(body[pos:])
    return b"".join(out), False


try:  # the head parser in C (`_html_scan.c`, built on install); Python without it
    from laion_assets.pipeline.formats._html_scan import http_head as _http_head
except ImportError:  # pragma: no cover - a machine without a C compiler
    _http_head = None
