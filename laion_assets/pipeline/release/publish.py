"""Releases: immutable, versioned datasets published from the safety stage's shard outputs.

Layout of one version (`version_folder`):

    releases/<name>/v<NNNN>/
      data/part-NNNNN.parquet        LAION's columns (RELEASE_SCHEMA)
      img_emb/part-NNNNN.npy         float16, row-aligned with the data part
      text_emb/part-NNNNN.npy
      provenance/part-NNNNN.parquet  row-aligned with the data part (PROVENANCE_SCHEMA)
      index/<kind>.parquet           lookup indexes (`release_index`)
      removed.parquet                rows of the parent version that this one does not hold
      README.md                      the dataset card
      _CLAIM.json                    who claimed the version number (written first)
      manifest.json                  every file with its sha256; written last: the commit

A version exists only once its manifest is written; nothing is ever rewritten, and a new
version supersedes the old one. Before publishing, every row is matched once more against
the hash lists, URL lists, opt-out lists and the takedown ledger as they are at that moment,
so entries added since the shards were filtered are withheld too (and named in the
changelog).

Concurrency and crashes:

- a publish claims its version number by creating `_CLAIM.json` exclusively (a hard link
  locally, a PUT with `If-None-Match: *` on S3); when another publish claimed it first, it
  tries the next number. Only the claimer writes into the folder, and `manifest.json` is
  created the same exclusive way, so a committed version is never touched again;
- a publish that fails removes its own uncommitted folder; one that is killed leaves it
  behind, claimed: later publishes skip that number (a gap in the version numbers) and
  nobody removes a folder it did not create;
- after the files are written, the lists and the ledger are read again; when they changed
  and match a written row, the version is written again (in its own folder) against the
  new ones, up to RECHECK_TRIES times, so an entry added during a publish is honoured;
- a version with `parent_version` set (a takedown or list-change version) holds its
  parent's rows and source shards (with their data versions) minus what the lists and the
  ledger now match, read from the parent's parts: shards materialized since, or re-run
  with a new data version, enter only through a release run without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import socket
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from laion_assets.pipeline.core.files import HashingWriter
from laion_assets.pipeline.core.manifests import (
    ReleaseManifest,
    SafetyFilteredPairsManifest,
    ShardOutputs,
    SourceShard,
    SyntheticCaptionsManifest,
    read_current,
    require_current,
)
from laion_assets.pipeline.core.store import DatasetStore, StoreError
from laion_assets.pipeline.formats.embeddings import (
    IMAGE_FILE,
    TEXT_FILE,
    NpyRows,
    write_npy_header,
)
from laion_assets.pipeline.formats.webdataset import url_key
from laion_assets.pipeline.release.card import dataset_card
from laion_assets.pipeline.release.index import write_indexes
from laion_assets.pipeline.release.seen import IMAGE_KEY, SeenKeys, image_keys
from laion_assets.pipeline.release.subsets import SubsetRule
from laion_assets.pipeline.safety.lists import SafetyLists, load_lists
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.takedowns import Takedown, ledger_version, read_ledger
from laion_assets.pipeline.safety.verify import listed_pairs
from laion_assets.pipeline.shards.drops import registered_shards

RELEASES = "releases"
MANIFEST = "manifest.json"
REMOVED_FILE = "removed.parquet"
CARD_FILE = "README.md"
CLAIM = "_CLAIM.json"
CLAIM_TRIES = 100  # version numbers tried before a publish gives up
RECHECK_TRIES = 3  # writes of one version before lists that keep changing fail it
ROW_GROUP_ROWS = 16_384
BATCH_ROWS = 65_536  # a shard's passing pairs (and embedding rows) read at a time
SPOOL_CHUNK = 1 << 22  # bytes copied at a time from an embedding spool to its .npy
RELEASE_SCHEMA = pa.schema([
    ("URL", pa.string()), ("TEXT", pa.string()), ("WIDTH", pa.int32()), ("HEIGHT", pa.int32()),
    ("similarity", pa.float32()), ("punsafe", pa.float32()), ("pwatermark", pa.float32()),
    ("LANGUAGE", pa.string()), ("hash", pa.int64()),
    ("AESTHETIC_SCORE", pa.float32()),  # LAION-Aesthetics; null where no head fits the model
])
PROVENANCE_SCHEMA = pa.schema([
    ("hash", pa.int64()), ("crawl", pa.string()), ("shard", pa.string()),
    ("warc_file", pa.string()), ("warc_record_offset", pa.int64()),
    ("warc_record_id", pa.string()), ("page_url", pa.string()),
    ("capture_time", pa.timestamp("ms", tz="UTC")), ("fetch_source", pa.string()),
    ("fetched_at", pa.timestamp("ms", tz="UTC")), ("sha256", pa.string()), ("md5", pa.string()),
    ("sha1", pa.string()), ("pdq", pa.string()), ("pdq_quality", pa.int32()),
    ("model", pa.string()), ("extracted_run_id", pa.string()),
    ("downloaded_run_id", pa.string()), ("scored_run_id", pa.string()),
    ("safety_run_id", pa.string()),
])
# LAION-COCO's caption columns, in releases that opt in (`ReleaseConfig.captions`)
CAPTION_FIELDS = [("top_caption", pa.string()), ("all_captions", pa.list_(pa.string())),
                  ("all_similarities", pa.list_(pa.float32()))]
HASH_COLUMNS = ("sha256", "md5", "sha1", "pdq", "pdq_quality")  # what the lists match on
NOT_IN_SOURCES = ("not_in_sources", "not among the selected shards' passing pairs")
REMOVED_SCHEMA = pa.schema([("hash", pa.int64()), ("URL", pa.string()), ("rule", pa.string()),
                            ("reason", pa.string())])


class ReleaseError(RuntimeError):
    """A release that cannot be published; the message says why."""


@dataclass(frozen=True)
class ReleaseConfig:
    name: str = "laion-assets"
    crawls: tuple[str, ...] = ()  # empty: every crawl with registered shards
    shards: tuple[str, ...] = ()  # empty: every materialized shard of the crawls
    dedup_by_sha256: bool = False  # also keep one pair per image (first shard wins)
    rows_per_part: int = 1_000_000
    notes: str = ""  # a line for the changelog (e.g. why this version was cut)
    # >0: keep version N's rows and source shards minus what lists and ledger now match (a
    # takedown or list-change version); crawls and shards are then ignored
    parent_version: int = 0
    # LAION-style subset of the passing pairs (language, aesthetic, punsafe, pwatermark,
    # per-language similarity) of the source shards' passing pairs (a parent version's rows
    # are kept as they are); recorded in the manifest's config, stated on the card
    subset: SubsetRule = field(default_factory=SubsetRule)
    # crawls whose synthetic captions (the `synthetic_captions` stage) the release carries as
    # LAION-COCO's columns; non-empty adds the columns (null for other crawls' rows)
    captions: tuple[str, ...] = ()


def release_schema(captions: bool) -> pa.Schema:
    """LAION's columns, plus LAION-COCO's caption columns when the release carries them."""
    return pa.schema([*RELEASE_SCHEMA, *(CAPTION_FIELDS if captions else [])])


# -- reading -------------------------------------------------------------------------------


def version_folder(name: str, version: int) -> str:
    return posixpath.join(RELEASES, name, f"v{version:04d}")


def list_releases(store: DatasetStore) -> list[str]:
    """Release names that have at least one committed version."""
    return [n for n in store.listdir(RELEASES) if list_versions(store, n)]


def list_versions(store: DatasetStore, name: str) -> list[int]:
    """Committed versions of a release (their manifest exists), ascending."""
    names = store.listdir(posixpath.join(RELEASES, name))
    versions = [int(n[1:]) for n in names if n.startswith("v") and n[1:].isdigit()]
    return sorted(v for v in versions
                  if store.exists(posixpath.join(version_folder(name, v), MANIFEST)))


def read_manifest(store: DatasetStore, name: str, version: int) -> dict:
    return store.read_json(posixpath.join(version_folder(name, version), MANIFEST))


def read_release(store: DatasetStore, name: str, version: int) -> ReleaseManifest:
    """A committed version's manifest, typed."""
    return ReleaseManifest.from_json(read_manifest(store, name, version))


