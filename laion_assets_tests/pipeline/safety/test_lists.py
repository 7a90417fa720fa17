"""Hash, URL and opt-out lists read from the dataset store."""

import gzip
import json

import pyarrow as pa
import pytest

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.formats.urls import normalize
from laion_assets.pipeline.safety.hashlists import HashListError
from laion_assets.pipeline.safety.lists import (
    lists_version,
    load_lists,
    matching_domain,
    read_values,
)
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.takedowns import (
    append,
    new_takedown,
    normalize_value,
    read_ledger,
)
from laion_assets.pipeline.safety.verify import listed_pairs
from laion_assets.settings import storage_options
from laion_assets_tests import s3 as s3_server

moto_endpoint = s3_server.moto_endpoint
s3 = s3_server.s3

MD5_A, MD5_B = "0123456789abcdef" * 2, "fedcba9876543210" * 2
SHA1 = "ab" * 20
SHA256 = "cd" * 32
PDQ = "f0" * 32


@pytest.fixture
def store(tmp_path) -> DatasetStore:
    return DatasetStore(str(tmp_path / "store"))


def _put(store: DatasetStore, name: str, text: str) -> None:
    with store.open(name, "wb") as handle:
        handle.write(text.encode())


def _populate(store: DatasetStore) -> None:
    _put(store, "safety/hash_lists/md5/partner.txt",
         f"# partner list\n{MD5_A.upper()}\n\n  {MD5_B}  \n{MD5_A},dup\n")
    _put(store, "safety/hash_lists/md5/internal.txt", f"{MD5_B}\tlabel\n")
    _put(store, "safety/hash_lists/sha1/a.txt", f"{SHA1}\n")
    _put(store, "safety/hash_lists/sha256/a.txt", f"{SHA256}  image.jpg\n{SHA256.upper()}\n")
    _put(store, "safety/hash_lists/pdq/a.txt", f"{PDQ}\n{'0f' * 32}\n")
    _put(store, "safety/hash_lists/url/a.txt",
         "# urls\nHTTP://Example.COM/a.jpg#x\nhttps://example.org/b%20c.png extra\n")
    _put(store, "safety/opt_outs/domain/a.txt", "Example.NET\n.optout.example.com\n\n")
    _put(store, "safety/opt_outs/url/a.txt", "https://img.example.org/1.jpg\n")


def test_an_empty_store_has_no_lists(store):
    lists = load_lists(store)
    assert lists.sizes() == {}
    assert lists.exact == {"md5": [], "sha1": [], "sha256": []}
    assert lists.pdq == lists.urls == lists.optout_domains == lists.optout_urls == []
    assert len(lists.version) == 64


def test_every_list_is_read_with_its_size(store):
    _populate(store)
    lists = load_lists(store)
    assert lists.sizes() == {
        "safety/hash_lists/md5/internal.txt": 1,
        "safety/hash_lists/md5/partner.txt": 2,  # duplicates and any case count once
        "safety/hash_lists/sha1/a.txt": 1,
        "safety/hash_lists/sha256/a.txt": 1,
        "safety/hash_lists/pdq/a.txt": 2,
        "safety/hash_lists/url/a.txt": 2,
        "safety/opt_outs/domain/a.txt": 2,
        "safety/opt_outs/url/a.txt": 1,
    }
    assert [name for name, _ in lists.exact["md5"]] == [
        "safety/hash_lists/md5/internal.txt", "safety/hash_lists/md5/partner.txt"]
    partner = dict(lists.exact["md5"])["safety/hash_lists/md5/partner.txt"]
    assert MD5_A in partner and MD5_B in partner and "00" * 16 not in partner
    assert dict(lists.urls)["safety/hash_lists/url/a.txt"] == {
        "http://example.com/a.jpg", "https://example.org/b%20c.png"}
    assert dict(lists.optout_domains)["safety/opt_outs/domain/a.txt"] == {
        "example.net", "optout.example.com"}
    found, distance = lists.pdq[0][1].query_many([PDQ], qualities=[100])
    assert found[0] >= 0 and distance[0] == 0


def test_the_version_follows_the_files(store):
    _populate(store)
    version = load_lists(store).version
    assert load_lists(store).version == version  # stable
    _put(store, "safety/opt_outs/url/a.txt", "https://img.example.org/2.jpg\n")
    changed = load_lists(store).version
    assert changed != version
    _put(store, "safety/hash_lists/sha1/b.txt", f"{'12' * 20}\n")  # a new file
    added = load_lists(store)
    assert added.version not in (version, changed)
    assert added.sizes()["safety/hash_lists/sha1/b.txt"] == 1
    store.fs.rm(store.path("safety/hash_lists/sha1/b.txt"))
    assert load_lists(store).version == changed
    # the same bytes under another name are another version
    store.fs.mv(store.path("safety/opt_outs/url/a.txt"), store.path("safety/opt_outs/url/b.txt"))
    assert load_lists(store).version != changed


