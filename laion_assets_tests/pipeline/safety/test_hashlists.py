import hashlib
import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from laion_assets.pipeline.download.images import (
    pdq_bits,
    pdq_bits_to_hex,
    pdq_distance,
    pdq_hex_to_bits,
)
from laion_assets.pipeline.safety import hashlists
from laion_assets.pipeline.safety.hashlists import (
    ExactHashList,
    HashListError,
    PdqIndex,
    hexes_to_digests,
    load_exact,
    load_pdq,
    pdq_quality_ok,
    read_hex_lines,
)

MD5 = [hashlib.md5(str(i).encode()).hexdigest() for i in range(6)]


def _rows(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


def _parsed(lines, digits: int = 32, source: str = "list.txt") -> list[bytes]:
    return [row.tobytes() for row in read_hex_lines(lines, source=source, digits=digits)]


def _error(lines, digits: int = 32, source: str = "lists/md5/ncmec.txt", what="md5") -> str:
    with pytest.raises(HashListError) as caught:
        read_hex_lines(lines, source=source, digits=digits, what=what)
    return str(caught.value)


# -- parsing ------------------------------------------------------------------------------


def test_plain_lines_comments_blanks_case_and_whitespace():
    text = (
        f"# NCMEC md5 list, exported 2026-11-20\n"
        f"{MD5[0]}\n"
        f"\n"
        f"   \t \n"
        f"{MD5[1].upper()}\n"
        f"  {MD5[2]}  \n"
        f"\t# indented comment\n"
        f"{MD5[3]}\r\n"
        f"{MD5[4]}"  # no newline at the end
    )
    assert _parsed(text) == _rows(MD5[:5])
    assert _parsed(text.encode()) == _rows(MD5[:5])


def test_first_field_of_csv_tsv_and_md5sum_lines():
    text = (
        f"{MD5[0]},label one,extra\n"
        f"{MD5[1]}\tanything at all\n"
        f"{MD5[2]}  ./images/cat.jpg\n"
        f"{MD5[3]} # trailing comment\n"
    )
    assert _parsed(text) == _rows(MD5[:4])


def test_every_input_shape_gives_the_same_hashes():
    text = f"# header\n{MD5[0]}\n\n{MD5[1]},x\n{MD5[2]}\n"
    expected = _rows(MD5[:3])
    assert _parsed(text) == expected  # str
    assert _parsed(text.encode()) == expected  # bytes
    assert _parsed(text.encode().splitlines()) == expected  # bytes lines, no newlines
    assert _parsed(text.splitlines(keepends=True)) == expected  # str lines with newlines
    assert _parsed(io.BytesIO(text.encode())) == expected  # binary file
    assert _parsed(io.StringIO(text)) == expected  # text file
    assert _parsed(iter(io.BytesIO(text.encode()))) == expected  # file iterator
    assert _parsed([f"{MD5[0]}\n{MD5[1]}", MD5[2]]) == expected  # an item of two lines
    assert _parsed(["\ufeff" + MD5[0], MD5[1]]) == _rows(MD5[:2])  # UTF-8 BOM


def test_empty_lists():
    for lines in ("", b"", [], "# only a comment\n\n", io.BytesIO(b"")):
        parsed = read_hex_lines(lines, source="empty.txt", digits=64)
        assert parsed.shape == (0, 32) and parsed.dtype == np.uint8


def test_error_names_source_line_and_reason():
    lines = [MD5[0]] * 16 + ["xyz"]
    assert _error(lines) == "lists/md5/ncmec.txt:17: 'xyz' is not a 32-digit hex md5"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (MD5[0][:31], MD5[0][:31]),  # too short
        (MD5[0] + "a", MD5[0] + "a"),  # too long
        ("g" + MD5[0][1:], "g" + MD5[0][1:]),  # not hex
        (MD5[0][:16] + " " + MD5[0][16:], MD5[0][:16]),  # split by a space
        (MD5[0][:30] + "é", MD5[0][:30] + "é"),  # not ASCII
        (",label", ",label"),  # empty first field
        ("0x" + MD5[0][2:], "0x" + MD5[0][2:]),
        (hashlib.sha256(b"").hexdigest(), hashlib.sha256(b"").hexdigest()),  # wrong kind
    ],
)
def test_each_bad_line_is_reported_with_its_line(line, shown):
    message = _error(f"# comment\n{MD5[0]}\n\n{line}\n{MD5[1]}\n")
    assert message == f"lists/md5/ncmec.txt:4: {shown!r} is not a 32-digit hex md5"


