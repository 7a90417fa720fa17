"""File helpers: local files written atomically (a temporary name in the same folder, then a
rename), the folder protocol stages write through, and a hashing writer."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Protocol


@contextmanager
def atomic_local_file(path: Path) -> Iterator[BinaryIO]:
    """Open a temporary file beside `path`; it replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not expose unwritten blocks
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


class Folder(Protocol):
    """Where files are opened by name, e.g. a dataset store's attempt folder (`StageOutput`)."""

    def open(self, name: str, mode: str = ...) -> BinaryIO: ...


class LocalFolder:
    """A plain local directory as a `Folder` (created if missing); files opened for writing
    by default, as a stage's output folder opens them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def open(self, name: str, mode: str = "wb") -> BinaryIO:
        return open(self.path / name, mode)


class HashingWriter:
    """A write-only file object that hashes (sha256) and counts what passes to `inner`.

    `close()` closes `inner` when `close_inner`, then calls `on_close(self)` once.
    """

    def __init__(self, inner: BinaryIO, close_inner: bool = True,
                 on_close: Callable[[HashingWriter], None] | None = None) -> None:
        self.inner, self.close_inner, self.on_close = inner, close_inner, on_close
        self.size, self.digest = 0, hashlib.sha256()
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += len(view)
        self.inner.write(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.close_inner:
            self.inner.close()
        if self.on_close is not None:
            self.on_close(self)

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