@pytest.mark.parametrize(("name", "text", "line"), [
    ("safety/hash_lists/md5/bad.txt", f"{MD5_A}\n# ok\n{MD5_A[:-1]}\n", 3),
    ("safety/hash_lists/sha1/bad.txt", f"\n{SHA1}\n{'zz' * 20}\n", 3),
    ("safety/hash_lists/sha256/bad.txt", f"{MD5_A}\n", 1),
    ("safety/hash_lists/pdq/bad.txt", f"{PDQ}\n{PDQ}0\n", 2),
    ("safety/hash_lists/url/bad.txt", "https://example.com/a.jpg\nnot a url\n", 2),
    ("safety/hash_lists/url/bad.txt", "ftp://example.com/a.jpg\n", 1),
    ("safety/opt_outs/domain/bad.txt", "example.com\n\nlocalhost\n", 3),
    ("safety/opt_outs/url/bad.txt", "# c\n/relative.jpg\n", 2),
])
def test_a_bad_line_names_the_file_and_line(store, name, text, line):
    _populate(store)
    _put(store, name, text)
    with pytest.raises(HashListError, match=f"{name}:{line}"):
        load_lists(store)


def test_read_values_normalises():
    assert read_values("domain", [b"Example.COM", "# x", "", " sub.example.org  # note"],
                       "src") == {"example.com", "sub.example.org"}
    with pytest.raises(HashListError, match="src:2: "):
        read_values("url", ["http://example.com/", "mailto:a@b.c"], "src")


@pytest.mark.parametrize(("host", "expected"), [
    ("example.com", "example.com"),
    ("img.example.com", "example.com"),
    ("a.b.example.com", "example.com"),
    ("notexample.com", None),  # a suffix of the string, not of the name
    ("example.com.evil.org", None),
    ("example.org", None),
    ("com", None),
    ("", None),
    ("optout.example.net", "optout.example.net"),
    ("x.optout.example.net", "optout.example.net"),
    ("example.net", None),  # the parent of a listed subdomain is not listed
])
def test_matching_domain(host, expected):
    domains = frozenset({"example.com", "optout.example.net", "com.au"})
    assert matching_domain(host, domains) == expected
    assert matching_domain(host, frozenset()) is None


# -- every file is applied or fails loudly -------------------------------------------------

MD5_C, MD5_D, MD5_E = "11" * 16, "22" * 16, "33" * 16


def _put_bytes(store: DatasetStore, name: str, data: bytes) -> None:
    with store.open(name, "wb") as handle:
        handle.write(data)


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("safety/hash_lists/md5/partner.csv", f"{MD5_C},label\n{MD5_D},x\n", {MD5_C, MD5_D}),
    ("safety/hash_lists/md5/PARTNER.TXT", f"{MD5_C}\n", {MD5_C}),
    ("safety/hash_lists/md5/partner", f"{MD5_C}\n{MD5_D}\n", {MD5_C, MD5_D}),
    ("safety/hash_lists/md5/2024/q1/partner.txt", f"{MD5_C}\n", {MD5_C}),
    ("safety/hash_lists/md5/named.csv", f"id,label,MD5\n1,a,{MD5_C}\n\n2,b,{MD5_D.upper()}\n",
     {MD5_C, MD5_D}),
    ("safety/hash_lists/md5/first.Csv", f"md5,label\n{MD5_C},a\n", {MD5_C}),
    ("safety/hash_lists/md5/quoted.csv", f'"label","hash"\n"a, b","{MD5_E}"\n', {MD5_E}),
    ("safety/hash_lists/md5/tabs.tsv", f"label\tvalue\na\t{MD5_C}\n", {MD5_C}),
    ("safety/hash_lists/md5/bom.txt", f"\ufeff{MD5_C}\r\n", {MD5_C}),
])
def test_odd_hash_list_files_are_applied(store, name, data, expected):
    _put(store, name, data)
    lists = load_lists(store)
    assert [n for n, _ in lists.exact["md5"]] == [name]
    matcher = lists.exact["md5"][0][1]
    assert len(matcher) == len(expected) and all(h in matcher for h in expected)


def test_a_gzipped_list_is_applied(store):
    _put_bytes(store, "safety/hash_lists/sha1/partner.txt.GZ", gzip.compress(f"{SHA1}\n".encode()))
    _put_bytes(store, "safety/opt_outs/domain/sites.csv.gz",
               gzip.compress(b"domain,reason\nExample.NET,asked\n"))
    lists = load_lists(store)
    assert SHA1 in dict(lists.exact["sha1"])["safety/hash_lists/sha1/partner.txt.GZ"]
    assert dict(lists.optout_domains) == {"safety/opt_outs/domain/sites.csv.gz": {"example.net"}}


def test_url_and_domain_tables_read_their_named_column(store):
    _put(store, "safety/hash_lists/url/takedowns.csv",
         'reason,url\n"asked, twice","https://Img.Example.com:443/a,b.jpg"\n')
    _put(store, "safety/opt_outs/domain/sub/sites.TSV", "# opt-outs\nexample.org\tform\n")
    lists = load_lists(store)
    assert dict(lists.urls) == {
        "safety/hash_lists/url/takedowns.csv": {"https://img.example.com/a,b.jpg"}}
    assert dict(lists.optout_domains) == {"safety/opt_outs/domain/sub/sites.TSV": {"example.org"}}


