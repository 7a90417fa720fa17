"""A release version's stored images in img2dataset's webdataset layout, for training
without downloading them again.

    DIR/00000.tar          KEY.jpg (the stored image bytes; .png/.webp kept as stored),
                           KEY.txt (the caption), KEY.json (url, caption, sizes, hashes,
                           scores, the release row's `hash`), per sample, in key order
    DIR/00000.parquet      every sample's JSON fields, plus the rows whose image is missing
                           (status failed_to_download, no key), as img2dataset's parquet
    DIR/00000_stats.json   img2dataset's per-shard stats: count, successes,
                           failed_to_download, failed_to_resize, status_dict, times

Keys are img2dataset's: the tar's number (5 digits) then the sample's index in it. The images
are the download stage's stored (resized) images of each row's source shard, found through the
shard's committed `downloaded_images` manifest; a stored image whose sha256 is not the one the
release recorded (the shard was downloaded again since) is not exported. Rows are checked once
more against the hash lists, URL lists, opt-outs and the takedown ledger as they are now: a
row that matches one is withheld from the export (counted in `status_dict`), even when the
version was cut before the entry was added.

The export refuses a DIR that exists and is not empty (no mixing of two exports); each tar and
stats file appears complete or not at all.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.pipeline.core.files import atomic_local_file
from laion_assets.pipeline.core.manifests import DownloadedImagesManifest, ReleaseManifest
from laion_assets.pipeline.core.manifests import read_current as read_stage
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.formats.webdataset import ImageTarWriter, iter_tar_images
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.takedowns import read_ledger
from laion_assets.pipeline.safety.verify import listed_pairs

SAMPLES_PER_TAR = 10_000  # img2dataset's default number_sample_per_shard
DATA_COLUMNS = ["URL", "TEXT", "WIDTH", "HEIGHT", "similarity", "punsafe", "pwatermark",
                "LANGUAGE", "hash", "AESTHETIC_SCORE"]
PROVENANCE_COLUMNS = ["shard", "sha256", "md5", "sha1", "pdq", "pdq_quality"]
RESULT_COLUMNS = ["url", "url_key", "status", "tar", "sha256", "resized_width",
                  "resized_height"]
NOT_STORED = "no stored image for the URL in the shard's downloaded_images"
CHANGED = "the shard's stored image is not the released one (sha256 differs)"
# img2dataset's per-tar parquet: every sample's JSON fields, and the rows not exported for a
# missing or changed image (status failed_to_download, no key); withheld rows are left out
SAMPLE_SCHEMA = pa.schema([
    ("key", pa.string()), ("status", pa.string()), ("error_message", pa.string()),
    ("url", pa.string()), ("caption", pa.string()), ("width", pa.int32()),
    ("height", pa.int32()), ("original_width", pa.int32()), ("original_height", pa.int32()),
    ("sha256", pa.string()), ("md5", pa.string()), ("sha1", pa.string()),
    ("similarity", pa.float32()), ("punsafe", pa.float32()), ("pwatermark", pa.float32()),
    ("aesthetic_score", pa.float32()), ("language", pa.string()), ("hash", pa.int64()),
    ("shard", pa.string()), ("release", pa.string())])
MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF8", "gif"))


class ExportError(RuntimeError):
    """An export that cannot run; the message names the folder or file and why."""


@dataclass
class ExportResult:
    """What an export wrote: its tars and every row's outcome (`success` or why not)."""

    folder: Path
    tars: list[str] = field(default_factory=list)
    status: Counter[str] = field(default_factory=Counter)

    @property
    def exported(self) -> int:
        return self.status["success"]


