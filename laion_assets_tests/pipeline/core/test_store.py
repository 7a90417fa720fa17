import pytest

from laion_assets.pipeline.core.store import DatasetStore, StoreError
from laion_assets.settings import storage_options
from laion_assets_tests import s3 as s3_server

moto_endpoint = s3_server.moto_endpoint
s3 = s3_server.s3


@pytest.fixture
def store(tmp_path) -> DatasetStore:
    return DatasetStore(str(tmp_path / "store"))


def _write(store: DatasetStore, body: bytes, fail: bool = False) -> None:
    with store.stage_output("stage", "crawl/00000") as output:
        with output.open("data.bin") as handle:
            handle.write(body)
        if fail:
            raise RuntimeError("stage failed half way")
        output.commit({"file": output.file("data.bin")})


def _attempts(store: DatasetStore) -> list[str]:
    return sorted(p for p in store.fs.ls(store.path("stage/crawl/00000")) if "_CURRENT" not in p)


def test_nothing_is_visible_before_commit(store):
    assert store.current("stage", "crawl/00000") is None
    with pytest.raises(RuntimeError):
        _write(store, b"half", fail=True)
    assert store.current("stage", "crawl/00000") is None
    assert not store.fs.exists(store.path("stage/crawl/00000")) or _attempts(store) == []


def test_commit_replaces_and_a_failed_attempt_keeps_the_old_output(store):
    _write(store, b"first")
    first = store.require_current("stage", "crawl/00000")
    _write(store, b"second")
    second = store.require_current("stage", "crawl/00000")
    assert first["attempt"] != second["attempt"]
    with store.open(second["file"]) as handle:
        assert handle.read() == b"second"
    assert _attempts(store) == [store.path(second["folder"])]  # the old attempt is gone
    with pytest.raises(RuntimeError):
        _write(store, b"third", fail=True)
    assert store.require_current("stage", "crawl/00000") == second
    assert _attempts(store) == [store.path(second["folder"])]


def test_a_commit_leaves_a_newer_concurrent_attempt_alone(store):
    """Two runs of one shard: the older attempt commits first; the newer one, still writing,
    keeps its files and commits after it."""
    _write(store, b"old")
    with (store.stage_output("stage", "crawl/00000") as first,
          store.stage_output("stage", "crawl/00000") as second):
        assert first.attempt < second.attempt
        with second.open("data.bin") as handle:
            handle.write(b"second")
        with first.open("data.bin") as handle:
            handle.write(b"first")
        first.commit({"file": first.file("data.bin")})
        assert store.exists(second.file("data.bin"))
        second.commit({"file": second.file("data.bin")})
    manifest = store.require_current("stage", "crawl/00000")
    with store.open(manifest["file"]) as handle:
        assert handle.read() == b"second"
    assert [p.rsplit("/", 1)[-1] for p in _attempts(store)] == [second.attempt]


def test_missing_output_names_the_path(store):
    with pytest.raises(StoreError, match="stage/crawl/00001: nothing committed"):
        store.require_current("stage", "crawl/00001")


def test_corrupt_marker_names_the_file(store):
    _write(store, b"x")
    with store.open("stage/crawl/00000/_CURRENT.json", "wb") as handle:
        handle.write(b"{not json")
    with pytest.raises(StoreError, match=r"_CURRENT.json: not valid JSON"):
        store.current("stage", "crawl/00000")


def test_store_on_s3_protocol_server(s3: s3_server.S3Server):
    """The same commit protocol on a real S3-protocol server (moto) on loopback."""
    bucket = s3.bucket()
    store = DatasetStore(f"s3://{bucket}/prefix", storage_options(s3.endpoint))
    _write(store, b"on s3")
    manifest = store.require_current("stage", "crawl/00000")
    with store.open(manifest["file"]) as handle:
        assert handle.read() == b"on s3"
    assert store.uri(manifest["file"]).startswith(f"s3://{bucket}/prefix/stage/")
