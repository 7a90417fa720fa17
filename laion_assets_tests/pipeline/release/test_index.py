"""The release lookup index: round trips on a generated multi-part release, collisions, misses."""

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.pipeline.formats.urls import domain_of
from laion_assets.pipeline.release import index as release_index
from laion_assets.pipeline.release.index import (
    INDEX_SCHEMA,
    IndexQueryError,
    ReleaseIndex,
    find,
    lookup,
    query_key,
    read_rows,
    string_key,
    write_indexes,
)

PART_ROWS = (700, 1, 0, 450)  # an empty part and a one-row part as well
DATA_ROW_GROUP = 64
INDEX_ROW_GROUP = 50
BIG_HOST = "big.example.com"  # more rows than an index row group: equal keys span groups


def _release(rng: np.random.Generator) -> list[tuple[int, pa.Table, pa.Table]]:
    """(part, data table, provenance table) of a small release with repeated values."""
    parts = []
    shared_sha = "ab" * 32
    for part, n in enumerate(PART_ROWS):
        hosts = [BIG_HOST if i % 5 == 0 else f"h{rng.integers(40)}.example.org"
                 for i in range(n)]
        urls = [f"https://{h}/img/{part}-{i}.jpg" for i, h in enumerate(hosts)]
        if n > 10:
            urls[7] = "https://dup.example.net/same.jpg"  # one URL, two alt texts (2 rows)
            urls[8] = "https://dup.example.net/same.jpg"
        hashes = rng.integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64)
        sha = [None if i % 9 == 4 else hashlib.sha256(f"{part}-{i}".encode()).hexdigest()
               for i in range(n)]
        if n > 10:
            sha[3] = shared_sha  # the same image in several parts
        data = pa.table({"URL": pa.array(urls, pa.string()),
                         "TEXT": pa.array([f"alt {part} {i}" for i in range(n)], pa.string()),
                         "hash": pa.array(hashes, pa.int64())})
        provenance = pa.table({"hash": pa.array(hashes, pa.int64()),
                               "sha256": pa.array(sha, pa.string()),
                               "shard": pa.array([f"C/{part:05d}"] * n, pa.string())})
        parts.append((part, data, provenance))
    return parts


def _write(folder: Path, parts, **kwargs) -> dict:
    for part, data, provenance in parts:
        for kind, table in (("data", data), ("provenance", provenance)):
            path = folder / kind / f"part-{part:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path, row_group_size=DATA_ROW_GROUP)
    inputs = ((part, pa.table({"hash": d.column("hash"), "URL": d.column("URL"),
                               "sha256": p.column("sha256")})) for part, d, p in parts)

    def open_output(relative: str):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        return open(folder / relative, "wb")  # noqa: SIM115 - write_indexes closes it

    return write_indexes(inputs, open_output, **kwargs)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    parts = _release(np.random.default_rng(5))
    written = _write(folder, parts, row_group_size=INDEX_ROW_GROUP)
    rows = [{"part": part, "row": i, "hash": h, "URL": u, "sha256": s}
            for part, data, prov in parts
            for i, (h, u, s) in enumerate(zip(data.column("hash").to_pylist(),
                                              data.column("URL").to_pylist(),
                                              prov.column("sha256").to_pylist(), strict=True))]
    return folder, rows, written


def _opener(folder: Path, log: list | None = None):
    def open_file(relative: str):
        if log is not None:
            log.append(relative)
        return open(folder / relative, "rb")  # noqa: SIM115 - the caller closes it
    return open_file


def _expected(rows, kind: str, value) -> set[tuple[int, int]]:
    def holds(r) -> bool:
        if kind == "domain":
            return domain_of(r["URL"]) == value
        field = {"hash": "hash", "url": "URL", "sha256": "sha256"}[kind]
        return r[field] == value
    return {(r["part"], r["row"]) for r in rows if holds(r)}