@pytest.mark.parametrize(("name", "data", "message"), [
    ("safety/hash_lists/md5/notes.md", b"not a list", "'.md' is not a list format"),
    ("safety/hash_lists/md5/list.json", b"[]", "'.json' is not a list format"),
    ("safety/hash_lists/md5/list.txt.bak", b"", "'.bak' is not a list format"),
    ("safety/hash_lists/partner.txt", MD5_A.encode(), "not in a list folder"),
    ("safety/hash_lists/md4/partner.txt", MD5_A.encode(), "not in a list folder"),
    ("safety/hash_lists/MD5/partner.txt", MD5_A.encode(), "not in a list folder"),
    ("safety/opt_outs/sites.txt", b"example.com", "not in a list folder"),
    ("safety/hash_lists/md5/latin1.txt", b"\xe9t\xe9\n", "not UTF-8 text"),
    ("safety/hash_lists/md5/broken.txt.gz", b"not gzip", "not gzip data"),
    ("safety/hash_lists/md5/header.csv", b"id,label\n1,a\n", "a header naming no 'md5' column"),
])
def test_a_file_that_cannot_be_applied_fails_naming_it(store, name, data, message):
    _populate(store)
    _put_bytes(store, name, data)
    with pytest.raises(HashListError, match=message) as info:
        load_lists(store)
    assert name in str(info.value)


def test_a_row_without_the_named_column_names_its_line(store):
    _put(store, "safety/hash_lists/md5/short.csv", f"id,md5\n1,{MD5_C}\n2\n")
    with pytest.raises(HashListError, match="safety/hash_lists/md5/short.csv:3: "):
        load_lists(store)


def test_the_version_covers_odd_files(store):
    _populate(store)
    version = load_lists(store).version
    assert lists_version(store) == version
    _put(store, "safety/hash_lists/md5/sub/extra.CSV", f"{MD5_C}\n")
    assert load_lists(store).version == lists_version(store) != version


# -- URL lists match as URLs ---------------------------------------------------------------

RELEASED = "https://img.example.com/photos/caf%C3%A9.jpg"


@pytest.mark.parametrize("variant", [
    RELEASED,
    "HTTPS://IMG.EXAMPLE.COM/photos/caf%C3%A9.jpg",
    "https://Img.Example.Com:443/photos/café.jpg",
    "https://img.example.com/photos/./x/../café.jpg#top",
    "https://img.example.com./photos/caf%C3%A9.jpg",
])
def test_url_lists_normalise_variants_of_a_released_url(store, variant):
    _put(store, "safety/hash_lists/url/partner.txt", f"{variant}\n")
    _put(store, "safety/opt_outs/url/requests.csv", f"url,who\n{variant},form\n")
    lists = load_lists(store)
    assert normalize(RELEASED) == RELEASED  # released URLs are normalised at extraction
    assert dict(lists.urls)["safety/hash_lists/url/partner.txt"] == {RELEASED}
    assert dict(lists.optout_urls)["safety/opt_outs/url/requests.csv"] == {RELEASED}
    assert normalize_value("url", variant) == RELEASED  # takedown requests: the same rules
    rows = pa.table({"pair_id": [7, 8], "url": [RELEASED, "https://img.example.com/other.jpg"]})
    hits = {h.rule: h.index for h in listed_pairs(rows, lists, [], SafetyPolicy())}
    assert hits["url_list"] == [0] and set(map(tuple, hits.values())) == {(0,)}


def test_lists_and_ledger_files_are_walked_on_s3(s3):
    """On an object store too, subfolders and odd names are applied, other files fail."""
    store = DatasetStore(f"s3://{s3.bucket()}/store", storage_options(s3.endpoint))
    _put(store, "safety/hash_lists/md5/a/b/partner.CSV", f"md5,label\n{MD5_C},x\n")
    _put(store, "safety/opt_outs/domain/sites", "example.org\n")
    append(store, [new_takedown("md5", MD5_D, "request")])
    _put(store, "takedowns/ledger/by-hand/entry.json", _ledger_json(MD5_E))
    lists = load_lists(store)
    assert MD5_C in dict(lists.exact["md5"])["safety/hash_lists/md5/a/b/partner.CSV"]
    assert dict(lists.optout_domains) == {"safety/opt_outs/domain/sites": {"example.org"}}
    assert {e.value for e in read_ledger(store)} == {MD5_D, MD5_E}
    _put(store, "safety/opt_outs/url/deep/er/list.xlsx", "x")
    with pytest.raises(HashListError, match="safety/opt_outs/url/deep/er/list.xlsx"):
        load_lists(store)


def _ledger_json(value: str) -> str:
    return json.dumps({"id": "td-000000000009", "kind": "md5", "value": value, "reason": "r",
                       "added_at": "2026-01-01T00:00:00+00:00"})