def test_bad_last_line_without_newline_and_long_lines_are_shortened():
    assert _error(f"{MD5[0]}\n{MD5[1][:5]}").startswith("lists/md5/ncmec.txt:2: '")
    message = _error([MD5[0], "f" * 500])
    assert message == f"lists/md5/ncmec.txt:2: {'f' * 80 + '...'!r} is not a 32-digit hex md5"


def test_blocks_and_batches_keep_hashes_and_line_numbers(monkeypatch):
    rng = np.random.default_rng(1)
    hexes = [rng.bytes(16).hex() for _ in range(3000)]
    lines = []
    for i, h in enumerate(hexes):
        lines += [h] if i % 7 else [f"  {h},label", "", "# comment"]
    text = "\n".join(lines) + "\n"
    monkeypatch.setattr(hashlists, "_BLOCK_BYTES", 1000)
    monkeypatch.setattr(hashlists, "_BATCH_LINES", 17)
    expected = _rows(hexes)
    assert _parsed(text) == expected
    assert _parsed(io.BytesIO(text.encode())) == expected
    assert _parsed(text.splitlines()) == expected
    bad = len(lines) - 5
    lines[bad - 1] = "nothex"
    for shape in ("\n".join(lines), lines, io.StringIO("\n".join(lines))):
        assert _error(shape, what="md5").startswith(f"lists/md5/ncmec.txt:{bad}: 'nothex'")


def test_many_leading_spaces():
    assert _parsed([" " * 50 + MD5[0], "\t" * 9 + MD5[1]]) == _rows(MD5[:2])


def test_digits_must_be_even():
    with pytest.raises(ValueError):
        read_hex_lines([], source="x", digits=31)


# -- exact lists --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["md5", "sha1", "sha256"])
def test_exact_list_of_each_kind(kind):
    digest = getattr(hashlib, kind)
    members = [digest(f"listed {i}".encode()).hexdigest() for i in range(200)]
    others = [digest(f"other {i}".encode()).hexdigest() for i in range(200)]
    # Non-members sharing a listed digest's first 8 bytes: only the rest tells them apart.
    twins = [m[:16] + ("0" if m[16] != "0" else "1") + m[17:] for m in members[:50]]
    twins += [m[:-1] + ("0" if m[-1] != "0" else "1") for m in members[:50]]
    listed = load_exact(kind, [("a.txt", members[:120]), ("b.txt", members[100:] + members[:10])])
    assert len(listed) == 200  # duplicates across and within sources kept once
    assert listed.sources == (("a.txt", 120), ("b.txt", 110))
    assert listed.matches(members).all()
    assert listed.matches([m.upper() for m in members]).all()
    assert not listed.matches(others).any()
    assert not listed.matches(twins).any()
    assert listed.contains(members[7]) and members[7] in listed
    assert not listed.contains(twins[7])
    assert listed.nbytes >= 200 * len(members[0]) // 2


def test_exact_list_with_shared_prefixes_and_duplicates():
    rng = np.random.default_rng(2)
    prefix = rng.bytes(8)
    same_prefix = [prefix + rng.bytes(24) for _ in range(40)]
    entries = same_prefix[:30] + [rng.bytes(32) for _ in range(500)]
    entries = entries + entries[::3]  # duplicates
    order = rng.permutation(len(entries))
    listed = ExactHashList("sha256", np.frombuffer(b"".join(entries[i] for i in order), np.uint8))
    assert len(listed) == 530
    assert listed.matches([e.hex() for e in entries]).all()
    assert not listed.matches([e.hex() for e in same_prefix[30:]]).any()


