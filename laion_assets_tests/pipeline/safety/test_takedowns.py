"""The takedown ledger: validation and normalisation of entries, append-only storage."""

import json
import re

import pytest

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.formats.urls import normalize
from laion_assets.pipeline.safety.takedowns import (
    LEDGER,
    LedgerError,
    Takedown,
    append,
    ledger_files,
    ledger_version,
    new_takedown,
    normalize_value,
    read_ledger,
)

SHA256 = "AB" * 32
MD5 = "0123456789ABCDEF" * 2
SHA1 = "fEdCbA9876" * 4
PDQ = "f0" * 32


@pytest.fixture
def store(tmp_path) -> DatasetStore:
    return DatasetStore(str(tmp_path / "store"))


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("url", "HTTP://Example.COM:80/a/../b.jpg#frag", "http://example.com/b.jpg"),
    ("url", "  https://bücher.example/ä b.jpg ", "https://xn--bcher-kva.example/%C3%A4%20b.jpg"),
    ("domain", "Example.COM", "example.com"),
    ("domain", ".example.com", "example.com"),
    ("domain", "http://example.com/x", "example.com"),
    ("domain", "https://Sub.Example.com:8443/a?b", "sub.example.com"),
    ("domain", "example.com.", "example.com"),
    ("domain", " bücher.example ", "xn--bcher-kva.example"),
    ("sha256", SHA256, SHA256.lower()),
    ("md5", f" {MD5} ", MD5.lower()),
    ("sha1", SHA1, SHA1.lower()),
    ("pdq", PDQ.upper(), PDQ),
])
def test_new_takedown_normalises_values(kind, value, expected):
    entry = new_takedown(kind, value, "  DMCA notice 42 ", requested_by="legal@example.org")
    assert (entry.kind, entry.value, entry.reason) == (kind, expected, "DMCA notice 42")
    assert entry.requested_by == "legal@example.org"
    assert re.fullmatch(r"td-[0-9a-f]{12}", entry.id)
    assert entry.added_at.endswith("+00:00")
    assert normalize_value(kind, expected) == expected  # normal forms are fixed points
    if kind == "url":
        assert entry.value == normalize(value.strip())  # as extraction normalises URLs


def test_new_takedowns_get_distinct_ids():
    ids = {new_takedown("md5", MD5, "r").id for _ in range(50)}
    assert len(ids) == 50


@pytest.mark.parametrize(("kind", "value"), [
    ("sha256", "ab" * 31),  # wrong length
    ("md5", "ab" * 17),
    ("sha1", "ab" * 32),  # a sha256 where a sha1 belongs
    ("pdq", "f0" * 31),
    ("sha256", "zz" * 32),  # not hex
    ("md5", "0x" + "a" * 30),
    ("md5", ""),
    ("domain", "localhost"),  # not a host
    ("domain", "not a host"),
    ("domain", "exa$mple.com"),
    ("domain", "-bad.example.com"),
    ("domain", "a..b"),
    ("domain", "ftp://example.com/x"),
    ("url", "not a url"),
    ("url", "/relative/image.jpg"),
    ("url", "ftp://example.com/a.jpg"),
    ("url", "http://user:secret@example.com/a.jpg"),
])
def test_bad_values_are_rejected_naming_the_value(kind, value):
    with pytest.raises(LedgerError) as info:
        new_takedown(kind, value, "a reason")
    assert repr(value) in str(info.value)
    assert kind in str(info.value)


def test_a_reason_and_a_known_kind_are_required():
    for reason in ("", "   \n"):
        with pytest.raises(LedgerError, match="reason"):
            new_takedown("md5", MD5, reason)
    with pytest.raises(LedgerError, match="'phash'"):
        new_takedown("phash", PDQ, "a reason")
    with pytest.raises(LedgerError, match="'URL'"):
        normalize_value("URL", "http://example.com/a.jpg")


def test_append_and_read_round_trip(store):
    assert read_ledger(store) == [] and ledger_files(store) == []
    first = [new_takedown("url", "http://Example.com/a.jpg", "request 1", "alice"),
             new_takedown("sha256", SHA256, "request 2")]
    name = append(store, first)
    assert name.startswith(f"{LEDGER}/") and name.endswith(".jsonl")
    assert read_ledger(store) == first
    lines = store.open(name).read().decode().splitlines()
    assert [json.loads(line)["value"] for line in lines] == [first[0].value, first[1].value]


