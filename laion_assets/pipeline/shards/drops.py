"""Crawl drops and their shards.

A crawl drop is a folder (local or `s3://`) named after its crawl, holding either a Common
Crawl style listing (`warc.paths.gz` or `warc.paths`, one path a line) or `*.warc.gz` files.
A shard is a run of up to `shard_size` consecutive WARC files of one crawl, keyed
`<crawl>/<index:05d>`. Shards are registered once, in the dataset store
(`shards/<crawl>.json`), and never change: files that appear later form new shards after the
last registered one, so seeing a drop again adds nothing and one added file adds one shard.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import re
import stat
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, NoReturn

import fsspec

from laion_assets.pipeline.core.store import DatasetStore, fs_protocol, fs_uri

LISTINGS = ("warc.paths.gz", "warc.paths")
CRAWL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_LISTING_BYTES = 64 << 20  # a full crawl's warc.paths is ~10 MB uncompressed
MAX_WARC_BYTES = 16 << 30  # Common Crawl WARC files are ~1.2 GB
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
SHARD_KEY = re.compile(r"^(?P<crawl>[A-Za-z0-9][A-Za-z0-9._-]{0,99})/(?P<index>\d{5,})$")


class DropError(ValueError):
    """A drop or shard that cannot be used; the message names it and the reason."""


@dataclass(frozen=True)
class CrawlDrop:
    uri: str  # the drop folder, with protocol for remote filesystems
    crawl: str


@dataclass(frozen=True)
class Shard:
    key: str
    crawl: str
    index: int
    files: tuple[str, ...]  # WARC file URIs, in listing order

    def to_dict(self) -> dict:
        return {"key": self.key, "crawl": self.crawl, "index": self.index,
                "files": list(self.files)}


def shard_key(crawl: str, index: int) -> str:
    return f"{crawl}/{index:05d}"


def parse_shard_key(key: str) -> tuple[str, int]:
    match = SHARD_KEY.match(key)
    if not match:
        raise DropError(f"shard key {key!r}: expected <crawl>/<5-digit index>")
    return match["crawl"], int(match["index"])


def list_drops(location: str, storage_options: dict[str, Any] | None = None) -> list[CrawlDrop]:
    """The drops under `location`: each sub-folder with a listing or WARC files (or itself)."""
    fs, root = _fresh_fs(location, storage_options)
    if not fs.exists(root):
        return []
    if _looks_like_drop(fs, root):
        return [_drop(fs, root)]
    folders = [e["name"] for e in fs.ls(root, detail=True) if e["type"] == "directory"]
    return [_drop(fs, f) for f in sorted(folders) if _looks_like_drop(fs, f)]


def drop_fingerprint(drop: CrawlDrop, storage_options: dict[str, Any] | None = None) -> str:
    """Changes whenever the drop's listing or its set of WARC files changes."""
    fs, root = _fresh_fs(drop.uri, storage_options)
    listing = _listing_path(fs, root)
    if listing:
        info = fs.info(listing)
        seen = f"{listing}|{info.get('size')}|{info.get('mtime', info.get('LastModified'))}"
    else:
        seen = "\n".join(_warc_files_in(fs, root))
    return hashlib.sha256(seen.encode()).hexdigest()[:16]


