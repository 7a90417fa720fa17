"""The compiled WARC header parser (`_html_scan.warc_head`) against its Python twin
(`warc.python_parse_headers`): the same headers, block start and length on every record of
the real files and on odd blocks, or None where it leaves the block to Python."""

from __future__ import annotations

import random

import pytest

from laion_assets.pipeline.formats import warc
from laion_assets.pipeline.formats.warc import MAX_HEADER_BYTES, python_parse_headers
from laion_assets_tests.conftest import SHARED_WARCS

QUIRKS = SHARED_WARCS.parent / "warcs-quirks"


def same(data: bytes, pos: int = 0) -> bool:
    """Both parsers agree; False where the compiled one left the block to Python."""
    compiled = warc._warc_head(data, pos, MAX_HEADER_BYTES)
    if compiled is not None:
        assert compiled == python_parse_headers(data, pos), data[pos : pos + 120]
    assert warc._parse_headers(data, pos) == python_parse_headers(data, pos)
    return compiled is not None


def block(*lines: str, tail: bytes = b"\r\n\r\nbody") -> bytes:
    return "\r\n".join(lines).encode("utf-8") + tail


def test_the_compiled_parser_is_bound():
    assert warc._warc_head is not None, "the _html_scan extension is not built"


@pytest.mark.parametrize(
    "data",
    [
        block("WARC/1.0", "WARC-Type: response", "Content-Length: 4"),
        block("WARC/1.1 ", "content-LENGTH:   12  ", "X:y:z", "no colon", ": empty name"),
        block("WARC/0.17", "Content-Length: 0", "Content-Length: 7"),  # the last one wins
        block("WARC/0.18\t", "A:\tb\x0bc\x0c", "Content-Length: 0012"),
        block("WARC/1.0", "Warc-Version: 9", "Content-Length: 1"),
        block("WARC/1.0", "Content-Length: 1", tail=b"\r\r\n\r\n"),  # a CR before the end
        block("WARC/1.0", "A: b\rc", "D: e\nf", "Content-Length: 3"),  # lone CR and LF
    ],
)
def test_plain_blocks_are_read_by_c(data):
    assert same(data)


@pytest.mark.parametrize(
    "data",
    [
        block("WARC/2.0", "Content-Length: 1"),
        block("WARC/1.0x", "Content-Length: 1"),
        block("warc/1.0", "Content-Length: 1"),
        block("WARC/1.0", "Content-Length: +5"),
        block("WARC/1.0", "Content-Length: 1_0"),
        block("WARC/1.0", "Content-Length: -1"),
        block("WARC/1.0", "Content-Length: "),
        block("WARC/1.0", "Content-Length: 1234567890123456789"),
        block("WARC/1.0", "Content-Type: text"),
        block("WARC/1.0", "Content-Length: \u0661\u0662"),  # Arabic-Indic digits: int() reads
        block("WARC/1.0", "Title: caf\u00e9", "Content-Length: 1"),
        block("WARC/1.0", "A: b\x1c", "Content-Length: 1"),  # whitespace to str.strip
        block("WARC/1.0", "Content-Length: 1", tail=b"\r\n"),  # no end of headers
        b"",
    ],
)
def test_other_blocks_are_left_to_python(data):
    assert not same(data)


def test_a_block_inside_a_larger_buffer():
    data = b"junk" + block("WARC/1.0", "Content-Length: 4") + b"WARC/1.0\r\n"
    assert same(data, 4)
    assert warc._warc_head(data, 4, 10) is None  # no end within the limit: Python's error
    assert isinstance(python_parse_headers(data + b"x" * MAX_HEADER_BYTES, 200), str)


def test_every_record_of_the_real_files():
    files = sorted(SHARED_WARCS.glob("*.warc*")) + sorted(QUIRKS.glob("*.warc*"))
    compared = 0
    for path in files:
        with open(path, "rb") as stream:
            for item in warc.iter_warc(stream):
                if isinstance(item, warc.WarcRecord) and "warc-version" in item.headers:
                    head = "\r\n".join(["WARC/" + item.headers["warc-version"]]
                                       + [f"{k}: {v}" for k, v in item.headers.items()
                                          if k != "warc-version"])
                    compared += same(head.encode() + b"\r\n\r\n")
    assert compared > 400


def test_seeded_random_blocks():
    pieces = ["a", "B", "-", ":", " ", "\t", "\r", "\n", "\x0b", "9", "Content-Length",
              "\x1d", "\u00e9", "WARC/1.0"]
    weights = [8, 8, 3, 3, 3, 1, 1, 1, 1, 2, 1, 0.2, 0.2, 0.5]
    rng = random.Random(7)
    compared = 0
    for _ in range(3_000):
        lines = [rng.choice(["WARC/1.0", "WARC/1.1 ", "WARC/0.17", "WARC/1.0\x0c", "WARC/3"])]
        lines += ["".join(rng.choices(pieces, weights, k=rng.randint(0, 9)))
                  for _ in range(rng.randint(0, 5))]
        if rng.random() < 0.9:
            lines.insert(rng.randint(1, len(lines)), f"content-length:{rng.randint(0, 99)} ")
        compared += same(block(*lines))
    assert compared > 1_000


def records(path, cap: int) -> list[tuple]:
    with open(path, "rb") as stream:
        return [(item.offset, item.reason, item.detail) if isinstance(item, warc.WarcSkip)
                else (item.offset, item.headers, item.block, item.block_length, item.stored_length)
                for item in warc.iter_warc(stream, max_block_bytes=cap)]


def test_the_whole_member_path_reads_what_the_general_path_reads(monkeypatch):
    """With the compiled parser, a member holding one plain record skips `_records_in_span`;
    without it every member goes the general way: the same records, capped or not."""
    files = sorted(SHARED_WARCS.glob("*.warc*")) + sorted(QUIRKS.glob("*.*arc*"))
    fast = {(path, cap): records(path, cap) for path in files for cap in (8 << 20, 1000)}
    monkeypatch.setattr(warc, "_warc_head", None)
    assert {(path, cap): records(path, cap) for path in files for cap in (8 << 20, 1000)} == fast
    assert sum(map(len, fast.values())) > 1000
