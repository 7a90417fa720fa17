"""The download stage: one fetch result per unique image URL, and the resized images.

Sources are tried in the configured order: `replay` (the drop's own WARC captures, one seek
per image) and `live` (the web, through `fetch_live`). Every body is verified by decoding
(`images.process_image`); the resized images go to webdataset tar files keyed by URL hash.
Re-running a shard keeps earlier successes and permanent failures, and retries only
transient failures (timeouts, 5xx, 429, connection errors) and URLs never tried.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.pipeline.core.files import Folder
from laion_assets.pipeline.core.fingerprint import fingerprint
from laion_assets.pipeline.core.manifests import RESULTS_FILE
from laion_assets.pipeline.download.images import (
    ImagePolicy,
    ImageRejected,
    ProcessedImage,
    process_image,
    tune_for_many_images,
)
from laion_assets.pipeline.download.live import LiveFetchConfig, LiveFetchResult, fetch_live_sync
from laion_assets.pipeline.download.replay import ReplayError, ReplaySource
from laion_assets.pipeline.download.withhold import Withhold, withhold_row
from laion_assets.pipeline.formats.webdataset import ImageTarWriter, iter_tar_images, url_key

SOURCES = ("replay", "live")
# Readers (the safety stage) hold one row group at a time: keep them small at crawl scale.
RESULTS_ROW_GROUP = 65_536
FETCH_RESULTS_SCHEMA = pa.schema(
    [
        pa.field("url", pa.string(), nullable=False),
        pa.field("url_key", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # "ok" or "failed"
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("transient", pa.bool_(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("http_status", pa.int32()),
        pa.field("content_type", pa.string()),
        pa.field("bytes", pa.int64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("format", pa.string()),
        pa.field("frames", pa.int32()),
        pa.field("sha256", pa.string()),
        pa.field("md5", pa.string()),
        pa.field("sha1", pa.string()),
        pa.field("pdq", pa.string()),
        pa.field("pdq_quality", pa.int32()),
        pa.field("resized_width", pa.int32()),
        pa.field("resized_height", pa.int32()),
        pa.field("tar", pa.string()),
        pa.field("fetched_at", pa.timestamp("ms", tz="UTC")),
        pa.field("attempts", pa.int32()),
    ]
)


@dataclass(frozen=True)
class DownloadConfig:
    sources: tuple[str, ...] = SOURCES
    policy: ImagePolicy = field(default_factory=ImagePolicy)
    live: LiveFetchConfig = field(default_factory=LiveFetchConfig)
    images_per_tar: int = 10_000
    progress_seconds: float = 30.0
    decode_workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # 0: inline

    def __post_init__(self) -> None:
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown or not self.sources:
            raise ValueError(f"sources must be a non-empty subset of {SOURCES}, got {unknown}")


@dataclass
class DownloadResult:
    """Counts of every stored result (kept from `previous` or fetched by this call)."""

    rows: int
    counts: Counter[str]  # by status
    failures: Counter[str]  # failed results by reason
    by_source: Counter[str]
    tars: list[str]
    bytes: int  # original bytes of every fetched body
    fingerprint: str  # of (url, status, sha256) over all results: the data version
    kept: int = 0  # results carried over from `previous`
    urls: int = 0  # unique URLs asked for

    @property
    def fetched_this_run(self) -> int:
        return self.rows - self.kept


@dataclass
class Previous:
    """An earlier download of the same shard: its results and a way to read its tars."""

    results: pa.Table
    open_tar: Callable[[str], BinaryIO]


class _Outputs:
    """Fetch results and rotating tar files of one attempt."""

    def __init__(self, folder: Folder, images_per_tar: int, extension: str,
                 withhold: Withhold | None = None) -> None:
        self.folder, self.per_tar, self.extension = folder, images_per_tar, extension
        self.withhold = withhold
        self.rows: list[dict] = []
        self.tars: list[str] = []
        self._tar: ImageTarWriter | None = None
        self._handle: BinaryIO | None = None
        self._in_tar = 0

    def add(self, row: dict, image: bytes | None = None) -> None:
        match = self.withhold(row) if image is not None and self.withhold else None
        if match:
            withhold_row(row, match)
        elif image is not None:
            row["tar"] = self._write_image(row["url_key"], image, row)
        self.rows.append(row)

    def _write_image(self, key: str, image: bytes, row: dict) -> str:
        if self._tar is None or self._in_tar >= self.per_tar:
            self._close_tar()
            name = f"images-{len(self.tars):05d}.tar"
            self._handle = self.folder.open(name, "wb")
            self._tar = ImageTarWriter(self._handle).__enter__()
            self.tars.append(name)
        meta = {k: row[k] for k in ("url", "sha256", "width", "height", "source")}
        self._tar.add(key, image, meta, ext=self.extension)
        self._in_tar += 1
        return self.tars[-1]

    def _close_tar(self) -> None:
        if self._tar is not None:
            self._tar.__exit__(None, None, None)
            self._handle.close()
        self._tar, self._handle, self._in_tar = None, None, 0

    def finish(self) -> int:
        self._close_tar()
        table = pa.Table.from_pylist(self.rows, schema=FETCH_RESULTS_SCHEMA)
        with self.folder.open(RESULTS_FILE, "wb") as sink:
            pq.write_table(table, sink, compression="zstd", row_group_size=RESULTS_ROW_GROUP)
        return table.num_rows


def download_shard(
    urls: Iterable[str],
    output: Folder,
    *,
    config: DownloadConfig = DownloadConfig(),
    replay: ReplaySource | None = None,
    previous: Previous | None = None,
    withhold: Withhold | None = None,
    log: Callable[[str], None] = print,
) -> DownloadResult:
    """Fetch every unique URL once (or keep its earlier result) and write results and tars;
    an image `withhold` names (see `withhold.listed_bytes`) is not stored."""
    wanted = list(dict.fromkeys(urls))
    outputs = _Outputs(output, config.images_per_tar, config.policy.extension, withhold)
    kept = _keep_previous(previous, set(wanted), outputs) if previous else set()
    todo = [u for u in wanted if u not in kept]
    progress = _Progress(len(todo), config.progress_seconds, log)
    with _Decoder(config, outputs, progress) as decoder:
        if "replay" in config.sources and replay is not None:
            last = "live" not in config.sources
            todo = _from_replay(todo, replay, decoder, last)
        if "live" in config.sources and todo:
            _from_live(todo, config, decoder)
        elif todo:
            for url in todo:
                outputs.add(_failed(url, "not_captured", "no capture and live fetching is off"))
    rows = outputs.finish()
    progress.report(final=True)
    stored = outputs.rows
    return DownloadResult(
        rows, Counter(r["status"] for r in stored),
        Counter(r["reason"] for r in stored if r["status"] != "ok"),
        Counter(r["source"] for r in stored if r["source"]), outputs.tars,
        sum(r["bytes"] or 0 for r in stored),
        fingerprint(sorted((r["url"], r["status"], r.get("sha256")) for r in stored)),
        kept=len(kept), urls=len(wanted),
    )


def _keep_previous(previous: Previous, wanted: set[str], outputs: _Outputs) -> set[str]:
    """Copy earlier successes (with their images) and permanent failures; return their URLs."""
    rows = {r["url"]: {**dict.fromkeys(FETCH_RESULTS_SCHEMA.names), **r}  # older: fewer columns
            for r in previous.results.to_pylist() if r["url"] in wanted}
    keep = {u for u, r in rows.items() if r["status"] == "ok" or not r["transient"]}
    for url in keep:
        if rows[url]["status"] != "ok":
            outputs.add(dict(rows[url]))
    ok_keys = {rows[u]["url_key"]: rows[u] for u in keep if rows[u]["status"] == "ok"}
    for tar in sorted({r["tar"] for r in ok_keys.values()}):
        with previous.open_tar(tar) as handle:
            for key, image, _ in iter_tar_images(handle):
                if key in ok_keys:
                    outputs.add(dict(ok_keys.pop(key)), image)
    for row in ok_keys.values():  # an earlier success whose image is gone: fetch it again
        keep.discard(row["url"])
    return keep


def _from_replay(urls: list[str], replay: ReplaySource, decoder: _Decoder, last: bool
                 ) -> list[str]:
    """Serve what the archive holds; return the URLs left for the next source."""
    left = []
    for url in urls:
        try:
            replayed = replay.fetch(url)
        except ReplayError as exc:
            if last:
                decoder.fail(_failed(url, "replay_error", str(exc), "replay"))
            else:
                left.append(url)
            continue
        if replayed is not None and replayed.http_status == 200:
            decoder.submit(url, replayed.body, {"source": "replay", "http_status": 200,
                                                "content_type": replayed.content_type})
        elif not last:
            left.append(url)
        elif replayed is None:
            decoder.fail(_failed(url, "not_captured", "not in the archive", "replay"))
        else:
            decoder.fail(_failed(url, f"http_{replayed.http_status}", "as archived", "replay",
                                 http_status=replayed.http_status))
    return left


def _from_live(urls: list[str], config: DownloadConfig, decoder: _Decoder) -> None:
    def on_result(result: LiveFetchResult) -> None:  # on the event loop: hand off, return
        if result.ok:
            decoder.submit(result.url, result.body, {
                "source": "live", "http_status": result.http_status,
                "content_type": result.content_type, "attempts": result.attempts,
                "fetched_at": result.fetched_at})
        else:
            decoder.fail(_failed(
                result.url, result.reason or "failed", result.detail, "live", result.transient,
                result.http_status, result.attempts, result.content_type, result.fetched_at))

    fetch_live_sync(urls, config.live, on_result)


class _Decoder:
    """Verifies, hashes and resizes bodies in worker processes while fetching goes on.

    Results are written in submission order; at most `4 × workers` bodies wait at once, so a
    fast source is held back rather than buffered without bound.
    """

    def __init__(self, config: DownloadConfig, outputs: _Outputs, progress: _Progress) -> None:
        self.policy, self.outputs, self.progress = config.policy, outputs, progress
        workers = config.decode_workers
        self.pool = (ProcessPoolExecutor(workers, initializer=tune_for_many_images)
                     if workers > 0 else None)
        self.max_pending = 4 * max(workers, 1)
        self.pending: deque[tuple[str, dict, int, Future]] = deque()

    def __enter__(self) -> _Decoder:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if kind is None:
                self._drain(until=0)
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)

    def submit(self, url: str, body: bytes, meta: dict) -> None:
        if self.pool is None:
            self._write(url, meta, len(body), decode(body, self.policy))
            return
        self.pending.append((url, meta, len(body), self.pool.submit(decode, body, self.policy)))
        self._drain(until=self.max_pending)

    def fail(self, row: dict) -> None:
        self.outputs.add(self.progress.done(row))

    def _drain(self, until: int) -> None:
        """Write finished results in order; wait while more than `until` are pending."""
        while self.pending and (len(self.pending) > until or self.pending[0][3].done()):
            url, meta, size, future = self.pending.popleft()
            self._write(url, meta, size, future.result())

    def _write(self, url: str, meta: dict, size: int,
               outcome: ProcessedImage | ImageRejected) -> None:
        source, status = meta["source"], meta.get("http_status")
        attempts, ctype = meta.get("attempts", 1), meta.get("content_type")
        at = meta.get("fetched_at")
        if isinstance(outcome, ImageRejected):
            self.fail(_failed(url, outcome.reason, outcome.detail, source, False, status,
                              attempts, ctype, at, size))
            return
        row = _row(url, "ok", None, "", source, False, status, attempts, ctype, at, size)
        row.update(width=outcome.width, height=outcome.height, format=outcome.format,
                   frames=outcome.frames, sha256=outcome.sha256, md5=outcome.md5,
                   sha1=outcome.sha1,
                   pdq=outcome.pdq, pdq_quality=outcome.pdq_quality,
                   resized_width=outcome.resized_width, resized_height=outcome.resized_height)
        self.outputs.add(self.progress.done(row), outcome.resized)


def decode(body: bytes, policy: ImagePolicy) -> ProcessedImage | ImageRejected:
    """`process_image`, with a rejection returned rather than raised (it crosses processes)."""
    try:
        return process_image(body, policy)
    except ImageRejected as exc:
        return exc


def _failed(url: str, reason: str, detail: str, source: str | None = None,
            transient: bool = False, http_status: int | None = None, attempts: int = 1,
            content_type: str | None = None, fetched_at: datetime | None = None,
            size: int | None = None) -> dict:
    return _row(url, "failed", reason, detail, source, transient, http_status, attempts,
                content_type, fetched_at, size)


def _row(url: str, status: str, reason: str | None, detail: str, source: str | None,
         transient: bool, http_status: int | None, attempts: int, content_type: str | None,
         fetched_at: datetime | None, size: int | None) -> dict:
    return {
        "url": url, "url_key": url_key(url), "status": status, "reason": reason,
        "detail": detail[:500], "transient": transient, "source": source,
        "http_status": http_status, "content_type": content_type, "bytes": size,
        "fetched_at": fetched_at or datetime.now(UTC), "attempts": attempts, "tar": None,
    }


class _Progress:
    """Counts results and logs done / rate / failures by reason every few seconds."""

    def __init__(self, total: int, every: float, log: Callable[[str], None]) -> None:
        self.total, self.every, self.log = total, every, log
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.start = self.last = time.monotonic()

    def done(self, row: dict) -> dict:
        self.counts[row["status"]] += 1
        if row["source"]:
            self.sources[row["source"]] += 1
        if row["status"] != "ok":
            self.failures[row["reason"]] += 1
        if time.monotonic() - self.last >= self.every:
            self.report()
        return row

    def report(self, final: bool = False) -> None:
        self.last = time.monotonic()
        done = sum(self.counts.values())
        rate = done / max(self.last - self.start, 1e-9)
        top = ", ".join(f"{r}: {n}" for r, n in self.failures.most_common(5)) or "none"
        self.log(f"{'done' if final else 'progress'}: {done}/{self.total} fetched "
                 f"({self.counts['ok']} ok), {rate:.1f}/s; failures: {top}")
