"""The dataset store: an fsspec root (a local folder, or `s3://bucket/prefix` through s3fs).

Stage outputs are committed atomically in the same way on every filesystem, including object
stores that have no rename: a stage writes its files into a fresh attempt folder
`<stage>/<partition>/<attempt>/`, then commits by writing `<stage>/<partition>/_CURRENT.json`
(one small object: a single PUT on S3, write-and-rename locally) naming that folder. Readers
go through `_CURRENT.json` only, so they see the old output or the new one, never a mix.

Concurrent attempts at one partition (a retry while a slow run is still writing):

- a commit first checks that every file its manifest names under the attempt folder exists,
  so `_CURRENT.json` never points at an incomplete attempt;
- attempts are named `<UTC start stamp>-<random>` and compared by name at commit: the
  marker is read and replaced with no other writer in between (a lock file locally; a
  conditional PUT on S3, `If-Match` the ETag read, or `If-None-Match: *` for the first
  commit, retried when another commit got in between). An attempt that started *before*
  the committed one is refused (`SupersededAttempt`) and removes its own folder: the
  newer attempt's output stays;
- after a commit, garbage collection removes only attempt folders that are older than the
  committed one *and* were not written to for `gc_grace_seconds` (default one hour, a store
  option). Newer folders, the committed one and recently written ones are left alone, so
  nothing that may still be running or that a marker points at is ever removed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from laion_assets.pipeline.core.files import atomic_local_file

CURRENT = "_CURRENT.json"
GC_GRACE_SECONDS = 3600.0  # an attempt not written to for this long is no longer running
SWAP_TRIES = 20  # conditional PUTs of one marker before giving up on a busy partition


class StoreError(RuntimeError):
    """A dataset store path that is missing or unreadable; the message names it."""


class SupersededAttempt(StoreError):
    """An attempt that finished after a newer attempt of its partition had committed."""


class DatasetStore:
    """Read and write dataset files under one fsspec root."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None,
                 gc_grace_seconds: float = GC_GRACE_SECONDS) -> None:
        self.gc_grace_seconds = gc_grace_seconds
        self.fs, path = fsspec.core.url_to_fs(root, **(storage_options or {}))
        self.root = path.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.protocol = "" if self.is_local else fs_protocol(self.fs)

    def path(self, relative: str) -> str:
        """Filesystem path (no protocol) of a store-relative path."""
        return posixpath.join(self.root, relative) if relative else self.root

    def uri(self, relative: str) -> str:
        """A URI a person or another tool can open (`s3://...` or an absolute local path)."""
        path = self.path(relative)
        return path if self.is_local else f"{self.protocol}://{path}"

    def open(self, relative: str, mode: str = "rb") -> BinaryIO:
        if "w" in mode and self.is_local:
            self.fs.makedirs(posixpath.dirname(self.path(relative)), exist_ok=True)
        return self.fs.open(self.path(relative), mode)

    def exists(self, relative: str) -> bool:
        return self.fs.exists(self.path(relative))

    def listdir(self, relative: str, suffix: str = "") -> list[str]:
        """Names in a store folder ending with `suffix`, sorted; [] when it does not exist.

        Listed fresh: s3fs caches listings for the life of the process, and a long-lived
        sensor must see objects that other processes wrote since.
        """
        path = self.path(relative)
        self.fs.invalidate_cache(path)
        if not self.fs.exists(path):
            return []
        names = (posixpath.basename(p.rstrip("/")) for p in self.fs.ls(path, detail=False))
        return sorted(n for n in names if n.endswith(suffix))

    def read_json(self, relative: str) -> Any:
        try:
            with self.open(relative) as handle:
                return json.load(handle)
        except FileNotFoundError as exc:
            raise StoreError(f"{self.uri(relative)}: not found") from exc
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.uri(relative)}: not valid JSON: {exc}") from exc

    def write_json_atomic(self, relative: str, value: Any) -> None:
        """Write JSON so that readers see the old content or the new, never a partial file."""
        data = json.dumps(value, indent=1, sort_keys=True, default=str).encode()
        if not self.is_local:
            self.fs.pipe_file(self.path(relative), data)  # one PUT: atomic on object stores
            return
        with atomic_local_file(Path(self.path(relative))) as handle:
            handle.write(data)

    def create_json(self, relative: str, value: Any) -> None:
        """Write JSON only where nothing exists yet, atomically; FileExistsError otherwise.

        Locally a hard link of a complete temporary file (fails if the name exists); on S3 a
        PUT with `If-None-Match: *` (the server refuses it if the key exists).
        """
        data = json.dumps(value, indent=1, sort_keys=True, default=str).encode()
        if not self.is_local:
            self.fs.pipe_file(self.path(relative), data, mode="create")
            return
        target = self.path(relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temp = f"{target}.tmp-{uuid.uuid4().hex}"
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, target)
        finally:
            os.unlink(temp)

    def swap_json(self, relative: str, value: Any, accept: Callable[[Any], None]) -> None:
        """Replace JSON at `relative` after `accept(current value or None)` returned, with
        no other writer between that read and the write; `accept` raises to refuse."""
        if self.is_local:
            self._swap_local(relative, value, accept)
        else:
            self._swap_remote(relative, value, accept)

    def _swap_local(self, relative: str, value: Any, accept: Callable[[Any], None]) -> None:
        target = self.path(relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(f"{target}.lock", "a+b") as lock:  # held until the new marker is in place
            fcntl.flock(lock, fcntl.LOCK_EX)
            accept(self.read_json(relative) if os.path.exists(target) else None)
            self.write_json_atomic(relative, value)

    def _swap_remote(self, relative: str, value: Any, accept: Callable[[Any], None]) -> None:
        path = self.path(relative)
        data = json.dumps(value, indent=1, sort_keys=True, default=str).encode()
        for _ in range(SWAP_TRIES):
            self.fs.invalidate_cache(path)
            try:  # the ETag first: content newer than it makes the conditional PUT fail
                condition = {"IfMatch": self.fs.info(path)["ETag"]}
                current = json.loads(self.fs.cat_file(path))
            except FileNotFoundError:
                condition, current = {"mode": "create"}, None
            accept(current)
            try:
                self.fs.pipe_file(path, data, **condition)
                return
            except (FileExistsError, FileNotFoundError):
                continue  # another writer created or removed it since the read
            except OSError as exc:
                if exc.errno == errno.EINVAL and "condition" in str(exc):
                    continue  # If-Match failed: another writer replaced it since the read
                raise
        raise StoreError(f"{self.uri(relative)}: not written: other writers replaced it "
                         f"{SWAP_TRIES} times in a row")

    def read_parquet(self, relative: str, columns: list[str] | None = None) -> pa.Table:
        """Read a parquet file (single-threaded: pyarrow 26 can abort at exit otherwise)."""
        with self.open(relative) as handle:
            return pq.read_table(handle, columns=columns, use_threads=False, pre_buffer=False)

    # -- stage outputs ---------------------------------------------------------------

    def current(self, stage: str, partition: str) -> dict | None:
        """The committed manifest of a stage's partition, or None if nothing is committed."""
        marker = posixpath.join(stage, partition, CURRENT)
        # another process may have committed since this one listed the partition: s3fs would
        # answer from its listing cache (stale size and ETag: FileExpired on reading)
        self.fs.invalidate_cache(self.path(marker))
        return self.read_json(marker) if self.exists(marker) else None

    def require_current(self, stage: str, partition: str) -> dict:
        manifest = self.current(stage, partition)
        if manifest is None:
            raise StoreError(f"{self.uri(posixpath.join(stage, partition))}: nothing committed")
        return manifest

    @contextmanager
    def stage_output(self, stage: str, partition: str) -> Iterator[StageOutput]:
        """A fresh attempt folder; commit it with `output.commit(manifest)`, else it is removed."""
        output = StageOutput(self, stage, partition)
        try:
            yield output
        finally:
            if not output.committed:  # a committed folder is the partition's output: kept
                output.discard()


class StageOutput:
    """The files of one attempt at a stage's partition, invisible until committed."""

    def __init__(self, store: DatasetStore, stage: str, partition: str) -> None:
        self.store, self.stage, self.partition = store, stage, partition
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")  # attempts sort by start time
        self.attempt = f"{stamp}-{uuid.uuid4().hex[:8]}"
        self.folder = posixpath.join(stage, partition, self.attempt)
        self.committed = False

    def file(self, name: str) -> str:
        """Store-relative path of a file of this attempt."""
        return posixpath.join(self.folder, name)

    def open(self, name: str, mode: str = "wb") -> BinaryIO:
        return self.store.open(self.file(name), mode)

    def commit(self, manifest: dict) -> dict:
        """Make this attempt the partition's output; returns the manifest as written.

        Raises StoreError naming a file the manifest lists that this attempt did not write,
        and SupersededAttempt when an attempt that started later has committed already.
        """
        manifest = {**manifest, "attempt": self.attempt, "folder": self.folder,
                    "committed_at": datetime.now(UTC).isoformat()}
        self._require_files(manifest)
        marker = posixpath.join(self.stage, self.partition, CURRENT)
        self.store.swap_json(marker, manifest, self._refuse_if_superseded)
        self.committed = True
        self.collect_garbage()
        return manifest

    def _refuse_if_superseded(self, current: dict | None) -> None:
        if current is not None and str(current.get("attempt", "")) > self.attempt:
            raise SupersededAttempt(
                f"{self.store.uri(self.folder)}: not committed: attempt {current['attempt']} "
                f"of {self.stage} {self.partition} started later and committed at "
                f"{current.get('committed_at')}; its output stays")

    def _require_files(self, manifest: dict) -> None:
        for path in _paths_under(manifest, self.folder + "/"):
            self.store.fs.invalidate_cache(self.store.path(path))
            if not self.store.exists(path):
                raise StoreError(f"{self.store.uri(path)}: named by the manifest of "
                                 f"{self.stage} {self.partition} but not written: not committed")

    def discard(self) -> None:
        path = self.store.path(self.folder)
        if self.store.fs.exists(path):
            self.store.fs.rm(path, recursive=True)

    def collect_garbage(self) -> list[str]:
        """Remove attempts older than this (committed) one and idle for the grace period;
        returns the removed folders' store paths."""
        fs, grace = self.store.fs, self.store.gc_grace_seconds
        parent = self.store.path(posixpath.join(self.stage, self.partition))
        fs.invalidate_cache(parent)
        removed = []
        for entry in fs.ls(parent, detail=True):
            name = posixpath.basename(entry["name"].rstrip("/"))
            # never a newer attempt (it may be running) nor this one (the marker's)
            if entry["type"] != "directory" or name >= self.attempt:
                continue
            if grace > 0 and time.time() - _last_write(fs, entry["name"]) < grace:
                continue  # written to recently: a slow attempt may still be running
            fs.rm(entry["name"], recursive=True)
            removed.append(entry["name"])
        return removed


def _last_write(fs: fsspec.AbstractFileSystem, folder: str) -> float:
    """The latest modification time (epoch seconds) of anything under `folder`."""
    times = [_mtime(info) for info in fs.find(folder, detail=True, withdirs=True).values()]
    return max([t for t in times if t is not None], default=time.time())


def _mtime(info: dict) -> float | None:
    value = info.get("mtime", info.get("LastModified"))
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if value is not None else None


def _paths_under(value: Any, prefix: str) -> Iterator[str]:
    """Every string in a manifest that is a store path under `prefix`."""
    if isinstance(value, str):
        if value.startswith(prefix):
            yield value
    elif isinstance(value, dict | list | tuple):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _paths_under(item, prefix)


def fs_protocol(fs: fsspec.AbstractFileSystem) -> str:
    """A filesystem's main protocol name (`file`, `s3`, ...)."""
    protocol = fs.protocol
    return protocol[0] if isinstance(protocol, tuple | list) else protocol


def fs_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """A path of `fs` as a URI another tool can open (local paths stay plain)."""
    protocol = fs_protocol(fs)
    return path if protocol in ("file", "local") else f"{protocol}://{path}"