def test_write_indexes_reports_every_file_and_writes_sorted_keys(release):
    folder, rows, written = release
    with_sha = sum(r["sha256"] is not None for r in rows)
    assert {p: v["rows"] for p, v in written.items()} == {
        "index/hash.parquet": len(rows), "index/url.parquet": len(rows),
        "index/sha256.parquet": with_sha, "index/domain.parquet": len(rows)}
    for relative, facts in written.items():
        raw = (folder / relative).read_bytes()
        assert facts["bytes"] == len(raw)
        assert facts["sha256"] == hashlib.sha256(raw).hexdigest()
        parquet = pq.ParquetFile(folder / relative)
        assert parquet.schema_arrow == INDEX_SCHEMA
        assert parquet.metadata.num_row_groups == -(-facts["rows"] // INDEX_ROW_GROUP)
        for group in range(parquet.metadata.num_row_groups):
            assert parquet.metadata.row_group(group).column(0).statistics.has_min_max
        keys = parquet.read().column("key").to_numpy()
        assert (np.diff(keys) >= 0).all()
    hash_index = pq.read_table(folder / "index/hash.parquet")
    by_location = {(r["part"], r["row"]): r["hash"] for r in rows}
    for key, part, row in zip(*(hash_index.column(c).to_pylist() for c in ("key", "part", "row")),
                              strict=True):
        assert by_location[(part, row)] == key


@pytest.mark.parametrize("kind", ["hash", "url", "sha256", "domain"])
def test_every_kind_finds_exactly_its_rows(release, kind):
    folder, rows, _ = release
    index = ReleaseIndex(_opener(folder))
    field = {"hash": "hash", "url": "URL", "sha256": "sha256", "domain": "URL"}[kind]
    values = {r[field] for r in rows[::17] if r[field] is not None}
    values |= {"https://dup.example.net/same.jpg"} if kind == "url" else set()
    values |= {"ab" * 32} if kind == "sha256" else set()
    if kind == "domain":
        values = {domain_of(u) for u in values} | {BIG_HOST}
    for value in values:
        expected = _expected(rows, kind, value)
        assert expected
        assert set(index.lookup(kind, value)) == expected, value
        found = index.find(kind, value)
        assert {(r["part"], r["row"]) for r in found} == expected, value
        for r in found:  # the data row and its provenance row, merged
            source = next(x for x in rows if (x["part"], x["row"]) == (r["part"], r["row"]))
            assert (r["hash"], r["URL"], r["sha256"]) == (
                source["hash"], source["URL"], source["sha256"])
            assert r["TEXT"] == f"alt {r['part']} {r['row']}"
            assert r["shard"] == f"C/{r['part']:05d}"


def test_repeated_values_come_back_in_every_part(release):
    folder, rows, _ = release
    dup = find(_opener(folder), "url", "https://dup.example.net/same.jpg")
    assert len(dup) == 2 * sum(n > 10 for n in PART_ROWS)
    shared = find(_opener(folder), "sha256", "AB" * 32)  # case does not matter
    assert {r["part"] for r in shared} == {p for p, n in enumerate(PART_ROWS) if n > 10}
    big = find(_opener(folder), "domain", f"https://{BIG_HOST}/anything")
    assert len(big) == len(_expected(rows, "domain", BIG_HOST)) > 2 * INDEX_ROW_GROUP


def test_queries_are_normalised_like_extraction(release):
    folder, rows, _ = release
    target = rows[0]["URL"]
    upper = target.replace("https://", "HTTPS://").replace(".example", ".EXAMPLE") + "#frag"
    assert [r["URL"] for r in find(_opener(folder), "url", upper)] == [target]
    assert find(_opener(folder), "hash", str(rows[5]["hash"]))[0]["row"] == rows[5]["row"]
    assert find(_opener(folder), "domain", f".{BIG_HOST}")
    for kind, bad in (("url", "ftp://x.example/a.jpg"), ("url", "not a url"),
                      ("sha256", "xyz"), ("hash", "12ab"), ("hash", str(1 << 64)),
                      ("color", "red")):
        with pytest.raises(IndexQueryError):
            lookup(_opener(folder), kind, bad)


def test_missing_values_find_nothing(release):
    folder, rows, _ = release
    known = {r["hash"] for r in rows}
    absent = next(h for h in range(1, 1000) if h not in known)
    opener = _opener(folder)
    assert lookup(opener, "hash", absent) == [] and find(opener, "hash", absent) == []
    assert find(opener, "url", "https://nowhere.example/x.jpg") == []
    assert find(opener, "sha256", "0" * 64) == []
    assert find(opener, "domain", "nowhere.example") == []
    assert lookup(opener, "hash", (1 << 63) - 1) == [] and lookup(opener, "hash", -(1 << 63)) == []


def test_collisions_are_dropped_by_comparing_the_rows(tmp_path, monkeypatch):
    parts = _release(np.random.default_rng(9))
    _, data, _ = parts[0]
    victim, intruder = data.column("URL")[10].as_py(), data.column("URL")[20].as_py()
    host = domain_of(victim)
    other_host = next(domain_of(u) for u in data.column("URL").to_pylist()
                      if domain_of(u) != host)
    real = release_index._string_keys

    def colliding(values):  # the intruder's URL and host get the victim's keys
        values = list(values)
        swapped = [victim if v == intruder else host if v == other_host else v for v in values]
        return real(swapped)

    monkeypatch.setattr(release_index, "_string_keys", colliding)
    _write(tmp_path, parts)
    monkeypatch.undo()
    index = ReleaseIndex(_opener(tmp_path))
    candidates = index.lookup("url", victim)
    assert sorted(candidates) == [(0, 10), (0, 20)]  # the index cannot tell them apart
    assert [(r["part"], r["row"], r["URL"]) for r in index.find("url", victim)] == [
        (0, 10, victim)]
    found = index.find("domain", host)
    assert found and {domain_of(r["URL"]) for r in found} == {host}
    assert len(index.lookup("domain", host)) > len(found)


def test_a_lookup_reads_a_small_part_of_the_index(tmp_path):
    rng = np.random.default_rng(1)
    n = 100_000
    urls = [f"https://h{i % 300}.example/{i}.jpg" for i in range(n)]
    table = pa.table({"URL": urls, "TEXT": ["t"] * n,
                      "hash": rng.integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64)})
    provenance = pa.table({"hash": table.column("hash"), "sha256": pa.nulls(n, pa.string())})
    _write(tmp_path, [(0, table, provenance)], row_group_size=1024)
    read = {"bytes": 0}

    class Counting:
        def __init__(self, path):
            self.handle = open(path, "rb")  # noqa: SIM115 - closed in close()

        def read(self, *args):
            data = self.handle.read(*args)
            read["bytes"] += len(data)
            return data

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    index = ReleaseIndex(lambda rel: Counting(tmp_path / rel))
    assert index.lookup("url", urls[12_345]) == [(0, 12_345)]
    size = (tmp_path / "index/url.parquet").stat().st_size
    assert read["bytes"] < size / 5, (read["bytes"], size)
    assert query_key("url", urls[1]) == string_key(urls[1])
    assert read_rows(_opener(tmp_path), [(0, 99_999), (0, 0)])[0]["URL"] == urls[99_999]