def verify_files(store: DatasetStore, manifest: ReleaseManifest | dict) -> list[str]:
    """Problems found re-hashing every file a manifest lists (empty: all match)."""
    manifest = ReleaseManifest.of(manifest)
    problems = []
    for relative, facts in manifest.files.items():
        path = manifest.path(relative)
        try:
            with store.open(path) as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
        except FileNotFoundError:
            problems.append(f"{relative}: missing")
            continue
        if digest != facts["sha256"]:
            problems.append(f"{relative}: sha256 {digest[:12]}…, manifest {facts['sha256'][:12]}…")
    return problems


# -- selecting source shards ---------------------------------------------------------------


def known_crawls(store: DatasetStore) -> list[str]:
    """Crawls with a shard registry in the store."""
    return [n.removesuffix(".json") for n in store.listdir("shards", ".json")]


def select_shards(store: DatasetStore, config: ReleaseConfig) -> tuple[list[str], dict]:
    """Source shards (materialized through the safety stage) and coverage per crawl."""
    crawls = list(config.crawls) or known_crawls(store)
    coverage, chosen = {}, []
    for crawl in crawls:
        keys = [s.key for s in registered_shards(store, crawl)]
        wanted = [k for k in keys if not config.shards or k in config.shards]
        done = [k for k in wanted
                if read_current(store, SafetyFilteredPairsManifest, k) is not None]
        coverage[crawl] = {"known": len(keys), "included": len(done)}
        chosen.extend(done)
    unknown = set(config.shards) - set(chosen)
    if unknown:
        raise ReleaseError(f"shards not materialized through safety_filtered_pairs: "
                           f"{', '.join(sorted(unknown))}")
    if not chosen:
        raise ReleaseError(f"no shard of {crawls or 'any crawl'} has safety_filtered_pairs yet")
    return chosen, coverage


# -- publishing ------------------------------------------------------------------------------