def list_warc_files(
    drop: CrawlDrop, listing_base: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """WARC file URIs of a drop in order: its listing's (resolved against `listing_base`,
    the drop's own folder by default) or its `*.warc.gz` files sorted by name."""
    fs, root = _fresh_fs(drop.uri, storage_options)
    listing = _listing_path(fs, root)
    if listing is None:
        return [fs_uri(fs, p) for p in _warc_files_in(fs, root)]
    base = (listing_base or drop.uri).rstrip("/")
    name = fs_uri(fs, listing)
    with fs.open(listing, "rb") as handle:
        raw = handle.read(MAX_LISTING_BYTES + 1)
    try:
        text = _bounded_gunzip(raw) if listing.endswith(".gz") else raw
        if len(raw) > MAX_LISTING_BYTES or len(text) > MAX_LISTING_BYTES:
            raise DropError(f"{name}: listing over {MAX_LISTING_BYTES} bytes")
        lines = text.decode("utf-8").splitlines()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise DropError(f"{name}: unreadable listing: {exc}") from exc
    paths = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [inside_drop(p, base, name) for p in paths]


def inside_drop(entry: str, base: str, listing: str) -> str:
    """The URI of a listing entry, resolved under `base` with the base's own protocol.

    Refused (DropError naming the listing, the entry and the reason): `parent_reference`
    (`..`), `absolute_path`, `other_protocol` (`file://`, `http://`, `memory://`, chained
    `a::b` URLs, …), `outside_base` (another bucket, host or folder) and, for local drops,
    `symlink_leaves_drop` and `not_a_regular_file` (devices, FIFOs, folders)."""
    base_protocol, base_path = _split(base)
    if _URI.match(entry) or "::" in entry:
        protocol, path = _split(entry)
        if protocol != base_protocol:
            _refuse(listing, entry, "other_protocol", f"the drop's protocol is {base_protocol}")
        path = posixpath.normpath(path)
        if not path.startswith(base_path.rstrip("/") + "/"):
            _refuse(listing, entry, "outside_base", f"not under {base}")
        uri = base + path[len(base_path.rstrip("/")) :]
    elif entry.startswith(("/", "\\")):
        _refuse(listing, entry, "absolute_path", f"paths are relative to {base}")
    elif ".." in re.split(r"[/\\]", entry):
        _refuse(listing, entry, "parent_reference", f"paths stay under {base}")
    else:
        uri = f"{base}/{entry}"
    if base_protocol == "file":
        reason = _local_refusal(_split(uri)[1], base_path)
        if reason:
            _refuse(listing, entry, *reason)
    return uri


def _split(uri: str) -> tuple[str, str]:
    protocol, path = fsspec.core.split_protocol(uri)
    return (protocol or "file"), (path if protocol else os.path.abspath(path))


def _refuse(listing: str, entry: str, reason: str, detail: str) -> NoReturn:
    raise DropError(f"{listing}: entry {entry!r}: {reason} ({detail})")


def _local_refusal(path: str, base_path: str) -> tuple[str, str] | None:
    """Why a local file may not be read as a drop's WARC file (None: it may)."""
    real, real_base = os.path.realpath(path), os.path.realpath(base_path)
    if os.path.commonpath([real, real_base]) != real_base:
        return "symlink_leaves_drop", f"it resolves to {real}"
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return None  # not there yet: observing the shard will say so
    if not stat.S_ISREG(mode):
        return "not_a_regular_file", f"{real} is a {_kind(mode)}"
    return None


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISDIR, "folder")):
        if test(mode):
            return kind
    return "special file"


def _bounded_gunzip(raw: bytes) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as unpacked:
        return unpacked.read(MAX_LISTING_BYTES + 1)


def register_drop(
    store: DatasetStore, drop: CrawlDrop, shard_size: int,
    listing_base: str | None = None, storage_options: dict[str, Any] | None = None,
) -> list[Shard]:
    """Register the drop's unregistered WARC files as new shards; returns the new shards."""
    if shard_size < 1:
        raise DropError(f"shard_size must be at least 1, got {shard_size}")
    registry = load_registry(store, drop.crawl)
    known = {f for shard in registry["shards"] for f in shard["files"]}
    new_files = [f for f in list_warc_files(drop, listing_base, storage_options) if f not in known]
    start = len(registry["shards"])
    shards = [
        Shard(shard_key(drop.crawl, start + i), drop.crawl, start + i,
              tuple(new_files[pos : pos + shard_size]))
        for i, pos in enumerate(range(0, len(new_files), shard_size))
    ]
    if shards:
        registry["shards"].extend(s.to_dict() for s in shards)
        registry["drops"] = sorted(set(registry["drops"]) | {drop.uri})
        registry["updated_at"] = datetime.now(UTC).isoformat()
        store.write_json_atomic(_registry_path(drop.crawl), registry)
    return shards


