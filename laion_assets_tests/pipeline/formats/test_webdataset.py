import io
import json
import tarfile

import pytest

from laion_assets.pipeline.formats.webdataset import (
    ImageTarWriter,
    image_members,
    iter_tar_images,
    url_key,
)

SAMPLES = [
    (url_key("https://example.com/a.jpg"), b"\xff\xd8jpeg-a", {"caption": "a cat", "width": 3}),
    (url_key("https://example.com/b.png"), b"\x89PNG-b", {"caption": "ünïcode ✓", "nsfw": None}),
    ("sample_0002-x", b"", {"caption": "", "nested": {"k": [1, 2.5]}}),
]


def _shard(samples=SAMPLES, exts=("jpg", "png", "jpg")) -> bytes:
    buffer = io.BytesIO()
    with ImageTarWriter(buffer) as writer:
        for (key, image, meta), ext in zip(samples, exts, strict=True):
            writer.add(key, image, meta, ext=ext)
        assert len(writer) == len(samples)
    return buffer.getvalue()


class _Stream(io.RawIOBase):
    """A read-only stream that cannot seek, like an object-store download."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_round_trip_streams_in_order():
    assert list(iter_tar_images(_Stream(_shard()))) == SAMPLES


def test_members_are_consecutive_per_key_with_deterministic_headers():
    with tarfile.open(fileobj=io.BytesIO(_shard())) as tar:
        members = tar.getmembers()
    first, second, third = (key for key, _, _ in SAMPLES)
    assert [m.name for m in members] == [
        f"{first}.jpg",
        f"{first}.json",
        f"{second}.png",
        f"{second}.json",
        f"{third}.jpg",
        f"{third}.json",
    ]
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.mode) == (0, 0, 0, 0o644)
        assert (member.uname, member.gname, member.isfile()) == ("", "", True)


def test_same_input_same_bytes():
    reordered = [(key, image, dict(reversed(meta.items()))) for key, image, meta in SAMPLES]
    assert _shard() == _shard() == _shard(reordered)  # json keys are sorted


def test_json_is_utf8_and_sorted():
    with tarfile.open(fileobj=io.BytesIO(_shard())) as tar:
        body = tar.extractfile(f"{SAMPLES[1][0]}.json").read()
    assert body.decode("utf-8") == json.dumps(SAMPLES[1][2], sort_keys=True, ensure_ascii=False)


@pytest.mark.parametrize("key", ["", "a/b", "a.b", "../x", "a b", "ключ", "k\x00", "x" * 65])
def test_bad_keys_are_rejected(key):
    with ImageTarWriter(io.BytesIO()) as writer, pytest.raises(ValueError):
        writer.add(key, b"img", {})


@pytest.mark.parametrize("ext", ["", "json", "j.pg", "JPG", "../x"])
def test_bad_extensions_are_rejected(ext):
    with ImageTarWriter(io.BytesIO()) as writer, pytest.raises(ValueError):
        writer.add("key", b"img", {}, ext=ext)


def test_duplicate_keys_and_nan_are_rejected():
    with ImageTarWriter(io.BytesIO()) as writer:
        writer.add("key", b"img", {})
        with pytest.raises(ValueError):
            writer.add("key", b"img", {})
        with pytest.raises(ValueError):
            writer.add("other", b"img", {"score": float("nan")})


def test_reader_ignores_extra_files_and_requires_image_and_json():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in [("k1.jpg", b"i1"), ("k1.txt", b"caption"), ("k1.json", b"{}")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert list(iter_tar_images(io.BytesIO(buffer.getvalue()))) == [("k1", b"i1", {})]
    lonely = io.BytesIO()
    with tarfile.open(fileobj=lonely, mode="w") as tar:
        info = tarfile.TarInfo("k2.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(ValueError):
        list(iter_tar_images(io.BytesIO(lonely.getvalue())))


def test_empty_shard():
    assert list(iter_tar_images(io.BytesIO(_shard([], ())))) == []


def test_url_key_is_stable():
    assert url_key("https://example.com/images/cat.jpg") == "fcddd6cc7b2b4f58"
    assert url_key("https://example.com/images/cat.jpg?x=1") != "fcddd6cc7b2b4f58"
    key = url_key("https://例え.jp/画像.png")
    assert len(key) == 16 and int(key, 16) >= 0


def test_image_members_locate_each_image_and_skip_its_json_and_caption():
    buffer = io.BytesIO()
    with ImageTarWriter(buffer) as tar:
        for key, image, meta in SAMPLES:
            tar.add(key, image, meta, caption=meta["caption"])
    members = image_members(io.BytesIO(buffer.getvalue()))
    assert list(members) == [key for key, _, _ in SAMPLES]
    for key, image, _ in SAMPLES:
        offset, size = members[key]
        assert buffer.getvalue()[offset:offset + size] == image
