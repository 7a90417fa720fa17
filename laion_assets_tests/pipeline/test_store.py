import pytest

from laion_assets.pipeline.store import DatasetStore, StoreError


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


def test_missing_output_names_the_path(store):
    with pytest.raises(StoreError, match="stage/crawl/00001: nothing committed"):
        store.require_current("stage", "crawl/00001")


def test_corrupt_marker_names_the_file(store):
    _write(store, b"x")
    with store.open("stage/crawl/00000/_CURRENT.json", "wb") as handle:
        handle.write(b"{not json")
    with pytest.raises(StoreError, match=r"_CURRENT.json: not valid JSON"):
        store.current("stage", "crawl/00000")


def test_store_on_s3_protocol_server():
    """The same commit protocol on a real S3-protocol server (moto) on loopback."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        options = {"client_kwargs": {"endpoint_url": endpoint}, "key": "test", "secret": "test"}
        store = DatasetStore("s3://laion-test/prefix", options)
        store.fs.mkdir("laion-test")
        _write(store, b"on s3")
        manifest = store.require_current("stage", "crawl/00000")
        with store.open(manifest["file"]) as handle:
            assert handle.read() == b"on s3"
        assert store.uri(manifest["file"]).startswith("s3://laion-test/prefix/stage/")
    finally:
        server.stop()