def test_exact_list_against_python_set():
    rng = np.random.default_rng(3)
    digests = rng.integers(0, 256, (20_000, 16), dtype=np.uint8)
    listed = ExactHashList("md5", digests)
    reference = {row.tobytes() for row in digests}
    queries = np.concatenate(
        [digests[rng.integers(0, 20_000, 5000)], rng.integers(0, 256, (5000, 16), dtype=np.uint8)]
    )
    expected = np.array([row.tobytes() in reference for row in queries])
    assert expected.sum() == 5000
    assert (listed.matches([row.tobytes().hex() for row in queries]) == expected).all()
    assert (listed.matches_digests(queries) == expected).all()


def test_exact_queries_none_empty_and_malformed():
    listed = load_exact("md5", [("x.txt", MD5[:3])])
    assert listed.matches([None, "", MD5[0], MD5[4], None]).tolist() == [
        False,
        False,
        True,
        False,
        False,
    ]
    assert listed.matches([]).shape == (0,)
    for bad in (MD5[0][:-1], "z" * 32, MD5[0][:10] + " " + MD5[0][11:]):
        with pytest.raises(ValueError, match="32-digit"):
            listed.matches([MD5[0], bad])
    with pytest.raises(ValueError):
        listed.matches([MD5[0][:31], MD5[1] + "a"])  # lengths that add up still fail


def test_empty_exact_list_and_unknown_kind():
    empty = load_exact("sha1", [("empty.txt", b"# nothing yet\n")])
    assert len(empty) == 0
    assert not empty.matches([hashlib.sha1(b"").hexdigest(), None]).any()
    assert load_exact("md5", []).matches([MD5[0]]).tolist() == [False]
    with pytest.raises(ValueError, match="unknown hash kind"):
        load_exact("crc32", [])


def test_load_exact_error_names_the_file():
    with pytest.raises(HashListError, match=r"^b\.txt:2: 'oops' is not a 40-digit hex sha1$"):
        load_exact("sha1", [("a.txt", [hashlib.sha1().hexdigest()]), ("b.txt", ["# c", "oops"])])


# -- PDQ ----------------------------------------------------------------------------------


def _random_pdq(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 32), dtype=np.uint8)


def _flip(row: np.ndarray, bits) -> np.ndarray:
    flipped = np.unpackbits(row)
    flipped[list(bits)] ^= 1
    return np.packbits(flipped)


def _reference(listed: np.ndarray, queries: np.ndarray, max_distance: int):
    """Nearest within max_distance by counting differing bits: lowest index among ties."""
    bits = np.unpackbits(listed, axis=1)
    index, distance = [], []
    for query in queries:
        found = (bits != np.unpackbits(query)).sum(axis=1)
        best = int(np.argmin(found)) if len(found) else -1
        ok = best >= 0 and found[best] <= max_distance
        index.append(best if ok else -1)
        distance.append(int(found[best]) if ok else -1)
    return index, distance


def _hexes(rows: np.ndarray) -> list[str]:
    return [row.tobytes().hex() for row in rows]


def test_pdq_planted_near_duplicates_found_exactly_within_31():
    rng = np.random.default_rng(4)
    listed = _random_pdq(rng, 20_000)
    index = PdqIndex(listed)
    targets = rng.choice(20_000, 7 * 20, replace=False).reshape(7, 20)
    queries, expected = [], []
    for distance, rows in zip((0, 1, 15, 30, 31, 32, 33), targets, strict=True):
        for row in rows:
            queries.append(_flip(listed[row], rng.choice(256, distance, replace=False)))
            expected.append((int(row), distance) if distance <= 31 else (-1, -1))
    for bits in (
        [c * 16 + j for c in range(15) for j in (0, 9)] + [255],  # 31: 2 bits in 15 chunks, 1
        [c * 16 + j for c in range(16) for j in (3, 12)],  # 32: 2 bits in every chunk
        [c * 16 + j for c in range(15) for j in (0, 5)] + [240],  # 31, the 1-bit chunk last
        list(range(31)),  # 31 in the first two chunks
    ):
        queries.append(_flip(listed[123], bits))
        expected.append((123, 31) if len(bits) <= 31 else (-1, -1))
    queries = np.array(queries)
    found_index, found_distance = index.query_many(_hexes(queries), 31)
    assert list(zip(found_index.tolist(), found_distance.tolist(), strict=True)) == expected
    assert _reference(listed, queries, 31) == (found_index.tolist(), found_distance.tolist())
    brute = index.brute_force(_hexes(queries), 31)
    assert brute[0].tolist() == found_index.tolist()
    assert brute[1].tolist() == found_distance.tolist()
    wider = index.query_many(_hexes(queries), 33)
    assert (wider[0] >= 0).all()  # the 32s and 33s are found with a larger threshold