def test_appends_never_rewrite_earlier_files(store):
    versions, written = [ledger_version([])], []
    for i in range(4):
        before = {name: store.open(name).read() for name in ledger_files(store)}
        entries = [new_takedown("domain", f"site{i}.example.com", f"request {i}")]
        written += entries
        name = append(store, entries)
        files = ledger_files(store)
        assert len(files) == i + 1 and name == files[-1] and name not in before
        assert {n: store.open(n).read() for n in files if n != name} == before
        ledger = read_ledger(store)
        assert ledger == written  # oldest first
        versions.append(ledger_version(ledger))
    assert len(set(versions)) == len(versions)  # each append changes the version
    assert versions[-1] == f"4:{written[-1].id}"
    assert not [p for p in store.fs.ls(store.path(LEDGER)) if not p.endswith(".jsonl")]


def test_nothing_to_append(store):
    with pytest.raises(LedgerError, match="nothing"):
        append(store, [])
    assert ledger_files(store) == []


@pytest.mark.parametrize("name", [
    "README.txt", "99999999T000000000000-x.jsonl.tmp", "entries.csv", "sub/notes.md"])
def test_other_files_in_the_ledger_fail_naming_them(store, name):
    append(store, [new_takedown("md5", MD5, "r")])
    with store.open(f"{LEDGER}/{name}", "wb") as handle:
        handle.write(b"not a ledger file")
    with pytest.raises(LedgerError, match="not a ledger file") as info:
        read_ledger(store)
    assert store.uri(f"{LEDGER}/{name}") in str(info.value)


def test_hand_placed_json_and_subfolders_are_read(store):
    first = new_takedown("md5", MD5, "r")
    append(store, [first])
    one = json.loads(_line(id="td-000000000002"))
    many = [json.loads(_line(id="td-000000000003")),
            json.loads(_line(id="td-000000000004", kind="sha256", value=SHA256.lower()))]
    _write(store, "99990101T000000000000-one.json", [json.dumps(one)])
    _write(store, "2099/99990102T000000000000-many.JSON", [json.dumps(many)])
    _write(store, "2099/99990103T000000000000-lines.JSONL", [_line(id="td-000000000005")])
    ids = [e.id for e in read_ledger(store)]
    assert ids == [first.id] + [f"td-00000000000{i}" for i in (2, 3, 4, 5)]
    _write(store, "99990104T000000000000-bad.json", ['[{"id": "td-1"}]'])
    with pytest.raises(LedgerError, match="bad.json: entry 1: not a takedown entry"):
        read_ledger(store)


def _write(store: DatasetStore, name: str, lines: list[str]) -> str:
    with store.open(f"{LEDGER}/{name}", "wb") as handle:
        handle.write("".join(line + "\n" for line in lines).encode())
    return store.uri(f"{LEDGER}/{name}")


def _line(**changes) -> str:
    entry = {"id": "td-000000000001", "kind": "md5", "value": MD5.lower(), "reason": "r",
             "added_at": "2024-01-01T00:00:00+00:00", "requested_by": ""}
    return json.dumps({**entry, **changes})


@pytest.mark.parametrize(("bad", "message"), [
    ("{not json", "not a takedown entry"),
    (json.dumps({"id": "td-1", "kind": "md5"}), "not a takedown entry"),
    (json.dumps(["a", "list"]), "not a takedown entry"),
    (_line(value="ABCD"), "expected 32 hex digits"),
    (_line(kind="domain", value="Example.COM"), "not normalised"),
    (_line(kind="url", value="http://Example.com/a.jpg"), "not normalised"),
    (_line(kind="sha256", value=SHA256), "not normalised"),
    (_line(kind="phash"), "kind 'phash'"),
])
def test_a_corrupted_line_names_the_file_and_line(store, bad, message):
    append(store, [new_takedown("md5", MD5, "fine")])
    path = _write(store, "20990101T000000000000-bad.jsonl", [_line(), "", bad, _line()])
    with pytest.raises(LedgerError, match=message) as info:
        read_ledger(store)
    assert f"{path}:3" in str(info.value)


def test_entries_written_by_hand_parse_with_defaults(store):
    line = json.loads(_line())
    del line["requested_by"]
    _write(store, "20240101T000000000000-hand.jsonl", [json.dumps(line)])
    assert read_ledger(store) == [Takedown("td-000000000001", "md5", MD5.lower(), "r",
                                           "2024-01-01T00:00:00+00:00", "")]