def open_uri(
    uri: str, storage_options: dict[str, Any] | None = None, max_bytes: int = MAX_WARC_BYTES
) -> BinaryIO:
    """Open a WARC file by URI (a local path or any fsspec URL such as s3://) for reading.

    Only regular files of at most `max_bytes` are opened, and reads stop at the size the file
    had when it was opened (a file that grows, or a device, cannot stream without end)."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    if _split(uri)[0] == "file":
        handle: BinaryIO = open(path, "rb")  # the caller closes it
        mode = os.fstat(handle.fileno()).st_mode
        size = os.fstat(handle.fileno()).st_size
        if not stat.S_ISREG(mode):
            handle.close()
            raise DropError(f"{uri}: not_a_regular_file ({_kind(mode)})")
    else:
        size = int(fs.info(path)["size"])
        handle = fs.open(path, "rb")
    if size > max_bytes:
        handle.close()
        raise DropError(f"{uri}: file_too_large ({size} bytes > {max_bytes})")
    return _Bounded(handle, size)


class _Bounded(io.RawIOBase):
    """A read-only view of a file that never reads past `size` bytes."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        super().__init__()
        self._handle, self.size = handle, size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.size - self._handle.tell())
        return self._handle.read(left if n is None or n < 0 else min(n, left))

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._handle.close()
        super().close()


def observe_files(
    shard: Shard, storage_options: dict[str, Any] | None = None, checksum: bool = True
) -> list[dict]:
    """Size, modification time and (streamed) sha256 of each of the shard's WARC files."""
    observed = []
    for uri in shard.files:
        fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
        try:
            info = fs.info(path)
            digest = _sha256(fs, path) if checksum else None
        except FileNotFoundError as exc:
            raise DropError(f"shard {shard.key}: WARC file missing: {uri}") from exc
        modified = info.get("mtime", info.get("LastModified"))
        observed.append({"uri": uri, "size": int(info["size"]), "sha256": digest,
                         "modified": str(modified) if modified is not None else None})
    return observed


def _sha256(fs: fsspec.AbstractFileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_registry(store: DatasetStore, crawl: str) -> dict:
    """The crawl's registry (`{"crawl", "drops", "shards": [...]}`), empty if none yet."""
    if not CRAWL_NAME.match(crawl):
        raise DropError(f"crawl name {crawl!r}: use letters, digits, '.', '_' and '-' only")
    path = _registry_path(crawl)
    if not store.exists(path):
        return {"crawl": crawl, "drops": [], "shards": []}
    return store.read_json(path)


def registered_shards(store: DatasetStore, crawl: str) -> list[Shard]:
    return [_shard(entry) for entry in load_registry(store, crawl)["shards"]]


def load_shard(store: DatasetStore, key: str) -> Shard:
    """The registered shard with this key (raises DropError if it was never registered)."""
    crawl, index = parse_shard_key(key)
    shards = load_registry(store, crawl)["shards"]
    if index >= len(shards):
        raise DropError(f"shard {key}: not registered in {store.uri(_registry_path(crawl))}")
    return _shard(shards[index])


def _shard(entry: dict) -> Shard:
    return Shard(entry["key"], entry["crawl"], entry["index"], tuple(entry["files"]))


def _fresh_fs(
    uri: str, storage_options: dict[str, Any] | None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of `uri`, without listings cached by earlier calls: fsspec
    shares one s3fs instance per process, and its listing cache never expires, so a
    long-lived sensor would otherwise never see drops or files that appeared since."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    fs.invalidate_cache()
    return fs, path


def _registry_path(crawl: str) -> str:
    return posixpath.join("shards", f"{crawl}.json")


def _drop(fs: fsspec.AbstractFileSystem, path: str) -> CrawlDrop:
    crawl = posixpath.basename(path.rstrip("/"))
    if not CRAWL_NAME.match(crawl):
        raise DropError(f"{fs_uri(fs, path)}: drop folder name is not a crawl name")
    return CrawlDrop(fs_uri(fs, path), crawl)


def _looks_like_drop(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """A listing, or WARC files directly inside (sub-folders may be drops of their own)."""
    return _listing_path(fs, path) is not None or bool(fs.glob(posixpath.join(path, "*.warc.gz")))


def _listing_path(fs: fsspec.AbstractFileSystem, root: str) -> str | None:
    for name in LISTINGS:
        candidate = posixpath.join(root, name)
        if fs.exists(candidate):
            return candidate
    return None


def _warc_files_in(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    files = sorted(fs.glob(posixpath.join(root, "**", "*.warc.gz")))
    if fs_protocol(fs) in ("file", "local"):
        for path in files:
            reason = _local_refusal(path, root)
            if reason:
                _refuse(root, posixpath.relpath(path, root), *reason)
    return files