def test_pdq_agrees_with_brute_force_for_every_threshold():
    rng = np.random.default_rng(5)
    listed = _random_pdq(rng, 3000)
    index = PdqIndex(listed)
    queries = [
        _flip(listed[rng.integers(3000)], rng.choice(256, d, replace=False)) for d in range(0, 70)
    ]
    queries = np.array(queries + list(_random_pdq(rng, 20)))
    for max_distance in (0, 1, 5, 15, 16, 17, 20, 31, 32, 40, 47, 48, 64):
        got = index.query_many(_hexes(queries), max_distance)
        assert (got[0].tolist(), got[1].tolist()) == _reference(listed, queries, max_distance)
        assert (got[0] >= 0).sum() == min(max_distance, 69) + 1


def test_pdq_query_checks_only_the_chunks_it_must():
    # max_distance 20 = 16 * 1 + 4: chunks 0-4 probed with one flip, 5-15 exactly.
    rng = np.random.default_rng(6)
    listed = _random_pdq(rng, 500)
    index = PdqIndex(listed)
    bits = [c * 16 + j for c in range(4) for j in (1, 2)] + [c * 16 + 7 for c in range(4, 16)]
    query = _flip(listed[42], bits)  # 20 bits: 2 in chunks 0-3, 1 in chunks 4-15
    assert index.query(query.tobytes().hex(), 20) == (42, 20)
    assert index.query(query.tobytes().hex(), 19) is None
    chunks, flips = hashlists._probe_plan(20)
    assert len(flips) == 5 * 17 + 11


def test_pdq_nearest_and_ties():
    rng = np.random.default_rng(7)
    base = _random_pdq(rng, 1)[0]
    listed = np.array(
        [
            _random_pdq(rng, 1)[0],
            _flip(base, range(10)),  # 10 away
            _flip(base, range(100, 103)),  # 3 away
            _flip(base, range(200, 203)),  # 3 away, later: loses the tie
            _flip(base, range(0, 250, 10)),
        ]
    )
    index = PdqIndex(listed)
    assert index.query(base.tobytes().hex()) == (2, 3)
    assert index.hex_at(2) == listed[2].tobytes().hex()
    assert pdq_distance(index.hex_at(2), base.tobytes().hex()) == 3


def test_pdq_duplicates_sources_none_and_quality():
    rng = np.random.default_rng(8)
    rows = _random_pdq(rng, 4)
    a = [h.upper() for h in _hexes(rows[:3])]
    b = ["# second list", _hexes(rows[1:2])[0] + ",dup", _hexes(rows[3:])[0]]
    index = load_pdq([("a.txt", a), ("b.txt", b)])
    assert len(index) == 4 and index.sources == (("a.txt", 3), ("b.txt", 2))
    assert index.source_of(1) == "a.txt" and index.source_of(3) == "b.txt"
    assert index.nbytes > 4 * 32
    queries = [None, _hexes(rows[3:])[0], "", _hexes(rows[:1])[0]]
    found, distance = index.query_many(queries)
    assert found.tolist() == [-1, 3, -1, 0] and distance.tolist() == [-1, 0, -1, 0]
    found, _ = index.query_many(queries, qualities=[None, 49, 100, 50])
    assert found.tolist() == [-1, -1, -1, 0]
    assert pdq_quality_ok([None, 0, 49, 50, 100]).tolist() == [False, False, False, True, True]
    with pytest.raises(HashListError, match=r"^p\.txt:1: 'abc' is not a 64-digit hex PDQ hash$"):
        load_pdq([("p.txt", ["abc"])])


