"""Hash lists, URL lists and opt-out lists, read from the dataset store.

Layout (the folder says what a list holds; see the README's list formats):

    safety/hash_lists/md5/...      32 hex digits: MD5 of the image bytes
    safety/hash_lists/sha1/...     40 hex digits: SHA-1 of the image bytes
    safety/hash_lists/sha256/...   64 hex digits: SHA-256 of the image bytes
    safety/hash_lists/pdq/...      64 hex digits: PDQ perceptual hashes
    safety/hash_lists/url/...      image URLs (normalised as extraction does: WHATWG rules)
    safety/opt_outs/domain/...     domains whose images (and subdomains') are opted out
    safety/opt_outs/url/...        opted-out image URLs

No file under `safety/hash_lists/` or `safety/opt_outs/` is ever skipped: each is applied or
loading fails with a HashListError naming it and why. Accepted files, in any subfolder of a
kind's folder, extensions in any case, optionally gzip-compressed (`.gz` added):

- `.txt`, `.lst` or no extension: one entry a line, `#` comments and blank lines ignored,
  the entry is the line's first field (up to a space, a tab or, for hashes, a comma);
- `.csv` / `.tsv`: comma / tab separated; when the first row is a header, the column named
  after the kind (`md5`, `sha1`, `sha256`, `pdq`, `url`, `domain`), or `hash` / `value`,
  holds the entries, else the first column does.

Anything else (another extension, a file outside a kind's folder, bytes that are not UTF-8)
fails. Every file is its own list, so an exclusion names the file that matched.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.safety.hashlists import (
    HASH_KINDS,
    PDQ_DIGITS,
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
ROOTS = (HASH_LISTS, OPT_OUTS)
KIND_FOLDERS = {  # folder -> (kind of entry, SafetyLists field)
    **{f"{HASH_LISTS}/{k}": (k, "exact") for k in EXACT_KINDS},
    f"{HASH_LISTS}/pdq": ("pdq", "pdq"),
    f"{HASH_LISTS}/url": ("url", "urls"),
    f"{OPT_OUTS}/domain": ("domain", "optout_domains"),
    f"{OPT_OUTS}/url": ("url", "optout_urls"),
}
LINE_SUFFIXES = (".txt", ".lst", "")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
ACCEPTED = ".txt, .lst, .csv, .tsv or no extension (each optionally .gz)"
_COLUMN_ALIASES = ("hash", "value")
_BOM = "\ufeff"


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


def list_files(store: DatasetStore, roots: Iterable[str] = ROOTS) -> list[str]:
    """Store-relative paths of every file under `roots`, subfolders included, sorted."""
    found = []
    for root in roots:
        path = store.path(root)
        store.fs.invalidate_cache(path)
        if not store.fs.exists(path):
            continue
        prefix = store.path("").rstrip("/") + "/"
        found += [p[len(prefix):] if p.startswith(prefix) else p
                  for p in store.fs.find(path) if not p.endswith("/")]
    return sorted(found)


def lists_version(store: DatasetStore) -> str:
    """The lists' fingerprint (as `load_lists` computes it) without parsing the lists."""
    digest = hashlib.sha256()
    for name in list_files(store):
        with store.open(name) as handle:
            _fingerprint(digest, name, handle.read())
    return digest.hexdigest()


def _fingerprint(digest, name: str, data: bytes) -> None:
    digest.update(f"{name}\n{len(data)}\n".encode())
    digest.update(data)


def load_lists(store: DatasetStore) -> SafetyLists:
    """Read every list under `safety/`; a bad file or line raises HashListError naming it."""
    digest = hashlib.sha256()
    lists = SafetyLists(exact={kind: [] for kind in EXACT_KINDS})
    for name in list_files(store):
        kind, target = _kind_of(store, name)
        with store.open(name) as handle:
            data = handle.read()
        _fingerprint(digest, name, data)
        entries = _read_file(store, name, kind, data)
        if target == "exact":
            lists.exact[kind].append((name, entries))
        else:
            getattr(lists, target).append((name, entries))
    lists.version = digest.hexdigest()
    return lists


