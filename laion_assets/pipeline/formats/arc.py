"""ARC records (the Internet Archive's format before WARC), read as WARC records.

An ARC file starts with a `filedesc://` record; every record is one header line,
`URL IP-address Archive-date Content-type Archive-length` (version 1; version 2 adds
result code, checksum, location, offset and file name before the length), then
`Archive-length` bytes, then a newline. Records get the WARC headers warcio's `arc2warc`
gives them: `warcinfo` for the `filedesc://` record, `response` for every other one
(`application/http` for http(s) URLs, the ARC content type otherwise, e.g. `dns:`). The
record id is derived from the URL and date: reading a record again gives the same id.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

MAX_ARC_LINE = 8 << 10
ARC_DATE = re.compile(rb"^\d{14}$")


@dataclass(frozen=True, slots=True)
class ArcLine:
    url: str
    ip: str
    date: str  # 14 digits
    content_type: str
    length: int
    line_bytes: int  # the header line with its newline


def arc_line(data: bytes) -> ArcLine | None:
    """The ARC header line at the start of `data`, or None if it is not one."""
    end = data.find(b"\n", 0, MAX_ARC_LINE)
    if end < 0:
        return None
    fields = data[:end].rstrip(b"\r").split(b" ")
    if len(fields) not in (5, 10) or not ARC_DATE.match(fields[2]) or not fields[-1].isdigit():
        return None
    if b":" not in fields[0]:
        return None
    url, ip, date, content_type = (f.decode("latin-1") for f in fields[:4])
    return ArcLine(url, ip, date, content_type, int(fields[-1]), end + 1)


def arc_headers(line: ArcLine) -> dict[str, str]:
    """WARC headers for an ARC record, as `arc2warc` writes them."""
    d = line.date
    headers = {
        "warc-target-uri": line.url,
        "warc-date": f"{d[:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}Z",
        "warc-ip-address": line.ip,
        "warc-record-id": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{d} {line.url}')}>",
        "content-length": str(line.length),
        "arc-header-content-type": line.content_type,
    }
    if line.url.startswith("filedesc:"):
        headers.update({"warc-type": "warcinfo", "content-type": "text/plain"})
    elif line.url.startswith(("http:", "https:")):
        headers.update({"warc-type": "response",
                        "content-type": "application/http; msgtype=response"})
    else:  # dns: and other schemes: a response whose block is not HTTP
        headers.update({"warc-type": "response", "content-type": line.content_type})
    return headers