def test_pdq_empty_index_and_empty_queries():
    empty = load_pdq([("none.txt", b"")])
    assert len(empty) == 0
    rng = np.random.default_rng(9)
    found, distance = empty.query_many([_hexes(_random_pdq(rng, 1))[0], None], 64)
    assert found.tolist() == [-1, -1] and distance.tolist() == [-1, -1]
    found, distance = empty.query_many([_hexes(_random_pdq(rng, 1))[0]], 100)  # brute force
    assert found.tolist() == [-1]
    index = PdqIndex(_random_pdq(rng, 10))
    found, distance = index.query_many([])
    assert found.shape == distance.shape == (0,)
    assert found.dtype == np.int64 and distance.dtype == np.int32


def test_pdq_batches_split_by_candidates(monkeypatch):
    rng = np.random.default_rng(10)
    listed = _random_pdq(rng, 5000)
    listed[:2000, :2] = 7  # a crowded bucket in chunk 0
    index = PdqIndex(listed)
    queries = np.array(
        [_flip(listed[i], rng.choice(256, 25, replace=False)) for i in range(0, 5000, 50)]
    )
    expected = index.query_many(_hexes(queries))
    monkeypatch.setattr(hashlists, "_CANDIDATES_PER_BATCH", 500)
    got = index.query_many(_hexes(queries))
    assert (got[0] == expected[0]).all() and (got[1] == expected[1]).all()
    assert got[0].tolist() == list(range(0, 5000, 50))
    assert (got[0].tolist(), got[1].tolist()) == _reference(listed, queries, 31)


def _photo(seed: int, size: int = 256) -> Image.Image:
    """1/f noise (the spectrum of natural photos) in colour: a PDQ of high quality."""
    rng = np.random.default_rng(seed)
    falloff = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :])
    falloff[0, 0] = 1.0
    spectrum = rng.normal(size=(3, *falloff.shape)) + 1j * rng.normal(size=(3, *falloff.shape))
    planes = np.fft.irfft2(spectrum / falloff, s=(size, size))
    planes = (planes - planes.mean()) / planes.std()
    return Image.fromarray((np.moveaxis(planes, 0, -1) * 50 + 128).clip(0, 255).astype(np.uint8))


def test_real_pdq_of_a_reencoded_brighter_copy_matches():
    original = _photo(11)
    buffer = io.BytesIO()
    ImageEnhance.Brightness(original).enhance(1.08).save(buffer, "JPEG", quality=70)
    copy = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").resize((240, 240))
    listed = [pdq_bits(_photo(seed)) for seed in (11, 12, 13)]
    assert all(quality >= 50 for _, quality in listed)
    index = load_pdq([("pdq.txt", [pdq_bits_to_hex(bits) for bits, _ in listed])])
    assert (pdq_hex_to_bits(index.hex_at(0)) == listed[0][0]).all()
    copy_bits, copy_quality = pdq_bits(copy)
    copy_hex = pdq_bits_to_hex(copy_bits)
    expected = pdq_distance(copy_hex, pdq_bits_to_hex(listed[0][0]))
    assert 0 < expected <= 31
    found, distance = index.query_many([copy_hex], qualities=[copy_quality])
    assert (found.tolist(), distance.tolist()) == ([0], [expected])
    other_bits, _ = pdq_bits(_photo(14))
    assert index.query(pdq_bits_to_hex(other_bits)) is None


def test_hexes_to_digests():
    digests, present = hexes_to_digests([None, "AB" * 16, ""], 32)
    assert present.tolist() == [False, True, False]
    assert digests.tobytes() == b"\xab" * 16
