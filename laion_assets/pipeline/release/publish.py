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
      manifest.json                  every file with its sha256; written last: the commit

A version exists only once its manifest is written; nothing is ever rewritten, and a new
version supersedes the old one. Before publishing, every row is matched once more against
the hash lists, URL lists and the takedown ledger as they are at that moment, so entries
added since the shards were filtered are withheld too (and named in the changelog).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.pipeline.core.store import DatasetStore, StoreError
from laion_assets.pipeline.formats.embeddings import read_embeddings
from laion_assets.pipeline.release.card import dataset_card
from laion_assets.pipeline.release.index import write_indexes
from laion_assets.pipeline.safety.lists import SafetyLists
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.takedowns import Takedown, ledger_version
from laion_assets.pipeline.safety.verify import listed_pairs
from laion_assets.pipeline.shards.drops import registered_shards

RELEASES = "releases"
MANIFEST = "manifest.json"
ROW_GROUP_ROWS = 16_384
STAGES = ("warc_shards", "extracted_pairs", "downloaded_images", "clip_scored_pairs",
          "safety_filtered_pairs")
RELEASE_SCHEMA = pa.schema([
    ("URL", pa.string()), ("TEXT", pa.string()), ("WIDTH", pa.int32()), ("HEIGHT", pa.int32()),
    ("similarity", pa.float32()), ("punsafe", pa.float32()), ("pwatermark", pa.float32()),
    ("LANGUAGE", pa.string()), ("hash", pa.int64()),
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


def verify_files(store: DatasetStore, manifest: dict) -> list[str]:
    """Problems found re-hashing every file a manifest lists (empty: all match)."""
    problems = []
    for relative, facts in manifest["files"].items():
        path = posixpath.join(manifest["folder"], relative)
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
        done = [k for k in wanted if store.current("safety_filtered_pairs", k) is not None]
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


@dataclass
class _Part:
    """Rows waiting to become one part: tables and embedding rows from several shards."""

    data: list[pa.Table] = field(default_factory=list)
    provenance: list[pa.Table] = field(default_factory=list)
    image: list[np.ndarray] = field(default_factory=list)
    text: list[np.ndarray] = field(default_factory=list)
    rows: int = 0


class _Publisher:
    def __init__(self, store: DatasetStore, folder: str, rows_per_part: int) -> None:
        self.store, self.folder, self.rows_per_part = store, folder, rows_per_part
        self.files: dict[str, dict] = {}
        self.parts = 0
        self.rows = 0
        self.pending = _Part()

    def open(self, relative: str) -> _HashingWriter:
        handle = self.store.open(posixpath.join(self.folder, relative), "wb")
        return _HashingWriter(handle, relative, self.files)

    def add(self, data: pa.Table, provenance: pa.Table, image: np.ndarray,
            text: np.ndarray) -> None:
        part = self.pending
        part.data.append(data)
        part.provenance.append(provenance)
        part.image.append(image)
        part.text.append(text)
        part.rows += data.num_rows
        if part.rows >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        part = self.pending
        if not part.rows and self.parts:
            return
        name = f"part-{self.parts:05d}"
        self._parquet(f"data/{name}.parquet", part.data, RELEASE_SCHEMA)
        self._parquet(f"provenance/{name}.parquet", part.provenance, PROVENANCE_SCHEMA)
        self._npy(f"img_emb/{name}.npy", part.image, part.rows)
        self._npy(f"text_emb/{name}.npy", part.text, part.rows)
        self.parts += 1
        self.rows += part.rows
        self.pending = _Part()

    def _parquet(self, relative: str, tables: list[pa.Table], schema: pa.Schema) -> None:
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        with self.open(relative) as handle:  # small row groups: a lookup reads one of them
            pq.write_table(table.cast(schema), handle, compression="zstd",
                           row_group_size=ROW_GROUP_ROWS)
        self.files[relative]["rows"] = table.num_rows

    def _npy(self, relative: str, arrays: list[np.ndarray], rows: int) -> None:
        dim = arrays[0].shape[1] if arrays else 0
        with self.open(relative) as handle:
            header = {"descr": "<f2", "fortran_order": False, "shape": (rows, dim)}
            np.lib.format.write_array_header_1_0(handle, header)
            for array in arrays:
                handle.write(np.ascontiguousarray(array, dtype="<f2").tobytes())
        self.files[relative]["rows"] = rows


class _HashingWriter:
    """A binary sink that records the sha256 and size of what passes through it."""

    def __init__(self, handle: BinaryIO, relative: str, files: dict[str, dict]) -> None:
        self.handle, self.relative, self.files = handle, relative, files
        self.digest, self.bytes = hashlib.sha256(), 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.bytes += len(view)
        return self.handle.write(view)

    def tell(self) -> int:
        return self.bytes

    def flush(self) -> None:
        self.handle.flush()

    @property
    def closed(self) -> bool:
        return self.handle.closed

    def close(self) -> None:
        if not self.handle.closed:
            self.handle.close()
            self.files[self.relative] = {**self.files.get(self.relative, {}),
                                         "sha256": self.digest.hexdigest(), "bytes": self.bytes}

    def __enter__(self) -> _HashingWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class PublishContext:
    """What the release is checked against and where it came from."""

    lists: SafetyLists
    ledger: list[Takedown]
    policy: SafetyPolicy
    run_id: str = ""
    log: Callable[[str], None] = print


def publish_release(store: DatasetStore, config: ReleaseConfig, ctx: PublishContext) -> dict:
    """Publish the next version of `config.name`; returns its manifest (already committed)."""
    shards, coverage = select_shards(store, config)
    versions = list_versions(store, config.name)
    parent = versions[-1] if versions else None
    version = (parent or 0) + 1
    folder = version_folder(config.name, version)
    if store.exists(folder):  # an attempt that never committed: invisible, so replaceable
        store.fs.rm(store.path(folder), recursive=True)
    publisher = _Publisher(store, folder, config.rows_per_part)
    sources, withheld = [], Counter()
    withheld_rows: dict[int, tuple[str, str]] = {}
    seen_pairs: set[int] = set()
    seen_images: set[str] = set()
    for shard in shards:
        manifests = {stage: store.require_current(stage, shard) for stage in STAGES}
        sources.append(_source_entry(shard, manifests))
        _add_shard(store, manifests, publisher, ctx, config, seen_pairs, seen_images,
                   withheld, withheld_rows)
        ctx.log(f"{shard}: {publisher.rows + publisher.pending.rows} rows so far")
    publisher.flush()
    index_files = write_indexes(read_parts(store, folder, publisher.parts, ("sha256",)),
                                lambda rel: store.open(posixpath.join(folder, rel), "wb"))
    publisher.files.update(index_files)  # rows, bytes and sha256, as write_indexes hashed them
    removed = _write_removed(store, config.name, parent, publisher, seen_pairs, withheld_rows,
                             sources)
    manifest = _manifest(config, version, parent, folder, publisher, sources, coverage,
                         withheld, removed, ctx)
    with publisher.open("README.md") as handle:
        handle.write(dataset_card(manifest).encode())
    manifest["files"] = dict(sorted(publisher.files.items()))
    return _commit(store, folder, manifest)


def _source_entry(shard: str, manifests: dict[str, dict]) -> dict:
    safety = manifests["safety_filtered_pairs"]
    return {"shard": shard, "data_version": safety["data_version"], "run_id": safety["run_id"],
            "stages": {s: {"run_id": m.get("run_id"), "data_version": m.get("data_version")}
                       for s, m in manifests.items()},
            "counts": _stage_counts(manifests), "model": safety.get("model"),
            "policy": safety.get("policy"), "lists_version": safety.get("lists_version"),
            "ledger_version": safety.get("ledger_version")}


def _stage_counts(manifests: dict[str, dict]) -> dict[str, int]:
    pairs = manifests["extracted_pairs"]
    return {"pages": int(pairs.get("stats", {}).get("counts", {}).get("html_pages", 0)),
            "candidates": int(pairs["rows"]),
            "fetched": int(manifests["downloaded_images"].get("ok", 0)),
            "scored": int(manifests["clip_scored_pairs"]["rows"]),
            "safe": int(manifests["safety_filtered_pairs"]["rows"])}


def _add_shard(store: DatasetStore, manifests: dict[str, dict], publisher: _Publisher,
               ctx: PublishContext, config: ReleaseConfig, seen_pairs: set[int],
               seen_images: set[str], withheld: Counter, withheld_rows: dict) -> None:
    safety = manifests["safety_filtered_pairs"]
    pairs = store.read_parquet(safety["files"]["pairs.parquet"])
    embeddings = read_embeddings(lambda n: store.open(f"{safety['folder']}/{n}"))
    blocked = {}
    for hits in listed_pairs(pairs, ctx.lists, ctx.ledger, ctx.policy):
        for i, detail in zip(hits.index, hits.detail, strict=True):
            blocked.setdefault(i, (hits.rule, detail))
    keep = []
    ids, sha = pairs.column("pair_id").to_pylist(), pairs.column("sha256").to_pylist()
    for i, (pid, digest) in enumerate(zip(ids, sha, strict=True)):
        if i in blocked:
            withheld[blocked[i][0]] += 1
            withheld_rows[pid] = blocked[i]
        elif pid in seen_pairs:
            withheld["duplicate_pair"] += 1
        elif config.dedup_by_sha256 and digest in seen_images:
            withheld["duplicate_image"] += 1
        else:
            keep.append(i)
            seen_pairs.add(pid)
            seen_images.add(digest)
    if keep:
        rows = pairs.take(pa.array(keep, pa.int64()))
        index = np.asarray(keep)
        publisher.add(_release_rows(rows), _provenance_rows(rows, manifests),
                      np.asarray(embeddings.image[index]), np.asarray(embeddings.text[index]))


def _release_rows(rows: pa.Table) -> pa.Table:
    return pa.table({
        "URL": rows.column("url"), "TEXT": rows.column("text"),
        "WIDTH": rows.column("width").cast(pa.int32()),
        "HEIGHT": rows.column("height").cast(pa.int32()),
        "similarity": rows.column("similarity"), "punsafe": rows.column("punsafe"),
        "pwatermark": rows.column("pwatermark"), "LANGUAGE": rows.column("language"),
        "hash": rows.column("pair_id")}, schema=RELEASE_SCHEMA)


def _provenance_rows(rows: pa.Table, manifests: dict[str, dict]) -> pa.Table:
    n = rows.num_rows
    model = json.dumps(manifests["clip_scored_pairs"].get("model"), sort_keys=True)
    runs = {name: manifests[stage].get("run_id") for name, stage in (
        ("extracted_run_id", "extracted_pairs"), ("downloaded_run_id", "downloaded_images"),
        ("scored_run_id", "clip_scored_pairs"), ("safety_run_id", "safety_filtered_pairs"))}
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
                   kept: set[int], withheld_rows: dict, sources: list[dict]) -> Counter:
    # returns removals counted by (rule, reason)
    """`removed.parquet`: the parent's rows not in this version, each with its reason."""
    rows: list[tuple[int, str]] = []
    if parent is not None:
        parent_parts = read_manifest(store, name, parent)["parts"]
        for _, table in read_parts(store, version_folder(name, parent), parent_parts):
            rows.extend((h, u) for h, u in zip(table.column("hash").to_pylist(),
                                               table.column("URL").to_pylist(), strict=True)
                        if h not in kept)
    excluded = _safety_exclusions(store, sources, {h for h, _ in rows} - set(withheld_rows))
    out, counts = [], Counter()
    for pid, url in rows:
        rule, reason = withheld_rows.get(pid) or excluded.get(pid) or (
            "not_in_sources", "not among the selected shards' passing pairs")
        out.append((pid, url, rule, reason))
        counts[(rule, reason)] += 1
    table = pa.table([[r[i] for r in out] for i in range(4)], schema=REMOVED_SCHEMA)
    with publisher.open("removed.parquet") as handle:
        pq.write_table(table, handle, compression="zstd")
    publisher.files["removed.parquet"]["rows"] = table.num_rows
    return counts


def _safety_exclusions(store: DatasetStore, sources: list[dict], wanted: set[int]
                       ) -> dict[int, tuple[str, str]]:
    """(rule, detail) for pairs the source shards' safety stage now excludes."""
    found: dict[int, tuple[str, str]] = {}
    if not wanted:
        return found
    for source in sources:
        manifest = store.current("safety_filtered_pairs", source["shard"])
        table = store.read_parquet(manifest["files"]["exclusions.parquet"])
        for pid, rule, detail in zip(table.column("pair_id").to_pylist(),
                                     table.column("rule").to_pylist(),
                                     table.column("detail").to_pylist(), strict=True):
            if pid in wanted and pid not in found:
                found[pid] = (rule, detail)
    return found


def _manifest(config: ReleaseConfig, version: int, parent: int | None, folder: str,
              publisher: _Publisher, sources: list[dict], coverage: dict, withheld: Counter,
              removed: Counter, ctx: PublishContext) -> dict:
    counts = Counter()
    for source in sources:
        counts.update(source["counts"])
    counts["released"] = publisher.rows
    models = {json.dumps(s["model"], sort_keys=True) for s in sources}
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
        "source_shards": sources, "models": [json.loads(m) for m in sorted(models)],
        "ledger_version": ledger_version(ctx.ledger), "lists_version": ctx.lists.version,
        "policy_at_publish": ctx.policy.to_dict(), "files": {},
    }


