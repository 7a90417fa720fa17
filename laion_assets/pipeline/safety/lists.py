"""Hash lists, URL lists and opt-out lists, read from the dataset store.

Layout (plain text, one entry a line, `#` comments and blank lines ignored; see the README):

    safety/hash_lists/md5/*.txt      32 hex digits: MD5 of the image bytes
    safety/hash_lists/sha1/*.txt     40 hex digits: SHA-1 of the image bytes
    safety/hash_lists/sha256/*.txt   64 hex digits: SHA-256 of the image bytes
    safety/hash_lists/pdq/*.txt      64 hex digits: PDQ perceptual hashes
    safety/hash_lists/url/*.txt      image URLs (normalised as extraction does)
    safety/opt_outs/domain/*.txt     domains whose images (and subdomains') are opted out
    safety/opt_outs/url/*.txt        opted-out image URLs

Every file is its own list, so an exclusion names the file that matched.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.safety.hashlists import (
    ExactHashList,
    HashListError,
    PdqIndex,
    load_exact,
    load_pdq,
)
from laion_assets.pipeline.safety.takedowns import LedgerError, normalize_value

HASH_LISTS = "safety/hash_lists"
OPT_OUTS = "safety/opt_outs"
EXACT_KINDS = ("md5", "sha1", "sha256")


@dataclass
class SafetyLists:
    """Every list, each with the store path it was read from."""

    exact: dict[str, list[tuple[str, ExactHashList]]] = field(default_factory=dict)
    pdq: list[tuple[str, PdqIndex]] = field(default_factory=list)
    urls: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    optout_domains: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    optout_urls: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    version: str = ""  # sha256 over every file's name and bytes

    def sizes(self) -> dict[str, int]:
        """Entries per list file, for manifests and the UI."""
        sizes = {name: len(m) for lists in self.exact.values() for name, m in lists}
        sizes.update({name: len(m) for name, m in self.pdq})
        for group in (self.urls, self.optout_domains, self.optout_urls):
            sizes.update({name: len(m) for name, m in group})
        return sizes


def load_lists(store: DatasetStore) -> SafetyLists:
    """Read every list under `safety/`; a bad line raises HashListError naming file and line."""
    digest = hashlib.sha256()
    lists = SafetyLists(exact={kind: [] for kind in EXACT_KINDS})

    def read(folder: str) -> Iterable[tuple[str, bytes]]:
        for name in (posixpath.join(folder, n) for n in store.listdir(folder, ".txt")):
            with store.open(name) as handle:
                data = handle.read()
            digest.update(f"{name}\n{len(data)}\n".encode())
            digest.update(data)
            yield name, data

    for kind in EXACT_KINDS:
        for name, data in read(f"{HASH_LISTS}/{kind}"):
            lists.exact[kind].append((name, load_exact(kind, [(name, data)])))
    for name, data in read(f"{HASH_LISTS}/pdq"):
        lists.pdq.append((name, load_pdq([(name, data)])))
    for name, data in read(f"{HASH_LISTS}/url"):
        lists.urls.append((name, read_values("url", data.splitlines(), name)))
    for name, data in read(f"{OPT_OUTS}/domain"):
        lists.optout_domains.append((name, read_values("domain", data.splitlines(), name)))
    for name, data in read(f"{OPT_OUTS}/url"):
        lists.optout_urls.append((name, read_values("url", data.splitlines(), name)))
    lists.version = digest.hexdigest()
    return lists


def read_values(kind: str, lines: Iterable[bytes | str], source: str) -> frozenset[str]:
    """A URL or domain list, normalised as the ledger normalises its values."""
    values = set()
    for number, raw in enumerate(lines, 1):
        line = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).strip()
        if not line or line.startswith("#"):
            continue
        try:
            values.add(normalize_value(kind, line.split()[0]))
        except LedgerError as exc:
            raise HashListError(f"{source}:{number}: {exc}") from exc
    return frozenset(values)


def matching_domain(host: str, domains: frozenset[str] | set[str]) -> str | None:
    """The listed domain that `host` is, or is a subdomain of; None if none."""
    parts = host.split(".")
    for i in range(len(parts) - 1):
        candidate = ".".join(parts[i:])
        if candidate in domains:
            return candidate
    return None