class _Part:
    """One part being written, streamed: data and provenance rows go to their parquet files a
    row group at a time, embedding rows to local spool files until the part's row count (in
    the `.npy` header) is known. Memory holds at most one row group, whatever the part size."""

    def __init__(self, publisher: _Publisher, name: str) -> None:
        self.publisher, self.name = publisher, name
        self.rows = 0
        self.dim: int | None = None
        self.buffered: list[tuple[pa.Table, pa.Table]] = []  # < ROW_GROUP_ROWS rows
        self.buffered_rows = 0
        self.writers: list[tuple[HashingWriter, pq.ParquetWriter]] = []
        self.spools: list[BinaryIO] = []

    def add(self, data: pa.Table, provenance: pa.Table, image: np.ndarray,
            text: np.ndarray) -> None:
        if not self.writers:
            self._open()
        if self.dim is None:
            self.dim = image.shape[1]
        for spool, array in zip(self.spools, (image, text), strict=True):
            spool.write(np.ascontiguousarray(array, dtype="<f2").tobytes())
        self.buffered.append((data.cast(self.publisher.schema),
                              provenance.cast(PROVENANCE_SCHEMA)))
        self.buffered_rows += data.num_rows
        self.rows += data.num_rows
        if self.buffered_rows >= ROW_GROUP_ROWS:
            self._write_row_groups(final=False)

    def close(self) -> None:
        """Write what is buffered, the `.npy` files, and close every file of the part."""
        if not self.writers:
            self._open()
        self._write_row_groups(final=True)
        for (sink, writer), relative in zip(self.writers, self._parquet_names(), strict=True):
            writer.close()
            sink.close()
            self.publisher.files[relative]["rows"] = self.rows
        for spool, kind in zip(self.spools, ("img_emb", "text_emb"), strict=True):
            self._npy(f"{kind}/{self.name}.npy", spool)
            spool.close()

    def _parquet_names(self) -> tuple[str, str]:
        return f"data/{self.name}.parquet", f"provenance/{self.name}.parquet"

    def _open(self) -> None:
        schemas = (self.publisher.schema, PROVENANCE_SCHEMA)
        for relative, schema in zip(self._parquet_names(), schemas, strict=True):
            sink = self.publisher.open(relative)
            self.writers.append((sink, pq.ParquetWriter(sink, schema, compression="zstd")))
        self.spools = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]

    def _write_row_groups(self, final: bool) -> None:
        """Buffered rows out in row groups of ROW_GROUP_ROWS (small: a lookup reads one);
        a remainder smaller than that stays buffered unless `final`."""
        if not self.buffered:
            return
        # one contiguous chunk a column: the file's pages (and where a dictionary falls back
        # to plain encoding) then depend on the rows only, not on how they were batched
        tables = [pa.concat_tables(t).combine_chunks()
                  for t in zip(*self.buffered, strict=True)]
        whole = tables[0].num_rows if final else (
            tables[0].num_rows // ROW_GROUP_ROWS * ROW_GROUP_ROWS)
        for (_, writer), table in zip(self.writers, tables, strict=True):
            if whole:
                writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
        rest = tables[0].num_rows - whole
        self.buffered = [(tables[0].slice(whole), tables[1].slice(whole))] if rest else []
        self.buffered_rows = rest

    def _npy(self, relative: str, spool: BinaryIO) -> None:
        with self.publisher.open(relative) as handle:
            write_npy_header(handle, self.rows, self.dim or 0)
            spool.seek(0)
            while chunk := spool.read(SPOOL_CHUNK):
                handle.write(chunk)
        self.publisher.files[relative]["rows"] = self.rows


class _Publisher:
    def __init__(self, store: DatasetStore, folder: str, rows_per_part: int,
                 schema: pa.Schema = RELEASE_SCHEMA) -> None:
        self.store, self.folder, self.rows_per_part = store, folder, rows_per_part
        self.schema = schema
        self.files: dict[str, dict] = {}
        self.parts = 0
        self.rows = 0
        self.pending = _Part(self, "part-00000")

    def open(self, relative: str) -> HashingWriter:
        """A file of the version; its sha256 and bytes are recorded when it is closed."""
        handle = self.store.open(posixpath.join(self.folder, relative), "wb")
        return HashingWriter(handle, on_close=lambda w: self._record(relative, w))

    def _record(self, relative: str, writer: HashingWriter) -> None:
        self.files[relative] = {**self.files.get(relative, {}),
                                "sha256": writer.digest.hexdigest(), "bytes": writer.size}

    def add(self, data: pa.Table, provenance: pa.Table, image: np.ndarray,
            text: np.ndarray) -> None:
        """Rows for the release, in slices of at most a row group; a part is closed once it
        holds `rows_per_part` rows."""
        start = 0
        while start < data.num_rows:
            room = self.rows_per_part - self.pending.rows
            stop = min(data.num_rows, start + ROW_GROUP_ROWS, start + room)
            self.pending.add(data.slice(start, stop - start),
                             provenance.slice(start, stop - start), image[start:stop],
                             text[start:stop])
            if self.pending.rows >= self.rows_per_part:
                self.flush()
            start = stop

    def flush(self) -> None:
        part = self.pending
        if not part.rows and self.parts:
            return
        part.close()
        self.parts += 1
        self.rows += part.rows
        self.pending = _Part(self, f"part-{self.parts:05d}")


@dataclass
class PublishContext:
    """What the release is checked against and where it came from."""

    lists: SafetyLists
    ledger: list[Takedown]
    policy: SafetyPolicy
    run_id: str = ""
    log: Callable[[str], None] = print
    batch_rows: int = BATCH_ROWS  # source rows read and matched at a time (bounds memory)


@dataclass(frozen=True)
class PublishHooks:
    """Points of a publish where a caller can act (tests: release two publishes together,
    or change the lists while the files are written)."""

    version_picked: Callable[[int], None] | None = None  # a number picked, not yet claimed
    files_written: Callable[[int], None] | None = None  # every file written, not re-checked


@dataclass
class _Written:
    """A version's files as written, before its card and manifest."""

    publisher: _Publisher
    sources: list[SourceShard]
    coverage: dict
    withheld: Counter
    removed: Counter
    subset_excluded: Counter  # source rows outside the subset, by first failing condition


def publish_release(store: DatasetStore, config: ReleaseConfig, ctx: PublishContext,
                    hooks: PublishHooks | None = None) -> dict:
    """Publish the next version of `config.name`; returns its manifest (already committed)."""
    hooks = hooks or PublishHooks()
    parent = _parent(store, config)
    version = claim_version(store, config.name, ctx.run_id, hooks.version_picked)
    try:
        return _publish_claimed(store, config, ctx, version, parent, hooks)
    except BaseException:
        _abandon(store, version_folder(config.name, version))
        raise


def _publish_claimed(store: DatasetStore, config: ReleaseConfig, ctx: PublishContext,
                     version: int, parent: int | None, hooks: PublishHooks) -> dict:
    """Write the claimed version; re-check the lists and the ledger; commit."""
    folder = version_folder(config.name, version)
    for _ in range(RECHECK_TRIES):
        written = _write_rows(store, config, ctx, folder, parent)
        manifest = _describe(config, version, parent, written, ctx)
        if hooks.files_written is not None:
            hooks.files_written(version)
        fresh = _lists_now(store, ctx)
        if fresh is None:
            return _commit(store, folder, manifest)
        listed = _listed_rows(store, manifest, fresh)
        if not listed:  # nothing written matches the new entries: record them as checked
            return _commit(store, folder, _describe(config, version, parent, written, fresh))
        ctx.log(f"v{version}: lists or ledger changed while writing and match "
                f"{listed} rows: writing it again")
        ctx = fresh
        _clear(store, folder)
    raise ReleaseError(f"{store.uri(folder)}: the lists or the ledger changed while each of "
                       f"{RECHECK_TRIES} writes of this version was being written")


def _listed_rows(store: DatasetStore, manifest: dict, ctx: PublishContext) -> int:
    """How many written rows the lists and the ledger in `ctx` match (a part at a time,
    `ctx.batch_rows` rows matched at a time)."""
    listed = 0
    for _, part in read_parts(store, manifest["folder"], manifest["parts"], HASH_COLUMNS):
        part = part.rename_columns(["pair_id", "url", *HASH_COLUMNS])
        for start in range(0, part.num_rows, ctx.batch_rows):
            hits = listed_pairs(part.slice(start, ctx.batch_rows), ctx.lists, ctx.ledger,
                                ctx.policy)
            listed += len({i for h in hits for i in h.index})
    return listed


def _parent(store: DatasetStore, config: ReleaseConfig) -> int | None:
    versions = list_versions(store, config.name)
    if not config.parent_version:
        return versions[-1] if versions else None
    if config.parent_version not in versions:
        raise ReleaseError(f"{store.uri(version_folder(config.name, config.parent_version))}: "
                           f"not a committed version of {config.name} (committed: "
                           f"{', '.join(f'v{v}' for v in versions) or 'none'})")
    return config.parent_version


def claim_version(store: DatasetStore, name: str, run_id: str = "",
                  picked: Callable[[int], None] | None = None) -> int:
    """Claim the next free version number of `name` by creating its `_CLAIM.json`
    exclusively; a number another publish claimed first is skipped."""
    candidate = _highest_number(store, name) + 1
    for _ in range(CLAIM_TRIES):
        if picked is not None:
            picked(candidate)
        claim = posixpath.join(version_folder(name, candidate), CLAIM)
        try:
            store.create_json(claim, {"run_id": run_id, "host": socket.gethostname(),
                                      "pid": os.getpid(),
                                      "claimed_at": datetime.now(UTC).isoformat()})
            return candidate
        except FileExistsError:
            candidate += 1
    raise ReleaseError(f"{store.uri(posixpath.join(RELEASES, name))}: no free version number "
                       f"up to v{candidate - 1:04d}: other publishes claimed {CLAIM_TRIES} "
                       "in a row")


def _highest_number(store: DatasetStore, name: str) -> int:
    """The highest version number with a folder: committed, being written, or abandoned."""
    names = store.listdir(posixpath.join(RELEASES, name))
    return max((int(n[1:]) for n in names if n.startswith("v") and n[1:].isdigit()), default=0)


def _abandon(store: DatasetStore, folder: str) -> None:
    """Remove this publish's own folder, unless it committed (then it is a version)."""
    store.fs.invalidate_cache(store.path(folder))
    if not store.exists(posixpath.join(folder, MANIFEST)) and store.exists(folder):
        store.fs.rm(store.path(folder), recursive=True)


def _clear(store: DatasetStore, folder: str) -> None:
    """Remove what a write left in this publish's own folder, keeping its claim."""
    store.fs.invalidate_cache(store.path(folder))
    for path in store.fs.ls(store.path(folder), detail=False):
        if posixpath.basename(path.rstrip("/")) != CLAIM:
            store.fs.rm(path, recursive=True)


def _lists_now(store: DatasetStore, ctx: PublishContext) -> PublishContext | None:
    """`ctx` with the lists and the ledger as they are now; None when they are unchanged."""
    lists, ledger = load_lists(store), read_ledger(store)
    if lists.version == ctx.lists.version and ledger_version(ledger) == ledger_version(
            ctx.ledger):
        return None
    return replace(ctx, lists=lists, ledger=ledger)


def _write_rows(store: DatasetStore, config: ReleaseConfig, ctx: PublishContext, folder: str,
                parent: int | None) -> _Written:
    """Every file of the version but its card and manifest."""
    publisher = _Publisher(store, folder, config.rows_per_part, _schema_of(store, config))
    selection = _Selection()
    if config.parent_version:
        kept = read_release(store, config.name, config.parent_version)
        sources, coverage = list(kept.source_shards), kept.coverage
        _add_parent_rows(store, kept, publisher, ctx, selection)
    else:
        shards, coverage = select_shards(store, config)
        sources = []
        for shard in shards:
            manifests = ShardOutputs.require(store, shard)
            sources.append(_with_caption_models(store, _source_entry(shard, manifests),
                                                manifests, config))
            _add_shard(store, manifests, publisher, ctx, config, selection)
            ctx.log(f"{shard}: {publisher.rows + publisher.pending.rows} rows so far")
    publisher.flush()
    index_files = write_indexes(read_parts(store, folder, publisher.parts, ("sha256",)),
                                lambda rel: store.open(posixpath.join(folder, rel), "wb"))
    publisher.files.update(index_files)  # rows, bytes and sha256, as write_indexes hashed them
    removed = _write_removed(store, config.name, parent, publisher, selection, sources)
    return _Written(publisher, sources, coverage, selection.withheld, removed,
                    selection.subset_excluded)


def _schema_of(store: DatasetStore, config: ReleaseConfig) -> pa.Schema:
    """The version's data schema: a takedown version keeps its parent's columns."""
    if config.parent_version:
        parent = read_release(store, config.name, config.parent_version)
        return release_schema(bool(parent.config.get("captions")))
    return release_schema(bool(config.captions))


def _describe(config: ReleaseConfig, version: int, parent: int | None, written: _Written,
              ctx: PublishContext) -> dict:
    """Write the dataset card; returns the manifest naming every file."""
    publisher = written.publisher
    manifest = _manifest(config, version, parent, publisher.folder, publisher, written.sources,
                         written.coverage, written.withheld, written.removed, ctx)
    manifest["subset_excluded"] = dict(written.subset_excluded.most_common())
    with publisher.open(CARD_FILE) as handle:
        handle.write(dataset_card(manifest).encode())
    manifest["files"] = dict(sorted(publisher.files.items()))
    return manifest


def _add_parent_rows(store: DatasetStore, parent: ReleaseManifest, publisher: _Publisher,
                     ctx: PublishContext, selection: _Selection) -> None:
    """The parent version's rows, a row group at a time, less those the lists and the ledger
    match (memory holds one row group of a part, whatever the part's size)."""
    for part in range(parent.parts):
        for data, provenance, image, text in _part_row_groups(store, parent.folder, part):
            columns = {"pair_id": data.column("hash"), "url": data.column("URL")}
            columns.update({c: provenance.column(c) for c in HASH_COLUMNS})
            blocked = _blocked(pa.table(columns), ctx)
            ids = data.column("hash").to_numpy(zero_copy_only=False).astype(np.int64)
            for i, reason in blocked.items():
                selection.withheld[reason[0]] += 1
                selection.withheld_rows[int(ids[i])] = reason
            keep = np.setdiff1d(np.arange(data.num_rows), list(blocked))
            selection.pairs.add(ids[keep])
            if len(keep):
                rows = pa.array(keep, pa.int64())
                publisher.add(data.take(rows), provenance.take(rows), image[keep], text[keep])


def _part_row_groups(store: DatasetStore, folder: str, part: int
                     ) -> Iterator[tuple[pa.Table, pa.Table, np.ndarray, np.ndarray]]:
    """(data rows, provenance rows, image and text embedding rows) of one part of a version,
    row group by row group."""
    name = f"part-{part:05d}"
    with (store.open(f"{folder}/data/{name}.parquet") as data_handle,
          store.open(f"{folder}/provenance/{name}.parquet") as provenance_handle,
          store.open(f"{folder}/img_emb/{name}.npy") as image_handle,
          store.open(f"{folder}/text_emb/{name}.npy") as text_handle):
        data_file = pq.ParquetFile(data_handle, pre_buffer=False)
        provenance = pq.ParquetFile(provenance_handle, pre_buffer=False).iter_batches(
            batch_size=ROW_GROUP_ROWS, use_threads=False)
        image, text = NpyRows(image_handle), NpyRows(text_handle)
        pending = PROVENANCE_SCHEMA.empty_table()
        for group in range(data_file.num_row_groups):
            data = data_file.read_row_group(group, use_threads=False)
            while pending.num_rows < data.num_rows:  # provenance groups may be cut elsewhere
                pending = pa.concat_tables([pending, pa.Table.from_batches(
                    [next(provenance)]).cast(PROVENANCE_SCHEMA)])
            rows = data.num_rows
            yield data, pending.slice(0, rows), image.take(rows), text.take(rows)
            pending = pending.slice(rows)


def _blocked(pairs: pa.Table, ctx: PublishContext) -> dict[int, tuple[str, str]]:
    """Row index -> (rule, detail) of the first mandatory rule that matches it."""
    blocked: dict[int, tuple[str, str]] = {}
    for hits in listed_pairs(pairs, ctx.lists, ctx.ledger, ctx.policy):
        for i, detail in zip(hits.index, hits.detail, strict=True):
            blocked.setdefault(i, (hits.rule, detail))
    return blocked


def _source_entry(shard: str, manifests: ShardOutputs) -> SourceShard:
    """The manifest's `source_shards` entry of one shard."""
    safety = manifests.safe
    return SourceShard(
        shard=shard, data_version=safety.data_version, run_id=safety.run_id,
        stages={s: {"run_id": m.run_id, "data_version": m.data_version}
                for s, m in manifests.by_stage().items()},
        counts=manifests.funnel(), model=safety.model, policy=safety.policy,
        lists_version=safety.lists_version, ledger_version=safety.ledger_version)


@dataclass
class _Selection:
    """What a version has taken and withheld so far, across shards (or the parent's parts):
    pair ids and image digests as compact sorted keys (`SeenKeys`), counts by reason."""

    pairs: SeenKeys = field(default_factory=lambda: SeenKeys(np.int64))
    images: SeenKeys = field(default_factory=lambda: SeenKeys(IMAGE_KEY))
    withheld: Counter = field(default_factory=Counter)
    withheld_rows: dict[int, tuple[str, str]] = field(default_factory=dict)  # listed rows
    subset_excluded: Counter = field(default_factory=Counter)


def _add_shard(store: DatasetStore, manifests: ShardOutputs, publisher: _Publisher,
               ctx: PublishContext, config: ReleaseConfig, selection: _Selection) -> None:
    """The shard's passing pairs that the release takes, `ctx.batch_rows` at a time (pairs
    and embedding rows read a batch at a time: memory holds one batch, whatever the shard)."""
    safety = manifests.safe
    if config.subset.active:
        try:
            config.subset.check_model(str(safety.model.get("model")), safety.shard)
        except ValueError as exc:
            raise ReleaseError(str(exc)) from exc
    captions = _caption_rows(_shard_captions(store, manifests, config))
    for pairs, image, text in _shard_batches(store, safety, ctx.batch_rows):
        keep = _take(pairs, ctx, config, selection)
        if len(keep):
            rows = pairs.take(pa.array(keep, pa.int64()))
            data = _release_rows(rows)
            if config.captions:
                data = _append_captions(data, captions)
            publisher.add(data, _provenance_rows(rows, manifests), image[keep], text[keep])


def _shard_batches(store: DatasetStore, safety: SafetyFilteredPairsManifest, batch_rows: int
                   ) -> Iterator[tuple[pa.Table, np.ndarray, np.ndarray]]:
    """(passing pairs, their image and text embedding rows), `batch_rows` pairs at a time."""
    with (store.open(safety.pairs_file) as pairs_handle,
          store.open(safety.path(IMAGE_FILE)) as image_handle,
          store.open(safety.path(TEXT_FILE)) as text_handle):
        pairs = pq.ParquetFile(pairs_handle, pre_buffer=False)
        image, text = NpyRows(image_handle), NpyRows(text_handle)
        expected = pairs.metadata.num_rows
        for name, rows in ((IMAGE_FILE, image), (TEXT_FILE, text)):
            if rows.count != expected:
                raise ReleaseError(f"{store.uri(safety.path(name))}: {rows.count} rows, but "
                                   f"{store.uri(safety.pairs_file)} holds {expected} pairs")
        for batch in pairs.iter_batches(batch_size=batch_rows, use_threads=False):
            yield pa.Table.from_batches([batch]), image.take(len(batch)), text.take(len(batch))


def _take(pairs: pa.Table, ctx: PublishContext, config: ReleaseConfig,
          selection: _Selection) -> np.ndarray:
    """Rows of a batch the release takes (ascending); counts the others by reason, in row
    order: listed (withheld), outside the subset, a pair or image taken before (withheld)."""
    n = pairs.num_rows
    withheld = np.full(n, None, dtype=object)
    ids = pairs.column("pair_id").to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    for i, reason in _blocked(pairs, ctx).items():
        withheld[i] = reason[0]
        selection.withheld_rows[int(ids[i])] = reason
    listed = withheld != None  # noqa: E711 (elementwise)
    outside = (config.subset.select(pairs) if config.subset.active
               else np.full(n, None, dtype=object))
    outside[listed] = None
    open_ = ~listed & (outside == None)  # noqa: E711
    images = (image_keys(pairs.column("sha256").to_pylist()) if config.dedup_by_sha256
              else None)
    keep, why = _first_seen(ids, images, open_, selection)
    withheld[why != None] = why[why != None]  # noqa: E711
    _count_in_order(selection.withheld, withheld)
    _count_in_order(selection.subset_excluded, outside)
    selection.pairs.add(ids[keep])
    if images is not None:
        selection.images.add(images[keep])
    return keep


def _first_seen(ids: np.ndarray, images: np.ndarray | None, open_: np.ndarray,
                selection: _Selection) -> tuple[np.ndarray, np.ndarray]:
    """(rows taken, per row "duplicate_pair"/"duplicate_image"/None) among the `open_`
    rows: the first row of a pair (and, with `images`, of an image) wins, earlier batches
    and shards first."""
    rows = np.flatnonzero(open_)
    taken_pair = selection.pairs.contains(ids[rows])
    taken_image = (selection.images.contains(images[rows]) if images is not None
                   else np.zeros(len(rows), bool))
    why = np.full(len(ids), None, dtype=object)
    if _repeats(ids[rows]) or (images is not None and _repeats(images[rows])):
        # a pair or image twice within the batch: row by row
        batch_pairs: set[int] = set()
        batch_images: set[bytes] = set()
        for j, i in enumerate(rows):
            if taken_pair[j] or ids[i] in batch_pairs:
                taken_pair[j] = True
            elif images is not None and (taken_image[j] or images[i] in batch_images):
                taken_image[j] = True
            else:
                batch_pairs.add(ids[i])
                if images is not None:
                    batch_images.add(images[i])
    taken_image &= ~taken_pair
    why[rows[taken_pair]] = "duplicate_pair"
    why[rows[taken_image]] = "duplicate_image"
    return rows[~taken_pair & ~taken_image], why


def _repeats(keys: np.ndarray) -> bool:
    ordered = np.sort(keys)
    return bool((ordered[1:] == ordered[:-1]).any())


def _count_in_order(counter: Counter, reasons: np.ndarray) -> None:
    """Add per-row reasons (None: not counted) to `counter`, new reasons in row order (the
    manifest's dicts and the changelog keep that order)."""
    given = reasons[reasons != None]  # noqa: E711
    if len(given):
        series = pl.Series(given.tolist(), dtype=pl.String)
        for reason, count in zip(series.unique(maintain_order=True).to_list(),
                                 series.unique_counts().to_list(), strict=True):
            counter[reason] += count


def _with_caption_models(store: DatasetStore, source: SourceShard, manifests: ShardOutputs,
                         config: ReleaseConfig) -> SourceShard:
    """The source entry, naming the caption models when the shard's crawl opted in."""
    if manifests.raw.crawl not in config.captions:
        return source
    captions = read_current(store, SyntheticCaptionsManifest, source.shard)
    if captions is None:
        return source  # _shard_captions refuses the shard
    return replace(source, captions={
        "data_version": captions.data_version, "run_id": captions.run_id,
        "captioner": captions.captioner, "ranker": captions.ranker,
        "generation": captions.generation})


def _shard_captions(store: DatasetStore, manifests: ShardOutputs, config: ReleaseConfig
                    ) -> pa.Table | None:
    """The shard's synthetic captions when its crawl opted in (None otherwise)."""
    if manifests.raw.crawl not in config.captions:
        return None
    captions = read_current(store, SyntheticCaptionsManifest, manifests.safe.shard)
    if captions is None:
        raise ReleaseError(f"{manifests.safe.shard}: crawl {manifests.raw.crawl} opted in to "
                           "captions, but the shard has no synthetic_captions: materialize it "
                           "(job shard_captions) or leave the crawl out of `captions`")
    return store.read_parquet(captions.file, columns=[c for c, _ in CAPTION_FIELDS] +
                              ["url_key"])


def with_captions(data: pa.Table, captions: pa.Table | None) -> pa.Table:
    """`data` with LAION-COCO's columns from `captions` (by image URL; null where none)."""
    return _append_captions(data, _caption_rows(captions))


@dataclass(frozen=True)
class _CaptionRows:
    """A shard's synthetic captions, with their row by image URL key (built once a shard)."""

    table: pa.Table
    row_of: dict[str, int]


def _caption_rows(captions: pa.Table | None) -> _CaptionRows | None:
    if captions is None:
        return None
    keys = captions.column("url_key").to_pylist()
    return _CaptionRows(captions, {k: i for i, k in enumerate(keys)})


def _append_captions(data: pa.Table, captions: _CaptionRows | None) -> pa.Table:
    if captions is None:
        columns = [pa.nulls(data.num_rows, kind) for _, kind in CAPTION_FIELDS]
    else:
        index = pa.array([captions.row_of.get(url_key(u)) for u in data.column("URL").to_pylist()],
                         pa.int64())
        columns = [captions.table.column(name).take(index).cast(kind)
                   for name, kind in CAPTION_FIELDS]
    for (name, kind), column in zip(CAPTION_FIELDS, columns, strict=True):
        data = data.append_column(pa.field(name, kind), column)
    return data


def _release_rows(rows: pa.Table) -> pa.Table:
    aesthetic = (rows.column("aesthetic") if "aesthetic" in rows.column_names
                 else pa.nulls(rows.num_rows, pa.float32()))  # shards filtered before heads
    aesthetic = pc.if_else(pc.is_nan(aesthetic), None, aesthetic)
    return pa.table({
        "URL": rows.column("url"), "TEXT": rows.column("text"),
        "WIDTH": rows.column("width").cast(pa.int32()),
        "HEIGHT": rows.column("height").cast(pa.int32()),
        "similarity": rows.column("similarity"), "punsafe": rows.column("punsafe"),
        "pwatermark": rows.column("pwatermark"), "LANGUAGE": rows.column("language"),
        "hash": rows.column("pair_id"), "AESTHETIC_SCORE": aesthetic}, schema=RELEASE_SCHEMA)


def _provenance_rows(rows: pa.Table, manifests: ShardOutputs) -> pa.Table:
    n = rows.num_rows
    model = json.dumps(manifests.scored.model, sort_keys=True)
    runs = {"extracted_run_id": manifests.pairs.run_id,
            "downloaded_run_id": manifests.images.run_id,
            "scored_run_id": manifests.scored.run_id, "safety_run_id": manifests.safe.run_id}
    columns = {"hash": rows.column("pair_id")}
    for name in PROVENANCE_SCHEMA.names[1:]:
        if name in rows.column_names:
            columns[name] = rows.column(name)
    columns["model"] = pa.array([model] * n)
    for name, run in runs.items():
        columns[name] = pa.array([run] * n, pa.string())
    table = pa.table(columns)
    return table.select(PROVENANCE_SCHEMA.names).cast(PROVENANCE_SCHEMA)


def read_parts(store: DatasetStore, folder: str, parts: int, provenance: tuple[str, ...] = ()
               ) -> Iterator[tuple[int, pa.Table]]:
    """(part, `hash` and `URL` of its data rows plus the `provenance` columns), part by part."""
    for part in range(parts):
        name = f"part-{part:05d}.parquet"
        table = store.read_parquet(f"{folder}/data/{name}", columns=["hash", "URL"])
        if provenance:
            extra = store.read_parquet(f"{folder}/provenance/{name}", columns=list(provenance))
            for column in provenance:
                table = table.append_column(column, extra.column(column))
        yield part, table


def _write_removed(store: DatasetStore, name: str, parent: int | None, publisher: _Publisher,
                   selection: _Selection, sources: list[SourceShard]) -> Counter:
    """`removed.parquet`: the parent's rows not in this version, each with its reason;
    returns the removals counted by (rule, reason)."""
    gone = _parent_rows_gone(store, name, parent, selection.pairs)
    ids = gone.column("hash").to_pylist()
    excluded = _safety_exclusions(store, sources, set(ids) - set(selection.withheld_rows))
    reasons = [selection.withheld_rows.get(pid) or excluded.get(pid) or NOT_IN_SOURCES
               for pid in ids]
    table = pa.table([gone.column("hash"), gone.column("URL"), [r for r, _ in reasons],
                      [r for _, r in reasons]], schema=REMOVED_SCHEMA).combine_chunks()
    with publisher.open(REMOVED_FILE) as handle:
        pq.write_table(table, handle, compression="zstd")
    publisher.files[REMOVED_FILE]["rows"] = table.num_rows
    return Counter(reasons)


def _parent_rows_gone(store: DatasetStore, name: str, parent: int | None, kept: SeenKeys
                      ) -> pa.Table:
    """`hash` and `URL` of the parent's rows this version does not hold, in the parent's
    order (read a part at a time)."""
    gone = [pa.table({"hash": pa.array([], pa.int64()), "URL": pa.array([], pa.string())})]
    if parent is not None:
        parts = read_release(store, name, parent).parts
        for _, table in read_parts(store, version_folder(name, parent), parts):
            ids = table.column("hash").to_numpy().astype(np.int64, copy=False)
            gone.append(table.filter(pa.array(~kept.contains(ids))).cast(gone[0].schema))
    return pa.concat_tables(gone)


def _safety_exclusions(store: DatasetStore, sources: list[SourceShard], wanted: set[int]
                       ) -> dict[int, tuple[str, str]]:
    """(rule, detail) for pairs the source shards' safety stage now excludes (the first
    exclusion found; each shard's exclusions read a batch at a time)."""
    found: dict[int, tuple[str, str]] = {}
    if not wanted:
        return found
    ids = pa.array(sorted(wanted), pa.int64())
    for source in sources:
        manifest = require_current(store, SafetyFilteredPairsManifest, source.shard)
        with store.open(manifest.exclusions_file) as handle:
            batches = pq.ParquetFile(handle, pre_buffer=False).iter_batches(
                batch_size=BATCH_ROWS, columns=["pair_id", "rule", "detail"], use_threads=False)
            for batch in batches:
                hits = batch.filter(pc.is_in(batch.column("pair_id"), value_set=ids))
                for pid, rule, detail in zip(*(c.to_pylist() for c in hits.columns),
                                             strict=True):
                    found.setdefault(pid, (rule, detail))
    return found


def _manifest(config: ReleaseConfig, version: int, parent: int | None, folder: str,
              publisher: _Publisher, sources: list[SourceShard], coverage: dict,
              withheld: Counter, removed: Counter, ctx: PublishContext) -> dict:
    counts = Counter()
    for source in sources:
        counts.update(source.counts)
    counts["released"] = publisher.rows
    models = {json.dumps(s.model, sort_keys=True) for s in sources}
    by_rule = Counter()
    for (rule, _), n in removed.items():
        by_rule[rule] += n
    change = f"v{version}" + (f" from v{parent}" if parent else " (first version)")
    removed_text = ", ".join(f"{rule} {n}" for rule, n in by_rule.most_common()) or "none"
    changelog = [f"{change}: {publisher.rows} rows; removed since the parent: {removed_text}"]
    changelog += [f"removed {n}: {rule}: {reason}" for (rule, reason), n in removed.most_common()]
    if withheld:
        changelog.append("withheld at publish time: "
                         + ", ".join(f"{r} {n}" for r, n in withheld.most_common()))
    if config.notes:
        changelog.append(config.notes)
    return {
        "name": config.name, "version": version, "parent": parent, "folder": folder,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "run_id": ctx.run_id,
        "rows": publisher.rows, "parts": publisher.parts,
        "counts": dict(counts), "withheld": dict(withheld), "removed_by_reason": dict(by_rule),
        "removed_by_request": {f"{rule}: {reason}": n for (rule, reason), n in removed.items()},
        "changelog": changelog, "coverage": coverage, "config": asdict(config),
        "source_shards": [asdict(s) for s in sources],
        "models": [json.loads(m) for m in sorted(models)],
        "ledger_version": ledger_version(ctx.ledger), "lists_version": ctx.lists.version,
        "policy_at_publish": ctx.policy.to_dict(), "files": {},
    }


def _commit(store: DatasetStore, folder: str, manifest: dict) -> dict:
    path = posixpath.join(folder, MANIFEST)
    try:
        store.create_json(path, manifest)  # exclusive: a committed version is never replaced
    except FileExistsError as exc:
        raise ReleaseError(f"{store.uri(path)} exists: versions are never overwritten") from exc
    return manifest


def latest_manifest(store: DatasetStore, name: str) -> dict:
    versions = list_versions(store, name)
    if not versions:
        raise StoreError(f"{store.uri(posixpath.join(RELEASES, name))}: no committed version")
    return read_manifest(store, name, versions[-1])


def latest_release(store: DatasetStore, name: str) -> ReleaseManifest:
    """The latest committed version of release `name`, typed."""
    return ReleaseManifest.from_json(latest_manifest(store, name))


def released_rows(store: DatasetStore, manifest: ReleaseManifest | dict) -> pa.Table:
    """Every row of a version as (pair_id, url, sha256, md5, sha1, pdq, pdq_quality)."""
    manifest = ReleaseManifest.of(manifest)
    tables = [t for _, t in read_parts(store, manifest.folder, manifest.parts, HASH_COLUMNS)]
    return pa.concat_tables(tables).rename_columns(["pair_id", "url", *HASH_COLUMNS])


def releases_behind_ledger(store: DatasetStore, version: str) -> list[ReleaseManifest]:
    """The latest manifest of every release not yet checked against ledger `version`."""
    latest = (latest_release(store, name) for name in list_releases(store))
    return [m for m in latest if m.ledger_version != version]


def new_entries_note(entries: list[Takedown], manifest: ReleaseManifest) -> str:
    """A changelog line: the ledger entries added since `manifest`'s version, by kind."""
    seen = int(manifest.ledger_version.split(":")[0])
    new = entries[seen:] if seen <= len(entries) else entries
    if not new:
        return f"takedown ledger changed since v{manifest.version}"
    kinds = Counter(e.kind for e in new)
    return (f"takedowns since v{manifest.version}: {len(new)} new ledger entries ("
            + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")")