def _commit(store: DatasetStore, folder: str, manifest: dict) -> dict:
    path = posixpath.join(folder, MANIFEST)
    if store.exists(path):
        raise ReleaseError(f"{store.uri(path)} exists: versions are never overwritten")
    store.write_json_atomic(path, manifest)
    return manifest


def latest_manifest(store: DatasetStore, name: str) -> dict:
    versions = list_versions(store, name)
    if not versions:
        raise StoreError(f"{store.uri(posixpath.join(RELEASES, name))}: no committed version")
    return read_manifest(store, name, versions[-1])


def released_rows(store: DatasetStore, manifest: dict) -> pa.Table:
    """Every row of a version as (pair_id, url, sha256, md5, sha1, pdq, pdq_quality)."""
    hashes = ("sha256", "md5", "sha1", "pdq", "pdq_quality")
    tables = [t for _, t in read_parts(store, manifest["folder"], manifest["parts"], hashes)]
    return pa.concat_tables(tables).rename_columns(["pair_id", "url", *hashes])


def releases_behind_ledger(store: DatasetStore, version: str) -> list[dict]:
    """The latest manifest of every release not yet checked against ledger `version`."""
    latest = (latest_manifest(store, name) for name in list_releases(store))
    return [m for m in latest if m["ledger_version"] != version]


def new_entries_note(entries: list[Takedown], manifest: dict) -> str:
    """A changelog line: the ledger entries added since `manifest`'s version, by kind."""
    seen = int(manifest["ledger_version"].split(":")[0])
    new = entries[seen:] if seen <= len(entries) else entries
    if not new:
        return f"takedown ledger changed since v{manifest['version']}"
    kinds = Counter(e.kind for e in new)
    return (f"takedowns since v{manifest['version']}: {len(new)} new ledger entries ("
            + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")")