def export_images(store: DatasetStore, release: ReleaseManifest, out: Path, *,
                  samples_per_tar: int = SAMPLES_PER_TAR, policy: SafetyPolicy | None = None,
                  progress: Callable[[int], None] | None = None) -> ExportResult:
    """Write `release`'s stored images to `out` (which must be absent or empty).

    `policy` gives the PDQ matching thresholds of the re-check (default: those the version
    was published with); `progress(n)` is called as each part's `n` rows are done.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: exists and is not an empty folder; exports never mix: "
                          "choose a new folder")
    if samples_per_tar < 1:
        raise ExportError(f"samples_per_tar must be at least 1, got {samples_per_tar}")
    out.mkdir(parents=True, exist_ok=True)
    check = _Recheck(store, policy or _published_policy(release))
    with _TarRotation(out, samples_per_tar, f"{release.name}@v{release.version}") as tars:
        for part in range(release.parts):
            table = _part_rows(store, release, part)
            withheld = check.withheld(table)
            rows = table.to_pydict()
            for shard, indexes in _by_shard(rows["shard"], withheld, tars).items():
                _export_shard(store, shard, rows, indexes, tars)
            if progress is not None:
                progress(table.num_rows)
    return ExportResult(out, tars.names, tars.total)


def _published_policy(release: ReleaseManifest) -> SafetyPolicy:
    """The PDQ thresholds the version was published with (the defaults where not recorded)."""
    recorded = release.policy_at_publish
    wanted = {k: recorded[k] for k in ("pdq_max_distance", "pdq_min_quality") if k in recorded}
    return SafetyPolicy(**wanted)


class _Recheck:
    """The mandatory lists and the ledger as they are now."""

    def __init__(self, store: DatasetStore, policy: SafetyPolicy) -> None:
        self.lists, self.ledger, self.policy = load_lists(store), read_ledger(store), policy

    def withheld(self, rows: pa.Table) -> dict[int, str]:
        """Row index -> `withheld: <rule>` for rows a list or the ledger now matches."""
        table = pa.table({"pair_id": rows.column("hash"), "url": rows.column("URL"),
                          **{c: rows.column(c) for c in PROVENANCE_COLUMNS[1:]}})
        found: dict[int, str] = {}
        for hits in listed_pairs(table, self.lists, self.ledger, self.policy):
            for i in hits.index:
                found.setdefault(i, f"withheld: {hits.rule}")
        return found


def _part_rows(store: DatasetStore, release: ReleaseManifest, part: int) -> pa.Table:
    """A part's data rows with the provenance columns the export needs (row-aligned)."""
    name = f"part-{part:05d}.parquet"
    data = store.read_parquet(release.path(f"data/{name}"), columns=DATA_COLUMNS)
    extra = store.read_parquet(release.path(f"provenance/{name}"), columns=PROVENANCE_COLUMNS)
    if extra.num_rows != data.num_rows:
        raise ExportError(f"{store.uri(release.path('provenance/' + name))}: "
                          f"{extra.num_rows} rows, its data part {data.num_rows}")
    for column in PROVENANCE_COLUMNS:
        data = data.append_column(column, extra.column(column))
    return data


def _by_shard(shards: list[str], withheld: dict[int, str], tars: _TarRotation
              ) -> dict[str, list[int]]:
    """The rows to export grouped by source shard, in part order; withheld rows counted."""
    groups: dict[str, list[int]] = {}
    for i, shard in enumerate(shards):
        if i in withheld:
            tars.count(withheld[i])
        else:
            groups.setdefault(shard, []).append(i)
    return groups


def _export_shard(store: DatasetStore, shard: str, rows: dict[str, list], indexes: list[int],
                  tars: _TarRotation) -> None:
    """Write the rows of one shard whose stored image is the released one."""
    manifest = _images_manifest(store, shard)
    results = _stored_results(store, manifest)
    urls, digests = rows["URL"], rows["sha256"]
    wanted: dict[str, list[int]] = {}
    for i in indexes:
        stored = results.get(urls[i])
        if stored is None or stored["status"] != "ok" or not stored["tar"]:
            tars.fail(NOT_STORED, _sample_meta(rows, i, {}))
        elif stored["sha256"] != digests[i]:
            tars.fail(CHANGED, _sample_meta(rows, i, {}))
        else:
            wanted.setdefault(stored["url_key"], []).append(i)
    if not wanted:
        return
    by_key = {results[urls[ix[0]]]["url_key"]: results[urls[ix[0]]] for ix in wanted.values()}
    for tar in sorted({r["tar"] for r in by_key.values()}):
        with store.open(manifest.path(tar)) as handle:
            for key, image in _wanted_images(handle, wanted):
                for i in wanted.pop(key):
                    tars.add(image, _sample_meta(rows, i, by_key[key]), rows["TEXT"][i])
    for ix in wanted.values():  # listed in the results, absent from their tar
        for i in ix:
            tars.fail(NOT_STORED, _sample_meta(rows, i, {}))


def _images_manifest(store: DatasetStore, shard: str) -> DownloadedImagesManifest:
    manifest = read_stage(store, DownloadedImagesManifest, shard)
    if manifest is None:
        raise ExportError(f"shard {shard}: no committed downloaded_images in "
                          f"{store.uri('downloaded_images')}; the release's images are gone")
    return manifest


def _stored_results(store: DatasetStore, manifest: DownloadedImagesManifest
                    ) -> dict[str, dict[str, Any]]:
    """The shard's fetch results by URL (the columns the export needs)."""
    table = store.read_parquet(manifest.results_file, columns=RESULT_COLUMNS)
    return {r["url"]: r for r in table.to_pylist()}


