"""Tar shards in the webdataset layout: ``<key>.<ext>`` then ``<key>.json``, per sample.

webdataset groups consecutive members by key (the name up to its first dot), so a sample's
files are written next to each other. Headers are deterministic (ustar, mtime 0, root-less
owner, mode 0644): the same samples always give the same bytes. Both directions stream, so
shards can go straight to and from object storage.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from typing import IO, Any

import xxhash

KEY_PATTERN = re.compile(r"[0-9A-Za-z_-]{1,64}")
EXT_PATTERN = re.compile(r"[0-9a-z]{1,8}")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "avif")
FILE_MODE = 0o644


def url_key(url: str) -> str:
    """The key of an image: xxh64 (seed 0) of the UTF-8 URL as 16 lowercase hex chars."""
    return xxhash.xxh64_hexdigest(url.encode("utf-8"))


class ImageTarWriter:
    """Write (image, json) samples to a tar stream; use as a context manager.

    Closing ends the archive but leaves `fileobj` open. Keys must be unique in a shard.
    """

    def __init__(self, fileobj: IO[bytes]) -> None:
        stream = tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
        self._tar = stream  # closed by close()
        self._keys: set[str] = set()

    def __enter__(self) -> ImageTarWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str, image: bytes, meta: dict[str, Any], ext: str = "jpg",
            caption: str | None = None) -> None:
        """Write `<key>.<ext>`, `<key>.txt` when a caption is given (img2dataset's layout),
        then `<key>.json` (sorted keys, UTF-8, no NaN)."""
        _check_name(key, ext)
        if key in self._keys:
            raise ValueError(f"duplicate key in shard: {key!r}")
        body = json.dumps(meta, sort_keys=True, ensure_ascii=False, allow_nan=False)
        self._keys.add(key)
        self._write(f"{key}.{ext}", image)
        if caption is not None:
            self._write(f"{key}.txt", caption.encode("utf-8"))
        self._write(f"{key}.json", body.encode("utf-8"))

    def close(self) -> None:
        self._tar.close()

    def _write(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, FILE_MODE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))  # shares `data`, no copy


def iter_tar_images(fileobj: IO[bytes]) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
    """Yield (key, image bytes, meta) per sample, in shard order, reading as a stream.

    Other files of a sample (e.g. img2dataset's ``.txt``) are ignored; a sample without an
    image or a ``.json`` raises ValueError.
    """
    with tarfile.open(fileobj=fileobj, mode="r|") as tar:
        key, files = None, {}
        for member in tar:
            if not member.isfile():
                continue
            member_key, ext = _split_name(member.name)
            if member_key != key:
                if key is not None:
                    yield _sample(key, files)
                key, files = member_key, {}
            handle = tar.extractfile(member)
            files[ext] = handle.read() if handle else b""
        if key is not None:
            yield _sample(key, files)


def image_members(fileobj: IO[bytes]) -> dict[str, tuple[int, int]]:
    """Where each sample's image sits in a seekable tar: key -> (data offset, size), so one
    image can be read without the rest (its `.json` and `.txt` are not images)."""
    members = {}
    with tarfile.open(fileobj=fileobj, mode="r:") as tar:
        for member in tar:
            key, ext = _split_name(member.name)
            if member.isfile() and ext not in ("json", "txt"):
                members[key] = (member.offset_data, member.size)
    return members


def _check_name(key: str, ext: str) -> None:
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"key must be 1-64 chars of [0-9A-Za-z_-], got {key!r}")
    if not EXT_PATTERN.fullmatch(ext) or ext == "json":
        raise ValueError(f"ext must be 1-8 chars of [0-9a-z] other than json, got {ext!r}")


def _split_name(name: str) -> tuple[str, str]:
    """webdataset's split: key = path up to the first dot of the base name, ext = the rest."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _sample(key: str, files: dict[str, bytes]) -> tuple[str, bytes, dict[str, Any]]:
    image = next((files[ext] for ext in IMAGE_EXTENSIONS if ext in files), None)
    if image is None or "json" not in files:
        raise ValueError(f"sample {key!r} needs an image and a .json, has {sorted(files)}")
    return key, image, json.loads(files["json"])
