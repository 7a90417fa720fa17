import os
import threading
import time

import pytest

from laion_assets.pipeline.core.store import DatasetStore, StoreError, SupersededAttempt
from laion_assets.settings import storage_options
from laion_assets_tests import s3 as s3_server

moto_endpoint = s3_server.moto_endpoint
s3 = s3_server.s3


@pytest.fixture
def store(tmp_path) -> DatasetStore:
    """A store that collects superseded attempts at once (no grace period)."""
    return DatasetStore(str(tmp_path / "store"), gc_grace_seconds=0)


@pytest.fixture(params=["local", "s3"])
def any_store(request, tmp_path) -> DatasetStore:
    """A store with the default grace period, on a local folder and on moto's S3 server."""
    if request.param == "local":
        return DatasetStore(str(tmp_path / "store"))
    server: s3_server.S3Server = request.getfixturevalue("s3")
    return DatasetStore(f"s3://{server.bucket()}/store", storage_options(server.endpoint))


def _write(store: DatasetStore, body: bytes, fail: bool = False) -> None:
    with store.stage_output("stage", "crawl/00000") as output:
        with output.open("data.bin") as handle:
            handle.write(body)
        if fail:
            raise RuntimeError("stage failed half way")
        output.commit({"file": output.file("data.bin")})


def _attempts(store: DatasetStore) -> list[str]:
    store.fs.invalidate_cache(store.path("stage/crawl/00000"))
    return sorted(e["name"].rstrip("/") for e in store.fs.ls(store.path("stage/crawl/00000"),
                                                             detail=True)
                  if e["type"] == "directory")


def _names(store: DatasetStore) -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in _attempts(store)]


def _read_current(store: DatasetStore) -> bytes:
    """The committed output's bytes, read through `_CURRENT.json` (fails if a file is gone)."""
    with store.open(store.require_current("stage", "crawl/00000")["file"]) as handle:
        return handle.read()


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


def test_an_older_attempt_never_replaces_a_newer_committed_one(any_store):
    """A retry (newer attempt) commits while the slow first run (older) is still writing; the
    older one finishing later is refused, removes only its own folder, and the newer output
    stays complete."""
    store = any_store
    with (pytest.raises(SupersededAttempt, match="started later and committed"),
          store.stage_output("stage", "crawl/00000") as slow):
        with slow.open("data.bin") as handle:
            handle.write(b"slow")
        with store.stage_output("stage", "crawl/00000") as retry:
            with retry.open("data.bin") as handle:
                handle.write(b"retry")
            retry.commit({"file": retry.file("data.bin")})
        assert slow.attempt < retry.attempt
        slow.commit({"file": slow.file("data.bin")})
    assert store.require_current("stage", "crawl/00000")["attempt"] == retry.attempt
    assert _read_current(store) == b"retry"
    assert _names(store) == [retry.attempt]  # the refused attempt removed its own folder


def test_an_older_attempt_committing_first_is_superseded_not_deleted(any_store):
    """The other order: the older attempt commits first; with the grace period it does not
    touch the newer one still writing, which then commits over it."""
    store = any_store
    with (store.stage_output("stage", "crawl/00000") as first,
          store.stage_output("stage", "crawl/00000") as second):
        with second.open("data.bin") as handle:
            handle.write(b"second")
        with first.open("data.bin") as handle:
            handle.write(b"first")
        first.commit({"file": first.file("data.bin")})
        assert _read_current(store) == b"first"
        assert store.exists(second.file("data.bin"))
        second.commit({"file": second.file("data.bin")})
    assert _read_current(store) == b"second"
    # the older attempt was written to seconds ago: inside the grace period, so kept
    assert _names(store) == [first.attempt, second.attempt]


def test_concurrent_commits_leave_the_newest_attempt(any_store):
    """Attempts started in order commit all at once from threads: whatever the order the
    commits land in, the marker ends at the newest attempt and every file it names exists."""
    store = any_store
    for _ in range(3):
        outputs = [store.stage_output("stage", "crawl/00000") for _ in range(4)]
        attempts = [context.__enter__() for context in outputs]
        for attempt in attempts:
            with attempt.open("data.bin") as handle:
                handle.write(attempt.attempt.encode())
        barrier, refused = threading.Barrier(len(attempts)), []
        threads = [threading.Thread(target=_commit_at, args=(a, barrier, refused))
                   for a in reversed(attempts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for context in outputs:
            context.__exit__(None, None, None)
        assert _read_current(store) == attempts[-1].attempt.encode()
        assert attempts[-1].attempt not in refused
        assert all(store.exists(a.file("data.bin")) for a in attempts if a.committed)


def _commit_at(attempt, barrier: threading.Barrier, refused: list[str]) -> None:
    barrier.wait()
    try:
        attempt.commit({"file": attempt.file("data.bin")})
    except SupersededAttempt:
        refused.append(attempt.attempt)


def test_garbage_collection_waits_for_the_grace_period(tmp_path):
    store = DatasetStore(str(tmp_path / "store"), gc_grace_seconds=600)
    _write(store, b"first")
    first = store.require_current("stage", "crawl/00000")
    with store.stage_output("stage", "crawl/00000") as abandoned:  # a run that died writing
        with abandoned.open("data.bin") as handle:
            handle.write(b"abandoned")
        abandoned.committed = True  # killed: its own cleanup never runs
    _write(store, b"second")
    second = store.require_current("stage", "crawl/00000")
    assert _names(store) == sorted([first["attempt"], abandoned.attempt, second["attempt"]])
    idle = time.time() - 601
    for folder in (first["folder"], abandoned.folder):
        for root, _, files in os.walk(store.path(folder)):
            for name in [*files, "."]:
                os.utime(os.path.join(root, name), (idle, idle))
    _write(store, b"third")
    third = store.require_current("stage", "crawl/00000")
    # idle and older than the committed one: gone; `second`, written just now: kept
    assert _names(store) == [second["attempt"], third["attempt"]]


def test_a_manifest_naming_an_unwritten_file_is_not_committed(any_store):
    store = any_store
    _write(store, b"first")
    with (pytest.raises(StoreError, match=r"missing\.bin: named by the manifest .* not written"),
          store.stage_output("stage", "crawl/00000") as output):
        with output.open("data.bin") as handle:
            handle.write(b"second")
        output.commit({"file": output.file("data.bin"), "other": output.file("missing.bin")})
    assert _read_current(store) == b"first"
