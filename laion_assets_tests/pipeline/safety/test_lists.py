"""Hash, URL and opt-out lists read from the dataset store."""

import pytest

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.safety.hashlists import HashListError
from laion_assets.pipeline.safety.lists import load_lists, matching_domain, read_values

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
    _put(store, "safety/hash_lists/md5/notes.md", "not a list: ignored\n")
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
