"""The takedown ledger: an append-only record of removal requests, kept in the dataset store.

Each `takedown add` writes one new object `takedowns/ledger/<UTC stamp>-<id>.jsonl` holding
one JSON entry a line, and nothing is ever rewritten or deleted, so appending is safe on
object stores (a new key is a single PUT) and the ledger's history is its own audit trail.
An entry:

    {"id": "td-…", "kind": "url" | "domain" | "sha256" | "md5" | "sha1" | "pdq",
     "value": "<normalised value>", "reason": "<free text>", "added_at": "<ISO 8601 UTC>",
     "requested_by": "<who asked, optional>"}

Entries may also be placed by hand, in any subfolder of the ledger: `.jsonl` (one entry a
line) or `.json` (one entry, or a list of entries), extensions in any case. Any other file
there fails every reader with a LedgerError naming it, rather than being skipped.

URLs are normalised as extraction normalises them (WHATWG rules), domains are lower-cased
IDNA hosts (a domain covers its subdomains), hashes are lower-case hex (PDQ: 64 digits,
matched within a Hamming distance). The safety stage excludes ledger matches, and the release
sensor cuts a new version when entries appear.
"""

from __future__ import annotations

import json
import posixpath
import re
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.formats.urls import UrlRejected, domain_of, normalize

LEDGER = "takedowns/ledger"
INCOMING = "takedowns/incoming"  # local appends are written here, then moved into the ledger
SUFFIXES = (".jsonl", ".json")
KINDS = ("url", "domain", "sha256", "md5", "sha1", "pdq")
HEX_DIGITS = {"sha256": 64, "md5": 32, "sha1": 40, "pdq": 64}
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


class LedgerError(ValueError):
    """A bad takedown request or ledger file; the message names it and the reason."""


@dataclass(frozen=True)
class Takedown:
    id: str
    kind: str
    value: str
    reason: str
    added_at: str
    requested_by: str = ""


def normalize_value(kind: str, value: str) -> str:
    """The canonical form of a takedown value; raises LedgerError when it is not valid."""
    text = value.strip()
    if kind == "url":
        try:
            return normalize(text)
        except UrlRejected as exc:
            raise LedgerError(f"url {value!r}: {exc}") from exc
    if kind == "domain":
        host = _host_of(text)
        if not _DOMAIN.match(host):
            raise LedgerError(f"domain {value!r}: not a host name")
        return host
    if kind in HEX_DIGITS:
        digits = text.lower()
        if len(digits) != HEX_DIGITS[kind] or not re.fullmatch(r"[0-9a-f]+", digits):
            raise LedgerError(f"{kind} {value!r}: expected {HEX_DIGITS[kind]} hex digits")
        return digits
    raise LedgerError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")


def _host_of(text: str) -> str:
    """A host from `example.com`, `.example.com` or a URL, IDNA-encoded and lower-cased."""
    candidate = text if "://" in text else f"http://{text.lstrip('.')}/"
    try:
        return domain_of(normalize(candidate))
    except UrlRejected as exc:
        raise LedgerError(f"domain {text!r}: {exc}") from exc


def new_takedown(kind: str, value: str, reason: str, requested_by: str = "") -> Takedown:
    """A validated entry with a fresh id and the current time."""
    if not reason.strip():
        raise LedgerError("a takedown needs a reason")
    return Takedown(id=f"td-{uuid.uuid4().hex[:12]}", kind=kind,
                    value=normalize_value(kind, value), reason=reason.strip(),
                    added_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    requested_by=requested_by)


def append(store: DatasetStore, entries: Iterable[Takedown]) -> str:
    """Append entries as one new ledger object; returns its store-relative path."""
    entries = list(entries)
    if not entries:
        raise LedgerError("nothing to append")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    base = f"{stamp}-{uuid.uuid4().hex[:8]}.jsonl"
    name = posixpath.join(LEDGER, base)
    data = "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in entries).encode()
    if store.is_local:  # written beside the ledger, so readers never see a partial file
        temp = posixpath.join(INCOMING, base + ".tmp")
        with store.open(temp, "wb") as handle:
            handle.write(data)
        store.fs.makedirs(store.path(LEDGER), exist_ok=True)
        store.fs.mv(store.path(temp), store.path(name))
    else:
        store.fs.pipe_file(store.path(name), data)
    return name


def ledger_files(store: DatasetStore) -> list[str]:
    """Store-relative paths of the ledger's objects (subfolders too), oldest first.

    Raises LedgerError for a file that is not `.jsonl` or `.json`: it is never skipped.
    """
    path = store.path(LEDGER)
    store.fs.invalidate_cache(path)
    if not store.fs.exists(path):
        return []
    prefix = store.path("").rstrip("/") + "/"
    names = [p.removeprefix(prefix) for p in store.fs.find(path) if not p.endswith("/")]
    for name in names:
        if not name.lower().endswith(SUFFIXES):
            raise LedgerError(f"{store.uri(name)}: not a ledger file; the ledger holds .jsonl "
                              "(one entry a line) and .json (an entry or a list) files only")
    return sorted(names, key=lambda n: (posixpath.basename(n), n))


def read_ledger(store: DatasetStore) -> list[Takedown]:
    """Every entry, oldest first; a malformed entry raises LedgerError naming file and line."""
    entries = []
    for name in ledger_files(store):
        where = store.uri(name)
        with store.open(name) as handle:
            try:
                text = handle.read().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise LedgerError(f"{where}: not UTF-8 text ({exc})") from exc
        if name.lower().endswith(".json"):
            entries += [_parse(raw, f"{where}: entry {i}") for i, raw in enumerate(
                _json_entries(text, where), 1)]
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                entries.append(_parse(line, f"{where}:{number}"))
    return entries


def _json_entries(text: str, where: str) -> list:
    """The entries of a `.json` ledger file: one object, or a list of them."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LedgerError(f"{where}: not valid JSON ({exc})") from exc
    return value if isinstance(value, list) else [value]


def _parse(line: str | dict, where: str) -> Takedown:
    try:
        raw = json.loads(line) if isinstance(line, str) else line
        entry = Takedown(**{k: raw[k] for k in ("id", "kind", "value", "reason", "added_at")},
                         requested_by=raw.get("requested_by", ""))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LedgerError(f"{where}: not a takedown entry ({exc})") from exc
    try:
        if normalize_value(entry.kind, entry.value) != entry.value:
            raise LedgerError(f"value {entry.value!r} is not normalised")
    except LedgerError as exc:
        raise LedgerError(f"{where}: {exc}") from exc
    return entry


def ledger_version(entries: list[Takedown]) -> str:
    """A short identity of the ledger's contents (the newest entry id and the count)."""
    return f"{len(entries)}:{entries[-1].id}" if entries else "0"