def _wanted_images(handle: IO[bytes], wanted: dict[str, list[int]]
                   ) -> Iterator[tuple[str, bytes]]:
    for key, image, _ in iter_tar_images(handle):
        if key in wanted:
            yield key, image


def _sample_meta(rows: dict[str, list], i: int, stored: dict[str, Any]) -> dict[str, Any]:
    """img2dataset's per-sample JSON fields, with the release's scores and row key."""
    row = {c: values[i] for c, values in rows.items()}
    return {
        "status": "success", "error_message": None, "url": row["URL"], "caption": row["TEXT"],
        "width": stored.get("resized_width"), "height": stored.get("resized_height"),
        "original_width": row["WIDTH"], "original_height": row["HEIGHT"],
        "sha256": row["sha256"], "md5": row["md5"], "sha1": row["sha1"],
        "similarity": _number(row["similarity"]), "punsafe": _number(row["punsafe"]),
        "pwatermark": _number(row["pwatermark"]),
        "aesthetic_score": _number(row["AESTHETIC_SCORE"]), "language": row["LANGUAGE"],
        "hash": row["hash"], "shard": row["shard"],
    }


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def image_extension(image: bytes) -> str:
    """The file extension of stored image bytes, by their magic number."""
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "webp"
    for magic, ext in MAGIC:
        if image.startswith(magic):
            return ext
    raise ExportError(f"stored image of unknown format (starts {image[:12]!r})")


class _TarRotation:
    """`00000.tar`, `00001.tar`…: samples_per_tar samples each, with their stats files."""

    def __init__(self, out: Path, per_tar: int, release: str) -> None:
        self.out, self.per_tar, self.release = out, per_tar, release
        self.width = len(str(per_tar - 1))
        self.names: list[str] = []
        self.total: Counter[str] = Counter()
        self._open: tuple[Any, ImageTarWriter] | None = None
        self._status: Counter[str] = Counter()
        self._rows: list[dict[str, Any]] = []  # the open tar's parquet rows
        self._started = time.time()

    def __enter__(self) -> _TarRotation:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if self._open is not None or (kind is None and not self.names):
            self._close(failed=kind is not None)

    def add(self, image: bytes, meta: dict[str, Any], caption: str) -> None:
        if self._open is not None and self._status["success"] >= self.per_tar:
            self._close(failed=False)
        if self._open is None:
            self._start()
        key = f"{len(self.names) - 1:05d}{self._status['success']:0{self.width}d}"
        meta = {**meta, "key": key, "release": self.release}
        self._open[1].add(key, image, meta, ext=image_extension(image), caption=caption)
        self._rows.append(meta)
        self.count("success")

    def fail(self, reason: str, meta: dict[str, Any]) -> None:
        """A row without a sample: in the parquet as img2dataset lists failed downloads."""
        self._rows.append({**meta, "key": None, "status": "failed_to_download",
                           "error_message": reason, "width": None, "height": None,
                           "release": self.release})
        self.count(reason)

    def count(self, status: str) -> None:
        """A row's outcome, recorded in the open tar's stats (or the next one's)."""
        self._status[status] += 1
        self.total[status] += 1

    def _start(self) -> None:
        name = f"{len(self.names):05d}.tar"
        context = atomic_local_file(self.out / name)
        self._open = (context, ImageTarWriter(context.__enter__()))
        self.names.append(name)
        self._started = time.time()

    def _close(self, failed: bool) -> None:
        if self._open is None:
            self._start()
        context, writer = self._open
        self._open = None
        if failed:
            context.__exit__(RuntimeError, RuntimeError("export failed"), None)
            return
        writer.close()
        context.__exit__(None, None, None)
        stem = self.names[-1].removesuffix(".tar")
        with atomic_local_file(self.out / f"{stem}.parquet") as handle:
            pq.write_table(pa.Table.from_pylist(self._rows, schema=SAMPLE_SCHEMA), handle)
        self._write_stats(stem)
        self._status, self._rows = Counter(), []

    def _write_stats(self, stem: str) -> None:
        status, ended = self._status, time.time()
        failed = sum(n for s, n in status.items() if s in (NOT_STORED, CHANGED))
        stats = {"count": sum(status.values()), "successes": status["success"],
                 "failed_to_download": failed, "failed_to_resize": 0,
                 "withheld": sum(n for s, n in status.items() if s.startswith("withheld")),
                 "duration": round(ended - self._started, 3), "start_time": self._started,
                 "end_time": ended, "status_dict": dict(sorted(status.items())),
                 "release": self.release}
        with atomic_local_file(self.out / f"{stem}_stats.json") as handle:
            handle.write(json.dumps(stats, indent=2, sort_keys=True).encode("utf-8"))
