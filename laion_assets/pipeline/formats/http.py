"""HTTP responses as captured in WARC `response` records: status, headers, decoded body."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

try:  # brotli is optional: without it, br-encoded bodies are skipped with a reason
    import brotli
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None


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
    """Parse status line and headers: (status, headers, body start)."""
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


def parse_response(block: bytes, *, max_body_bytes: int) -> HttpResponse:
    """Parse a response block and undo chunked transfer and gzip/deflate/br content coding."""
    status, headers, start = parse_response_head(block)
    return HttpResponse(status, headers,
                        decode_body(block[start:], headers, max_body_bytes=max_body_bytes))


def decode_body(raw: bytes, headers: dict[str, str], *, max_body_bytes: int) -> bytes:
    """A body as sent (after `parse_response_head`), with transfer and content coding undone."""
    body = _dechunk(raw) if "chunked" in headers.get("transfer-encoding", "").lower() else raw
    coding = headers.get("content-encoding", "").strip().lower()
    if coding and coding != "identity":
        body = _decode(body, coding, max_body_bytes)
    return body


def _dechunk(body: bytes) -> bytes:
    """Undo chunked transfer coding; bodies that are not really chunked are kept as they are."""
    out, pos = [], 0
    while pos < len(body):
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            return body if not out else b"".join(out)
        size_text = body[pos:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return body if not out else b"".join(out)
        if size == 0:
            break
        out.append(body[line_end + 2 : line_end + 2 + size])
        pos = line_end + 2 + size + 2
    return b"".join(out)


def _decode(body: bytes, coding: str, limit: int) -> bytes:
    try:
        if coding in ("gzip", "x-gzip", "deflate"):
            wbits = 47 if coding != "deflate" else 15
            inflater = zlib.decompressobj(wbits)
            out = inflater.decompress(body, limit + 1)
        elif coding == "br" and brotli is not None:
            out = brotli.decompress(body)
        else:
            raise HttpParseError("unsupported_content_encoding", coding)
    except (zlib.error, getattr(brotli, "error", zlib.error)) as exc:
        raise HttpParseError("bad_content_encoding", f"{coding}: {exc}") from exc
    if len(out) > limit:
        raise HttpParseError("page_too_large", f"over {limit} bytes after {coding} decoding")
    return out
