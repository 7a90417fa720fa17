"""The dataset store: an fsspec root (a local folder, or `s3://bucket/prefix` through s3fs).

Stage outputs are committed atomically in the same way on every filesystem, including object
stores that have no rename: a stage writes its files into a fresh attempt folder
`<stage>/<partition>/<attempt>/`, then commits by writing `<stage>/<partition>/_CURRENT.json`
(one small object: a single PUT on S3, write-and-rename locally) naming that folder. Readers
go through `_CURRENT.json` only, so they see the old output or the new one, never a mix.
Older attempt folders (superseded or abandoned) are removed after each commit; a newer one
may belong to a concurrent run that is still writing, so it is left alone.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, BinaryIO

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

CURRENT = "_CURRENT.json"


class StoreError(RuntimeError):
    """A dataset store path that is missing or unreadable; the message names it."""


class DatasetStore:
    """Read and write dataset files under one fsspec root."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        self.fs, path = fsspec.core.url_to_fs(root, **(storage_options or {}))
        self.root = path.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.protocol = "" if self.is_local else _protocol(self.fs)

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
        target = self.path(relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temp = f"{target}.tmp-{uuid.uuid4().hex}"
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)

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
        except BaseException:
            output.discard()
            raise
        if not output.committed:
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
        """Make this attempt the partition's output; returns the manifest as written."""
        manifest = {**manifest, "attempt": self.attempt, "folder": self.folder,
                    "committed_at": datetime.now(UTC).isoformat()}
        marker = posixpath.join(self.stage, self.partition, CURRENT)
        self.store.write_json_atomic(marker, manifest)
        self.committed = True
        self._remove_other_attempts()
        return manifest

    def discard(self) -> None:
        path = self.store.path(self.folder)
        if self.store.fs.exists(path):
            self.store.fs.rm(path, recursive=True)

    def _remove_other_attempts(self) -> None:
        parent = self.store.path(posixpath.join(self.stage, self.partition))
        for entry in self.store.fs.ls(parent, detail=True):
            name = posixpath.basename(entry["name"].rstrip("/"))
            # only older attempts: a newer one may belong to a concurrent run still writing
            if entry["type"] == "directory" and name < self.attempt:
                self.store.fs.rm(entry["name"], recursive=True)


def _protocol(fs: fsspec.AbstractFileSystem) -> str:
    protocol = fs.protocol
    return protocol[0] if isinstance(protocol, tuple | list) else protocol