def _kind_of(store: DatasetStore, name: str) -> tuple[str, str]:
    """(entry kind, SafetyLists field) of a list file, from its folder and extension."""
    folder = next((f for f in KIND_FOLDERS if name.startswith(f + "/")), None)
    if folder is None:
        raise HashListError(
            f"{store.uri(name)}: not in a list folder; lists go under "
            + ", ".join(f"{f}/" for f in KIND_FOLDERS))
    _suffix(store, name)
    return KIND_FOLDERS[folder]


def _suffix(store: DatasetStore, name: str) -> str:
    """The list format's extension, lower-cased, without any `.gz` ('' for none)."""
    base = posixpath.basename(name).lower().removesuffix(".gz")
    stem, dot, ext = base.rpartition(".")
    suffix = f".{ext}" if dot and stem else ""
    if suffix not in LINE_SUFFIXES and suffix not in TABLE_SUFFIXES:
        raise HashListError(f"{store.uri(name)}: {suffix!r} is not a list format; "
                            f"accepted: {ACCEPTED}")
    return suffix


def _read_file(store: DatasetStore, name: str, kind: str, data: bytes):
    """One list file's entries: an ExactHashList, a PdqIndex or a frozenset of values."""
    suffix = _suffix(store, name)
    if name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise HashListError(f"{store.uri(name)}: not gzip data ({exc})") from exc
    try:
        text = data.decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError as exc:
        raise HashListError(f"{store.uri(name)}: not UTF-8 text ({exc})") from exc
    if suffix in TABLE_SUFFIXES:
        text = _column_lines(text, TABLE_SUFFIXES[suffix], kind, name)
    if kind in HASH_KINDS:
        return load_exact(kind, [(name, text)])
    if kind == "pdq":
        return load_pdq([(name, text)])
    return read_values(kind, text.splitlines(), name)


def _column_lines(text: str, delimiter: str, kind: str, source: str) -> str:
    """A CSV/TSV list as one entry a line (line numbers kept; the header becomes a comment)."""
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines)
                  if line.strip() and not line.lstrip().startswith("#")), None)
    if first is None:
        return text
    header = next(csv.reader([lines[first]], delimiter=delimiter))
    column = 0
    if not _is_entry(kind, header[0]):
        names = [c.strip().lower() for c in header]
        column = next((names.index(n) for n in (kind, *_COLUMN_ALIASES) if n in names), -1)
        if column < 0:
            raise HashListError(
                f"{source}:{first + 1}: a header naming no {kind!r} column (columns: "
                f"{', '.join(names)}; expected {kind!r}, 'hash' or 'value')")
        lines[first] = "# header"
    hashes = kind in HASH_KINDS or kind == "pdq"
    if hashes and column == 0 and '"' not in text:  # the hex parser reads the first field
        return "\n".join(lines) + "\n"
    out = []
    for line in lines:
        row = next(csv.reader([line], delimiter=delimiter), [])
        if not row or row[0].lstrip().startswith("#"):
            out.append("")
        else:
            out.append(row[column].strip() if column < len(row) else f"<no column {column + 1}>")
    return "\n".join(out) + "\n"


def _is_entry(kind: str, value: str) -> bool:
    """Whether a first field reads as an entry of `kind` (else the row is a header)."""
    value = value.strip()
    if kind in HASH_KINDS or kind == "pdq":
        digits = HASH_KINDS.get(kind, PDQ_DIGITS)
        return len(value) == digits and all(c in "0123456789abcdefABCDEF" for c in value)
    try:
        normalize_value(kind, value)
    except LedgerError:
        return False
    return kind != "domain" or "." in value


def read_values(kind: str, lines: Iterable[bytes | str], source: str) -> frozenset[str]:
    """A URL or domain list, normalised as the ledger normalises its values (URLs: WHATWG)."""
    values = set()
    for number, raw in enumerate(lines, 1):
        line = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)
        line = line.removeprefix(_BOM).strip()
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
