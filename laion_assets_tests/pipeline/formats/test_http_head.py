"""The compiled HTTP head parser (`_html_scan.http_head`) against its Python twin
(`http.python_parse_response_head`): the same status, headers and body start on every
response of the real files and on odd heads, or None where it leaves the head to Python."""

from __future__ import annotations

import random

import pytest

from laion_assets.pipeline.formats import http, warc
from laion_assets.pipeline.formats.http import HttpParseError, python_parse_response_head
from laion_assets_tests.conftest import SHARED_WARCS

QUIRKS = SHARED_WARCS.parent / "warcs-quirks"


def python_or_error(block: bytes):
    try:
        return python_parse_response_head(block)
    except HttpParseError as exc:
        return exc.reason


def same(block: bytes) -> bool:
    """Both parsers agree; False where the compiled one left the head to Python."""
    compiled = http._http_head(block)
    if compiled is not None:
        assert compiled == python_or_error(block), block[:200]
    return compiled is not None


def test_the_compiled_parser_is_bound():
    assert http._http_head is not None, "the _html_scan extension is not built"


@pytest.mark.parametrize(
    "block",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>",
        b"HTTP/1.0 404\r\n\r\n",
        b"  HTTP/1.1\t301  Moved for good\r\nLocation: /x\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Type: text/html\nX:  a \n\nbody\r\n\r\nmore",  # LF only
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nSET-COOKIE:c\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\nA: b\r\n: empty\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\r\r\nC: d\re\r\n\r\n",  # CRs that are not line ends
        b"HTTP/1.1 200 OK\r\nA: b\r\n\nC: d\r\n\r\n",  # an empty line inside the head
        b"HTTP/1.1 200 OK\r\nA:\x0bb\x0c\r\nB: x\x1c\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r",  # no end: Python raises
        b"HTTP/1.1 200 OK\r\nA: b\r\n\r",
        b"HTTP/1.1 2OO OK\r\n\r\n",
        b"HTTP/1.1 1234567890 Big\r\n\r\n",
        b"HTTPS/1.1 200 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTitle: caf\xe9\r\n\r\n",  # latin-1 in a value: Python
        b"\r\n\r\n",
        b"",
    ],
)
def test_odd_heads(block):
    same(block)


def test_plain_heads_are_read_by_c():
    assert same(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>")
    assert same(b"HTTP/1.1 200 OK\nA: b\n\nbody")
    assert not same(b"HTTP/1.1 200 OK\r\nTitle: caf\xe9\r\n\r\n")
    assert not same(b"HTTP/1.1 2OO OK\r\n\r\n")
    assert http.parse_response_head(b"HTTP/1.1 200 OK\r\nA: 1\r\na: 2\r\n\r\nx") == (
        200, {"a": "1, 2"}, 31)


def test_every_response_of_the_real_files():
    files = sorted(SHARED_WARCS.glob("*.warc*")) + sorted(QUIRKS.glob("*.*arc*"))
    compared = heads = 0
    for path in files:
        with open(path, "rb") as stream:
            for item in warc.iter_warc(stream):
                if isinstance(item, warc.WarcRecord) and item.block.startswith(b"HTTP/"):
                    compared += same(item.block)
                    heads += 1
    assert compared == heads > 190


def test_seeded_random_heads():
    pieces = [b"HTTP/1.1", b" ", b"200", b"OK", b"\r\n", b"\n", b"\r", b":", b"\t", b"a",
              b"Set-Cookie", b"x", b"\xe9", b"\x0b", b"9"]
    weights = [1, 4, 1, 1, 3, 1, 0.5, 2, 0.5, 4, 1, 4, 0.2, 0.2, 1]
    rng = random.Random(5)
    compared = 0
    for _ in range(3_000):
        head = b"HTTP/1.1 200 OK\r\n" * rng.randint(0, 1) + b"".join(
            rng.choices(pieces, weights, k=rng.randint(0, 30)))
        compared += same(head + rng.choice([b"\r\n\r\nbody", b"\n\nbody", b""]))
    assert compared > 1_000
