"""Provenance questions: where a row came from, what the filters said, which releases hold it.

`trace(store, url=...)` (or `hash=`, `sha256=`, `domain=`) returns one record per matching
pair with the whole chain, newest decisions first-hand from the stage outputs:

- **releases**: every committed version of every release, found through each version's
  lookup index (`release_index`): the versions that hold the pair (part, row, run id, the
  stage run ids at publish time), the ones that do not, and for a version that removed it
  the rule and reason from its `removed.parquet`;
- **decision and scores** from the shard's `safety_filtered_pairs`: its `scores.parquet`
  row (similarity, punsafe, pwatermark, passed, rules) and its `exclusions.parquet` rows
  (rule, detail, value);
- **fetch**: the `downloaded_images` result of its URL (status, reason, source, HTTP status,
  size, hashes, fetched-at);
- **WARC record** from `extracted_pairs`: file, offset, record id, capture time, page URL;
  with `show_html`, the record is read back (one seek) and ~40 lines of the page around the
  `<img>` that gave the URL are returned;
- **runs**: run id, data version and folder of each stage's committed output.

Matches come from the release indexes and, unless `scan_shards=False`, from a scan of the
registered shards' `extracted_pairs` (pairs that no release holds: the excluded ones, or
shards not released yet); `shards=` limits it. On a local store a scan is a polars lazy
scan with the filter pushed down; on S3 it reads only the filter column of each row group
(ranged reads through the store's filesystem), and the whole row group only where it
matches.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from laion_assets.pipeline.core.manifests import (
    STAGES,
    ClipScoredPairsManifest,
    DownloadedImagesManifest,
    ExtractedPairsManifest,
    ReleaseManifest,
    SafetyFilteredPairsManifest,
    StageManifest,
    read_current,
)
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.formats.charset import decode_html
from laion_assets.pipeline.formats.html import choose_url, image_attributes
from laion_assets.pipeline.formats.http import HttpParseError, parse_response
from laion_assets.pipeline.formats.warc import WarcFormatError, read_record_at
from laion_assets.pipeline.release.index import (
    IndexQueryError,
    ReleaseIndex,
    normalize_query,
)
from laion_assets.pipeline.release.publish import (
    REMOVED_FILE,
    known_crawls,
    list_releases,
    list_versions,
    read_release,
    version_folder,
)
from laion_assets.pipeline.shards.drops import open_uri, registered_shards

KINDS = ("url", "hash", "sha256", "domain")
FETCH_FIELDS = ("status", "reason", "detail", "source", "http_status", "content_type", "bytes",
                "width", "height", "format", "sha256", "md5", "sha1", "pdq", "pdq_quality",
                "fetched_at", "attempts", "transient")
WARC_FIELDS = ("crawl", "warc_file", "warc_record_offset", "warc_record_id", "capture_time",
               "page_url")
RELEASE_RUN_FIELDS = ("extracted_run_id", "downloaded_run_id", "scored_run_id", "safety_run_id")
# what a trace reads from a release's provenance parts up front: the columns that repeat
# within a shard (cheap to decode); the WARC columns and image digests are most of a row
# group's bytes, and the shard's own outputs have them (read from the release only when not)
RELEASE_PROVENANCE = ["hash", "shard", "model", *RELEASE_RUN_FIELDS]
HTML_CONTEXT_LINES = 20
HTML_LINE_CHARS = 240
MAX_PAGE_BYTES = 8 << 20
_IMG_TAG = re.compile(r"""<img\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)


class ProvenanceError(ValueError):
    """Nothing matches, or the question is malformed; the message names what was missing."""


@dataclass(frozen=True)
class _ShardManifests:
    """The committed manifests of one shard's stages after `warc_shards` (None: none)."""

    extracted: ExtractedPairsManifest | None = None
    images: DownloadedImagesManifest | None = None
    scored: ClipScoredPairsManifest | None = None
    safety: SafetyFilteredPairsManifest | None = None

    @classmethod
    def read(cls, store: DatasetStore, shard: str) -> _ShardManifests:
        return cls(read_current(store, ExtractedPairsManifest, shard),
                   read_current(store, DownloadedImagesManifest, shard),
                   read_current(store, ClipScoredPairsManifest, shard),
                   read_current(store, SafetyFilteredPairsManifest, shard))

    def by_stage(self) -> dict[str, StageManifest | None]:
        return dict(zip(STAGES[1:], (self.extracted, self.images, self.scored, self.safety),
                        strict=True))


@dataclass
class _Version:
    name: str
    version: int
    manifest: ReleaseManifest
    rows: dict[int, dict] = field(default_factory=dict)  # hash -> data + provenance row
    index: ReleaseIndex | None = None
    error: str | None = None
    removed: dict[int, dict] | None = None  # hash -> removed.parquet row (read lazily)


@dataclass
class _Scan:
    shards: int = 0  # shards scanned
    crawls: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # shards without a committed output
    rows: dict[tuple[int, str], dict] = field(default_factory=dict)  # (hash, shard) -> row


def trace(store: DatasetStore, *, url: str | None = None, hash: int | str | None = None,
          sha256: str | None = None, domain: str | None = None, show_html: bool = False,
          scan_shards: bool = True, shards: Iterable[str] | None = None,
          limit: int | None = None, storage_options: dict[str, Any] | None = None) -> list[dict]:
    """One record per matching pair and shard it was extracted from (see the module
    docstring; the same URL and text on pages of two shards is one pair, two origins), sorted
    by URL, hash and shard; at most `limit` of them. Raises ProvenanceError when nothing
    matches."""
    kind, value = _question(url=url, hash=hash, sha256=sha256, domain=domain)
    try:
        canonical = normalize_query(kind, value)
    except IndexQueryError as exc:
        raise ProvenanceError(str(exc)) from exc
    versions = _search_releases(store, kind, canonical)
    scan = _scan_shards(store, kind, canonical, shards) if scan_shards else _Scan()
    pairs: dict[tuple[int, str | None], str] = {}  # (hash, shard) -> URL
    for version in versions:
        for pid, row in version.rows.items():
            pairs.setdefault((pid, row.get("shard")), row["URL"])
    for (pid, shard), row in scan.rows.items():
        pairs[(pid, shard)] = row["url"]
    if not pairs:
        raise ProvenanceError(_nothing_found(kind, canonical, versions, scan, scan_shards))
    order = sorted(pairs, key=lambda k: (pairs[k] or "", k[0], k[1] or ""))
    if limit is not None and limit >= 0:
        order = order[:limit]
    by_shard: dict[str | None, list[int]] = {}
    for pid, shard in order:
        by_shard.setdefault(shard, []).append(pid)
    stages: dict[tuple[int, str | None], dict] = {}
    for shard, pids in by_shard.items():
        urls = {pairs[(p, shard)] for p in pids}
        found = {pid: row for (pid, where), row in scan.rows.items() if where == shard}
        for pid, facts in _shard_facts(store, shard, pids, urls, found).items():
            stages[(pid, shard)] = facts
    pages: dict[tuple[str, int], dict] = {}
    all_pids = {pid for pid, _ in pairs}
    records = []
    for pid, shard in order:
        seen = {"url": pairs[(pid, shard)], "shard": shard}
        record = _record(pid, seen, stages[(pid, shard)], versions, store, all_pids)
        if show_html:
            record["html"] = _html_for(record, pages, storage_options)
        records.append(_jsonable(record))
    return records


def _question(**given: Any) -> tuple[str, Any]:
    chosen = [(k, v) for k, v in given.items() if v is not None and str(v).strip() != ""]
    if len(chosen) != 1:
        raise ProvenanceError(f"ask about exactly one of {', '.join(KINDS)} "
                              f"(got {', '.join(k for k, _ in chosen) or 'none'})")
    return chosen[0]


def _nothing_found(kind: str, value: Any, versions: list[_Version], scan: _Scan,
                   scanned: bool) -> str:
    names = sorted({v.name for v in versions})
    plural = "s" if len(versions) != 1 else ""
    where = (f"{len(versions)} release version{plural} searched ({', '.join(names)})"
             if versions else "no release is committed")
    registered = scan.shards + len(scan.missing)
    if not scanned:
        shards = "shards not scanned (--releases-only)"
    elif registered:
        shards = (f"{registered} shards registered ({', '.join(scan.crawls)}), the "
                  f"{scan.shards} with extracted_pairs scanned")
        if scan.missing:
            shown = ", ".join(scan.missing[:5]) + (" …" if len(scan.missing) > 5 else "")
            shards += f", {len(scan.missing)} not extracted yet ({shown})"
    else:
        shards = "no shard registered"
    return f"no such {kind} {value!r} in any release or shard: {where}; {shards}"


# -- releases --------------------------------------------------------------------------------


def _search_releases(store: DatasetStore, kind: str, canonical: Any) -> list[_Version]:
    found = []
    for name in list_releases(store):
        for number in list_versions(store, name):
            manifest = read_release(store, name, number)
            folder = manifest.folder or version_folder(name, number)
            index = ReleaseIndex(lambda rel, folder=folder: store.open(f"{folder}/{rel}"))
            version = _Version(name, number, manifest, index=index)
            try:
                rows = index.find(kind, canonical, provenance_columns=RELEASE_PROVENANCE)
                version.rows = {row["hash"]: row for row in rows}
            except FileNotFoundError as exc:
                version.error = f"{store.uri(folder)}: {exc}"
            found.append(version)
    return found


def _removed(store: DatasetStore, version: _Version, pids: set[int]) -> dict[int, dict]:
    if version.removed is None:
        version.removed = {}
        path = version.manifest.path(REMOVED_FILE)
        if version.manifest.parent is not None and store.exists(path):
            table = read_where(store, path, Where("hash", "in", sorted(pids)))
            version.removed = {row["hash"]: row for row in table.to_pylist()}
    return version.removed


def _release_entries(store: DatasetStore, pid: int, versions: list[_Version],
                     all_pids: set[int]) -> list[dict]:
    entries, removed_in = [], None
    for version in versions:
        entry = {"name": version.name, "version": version.version,
                 "run_id": version.manifest.run_id,
                 "created_at": version.manifest.created_at}
        row = version.rows.get(pid)
        if version.error:
            entry.update(status="unknown", error=version.error)
        elif row is not None:
            entry.update(status="holds", part=row["part"], row=row["row"],
                         from_shard=row.get("shard"),
                         runs={k: row.get(k) for k in RELEASE_RUN_FIELDS})
            captions = _caption_models(version.manifest, row.get("shard"))
            if captions is not None:
                entry["caption_models"] = captions
            removed_in = None
        else:
            gone = _removed(store, version, all_pids).get(pid)
            if gone is not None:
                entry.update(status="removed", rule=gone.get("rule"), reason=gone.get("reason"))
                removed_in = version.version
            else:
                entry.update(status="absent")
                if removed_in is not None:
                    entry["removed_in"] = removed_in
        entries.append(entry)
    return entries


def _caption_models(manifest: ReleaseManifest, shard: str | None) -> dict | None:
    """The caption models of the shard's synthetic captions, when the version carries them."""
    for source in manifest.source_shards:
        if source.shard == shard and source.captions is not None:
            return {k: source.captions[k] for k in ("captioner", "ranker", "generation")}
    return None


# -- shards ----------------------------------------------------------------------------------


def _shard_keys(store: DatasetStore, only: Iterable[str] | None) -> tuple[list[str], list[str]]:
    crawls = known_crawls(store)
    keys = [s.key for crawl in crawls for s in registered_shards(store, crawl)]
    if only is not None:
        wanted = list(dict.fromkeys(only))
        unknown = [k for k in wanted if k not in keys]
        if unknown:
            raise ProvenanceError(f"shards not registered in {store.uri('shards')}: "
                                  f"{', '.join(unknown)}")
        keys = wanted
        crawls = sorted({k.rsplit("/", 1)[0] for k in keys})
    return crawls, keys


def _scan_shards(store: DatasetStore, kind: str, canonical: Any,
                 only: Iterable[str] | None) -> _Scan:
    crawls, keys = _shard_keys(store, only)
    scan = _Scan(crawls=crawls)
    for key in keys:
        pairs = read_current(store, ExtractedPairsManifest, key)
        if pairs is None:
            scan.missing.append(key)
            continue
        scan.shards += 1
        if kind == "sha256":
            images = read_current(store, DownloadedImagesManifest, key)
            if images is None:
                continue
            fetched = read_where(store, images.results_file, Where("sha256", "eq", canonical),
                                 columns=["url"])
            urls = fetched.column("url").to_pylist()
            if not urls:
                continue
            table = read_where(store, pairs.file, Where("url", "in", urls))
        elif kind == "url":
            table = read_where(store, pairs.file, Where("url", "eq", canonical))
        elif kind == "hash":
            table = read_where(store, pairs.file, Where("pair_id", "eq", canonical))
        else:
            pattern = f"^https?://{re.escape(canonical)}(:[0-9]+)?(/|$)"
            table = read_where(store, pairs.file, Where("url", "regex", pattern))
        for row in table.to_pylist():
            scan.rows[(row["pair_id"], key)] = row
    return scan


@dataclass(frozen=True)
class Where:
    """A row filter on one column: equal to a value (`eq`), one of a list (`in`), or a
    string matching a regular expression (`regex`)."""

    column: str
    op: str
    value: Any

    def arrow(self, values: pa.ChunkedArray) -> pa.ChunkedArray:
        if self.op == "eq":
            return pc.equal(values, pa.scalar(self.value, values.type))
        if self.op == "in":
            return pc.is_in(values, value_set=pa.array(self.value, values.type))
        return pc.match_substring_regex(values, self.value)

    def polars(self) -> pl.Expr:
        column = pl.col(self.column)
        if self.op == "eq":
            return column == self.value
        if self.op == "in":
            return column.is_in(list(self.value))
        return column.str.contains(self.value)


def read_where(store: DatasetStore, path: str, where: Where,
               columns: list[str] | None = None) -> pa.Table:
    """The rows of a parquet file where `where` holds (`columns`, or every one): a polars
    scan with the filter pushed down on a local store, else row groups through the store's
    filesystem (`read_where_groups`)."""
    if store.is_local:
        return scan_where(store.path(path), where, columns)
    return read_where_groups(store, path, where, columns)


def scan_where(local: str, where: Where, columns: list[str] | None = None) -> pa.Table:
    """`read_where` on a local file: polars' lazy scan (statistics and predicate pushed
    down, decoding on every core)."""
    frame = pl.scan_parquet(local)
    names = frame.collect_schema().names()
    wanted = names if columns is None else [c for c in columns if c in names]
    if where.column not in names:
        return pq.read_schema(local).empty_table().select(wanted)
    return frame.filter(where.polars()).select(wanted).collect().to_arrow()


def read_where_groups(store: DatasetStore, path: str, where: Where,
                      columns: list[str] | None = None) -> pa.Table:
    """`read_where` a row group at a time through the store's filesystem (S3: ranged reads):
    only the filter column of groups without a match is read, and groups whose int
    statistics exclude an `eq` value are skipped."""
    equals = where.value if where.op == "eq" and isinstance(where.value, int) else None
    with store.open(path) as handle:
        parquet = pq.ParquetFile(handle, pre_buffer=False)
        schema = parquet.schema_arrow
        wanted = None if columns is None else [c for c in columns if c in schema.names]
        if where.column not in schema.names:
            return schema.empty_table() if wanted is None else schema.empty_table().select(wanted)
        position = schema.get_field_index(where.column)
        meta, tables = parquet.metadata, []
        for group in range(meta.num_row_groups):
            if equals is not None:
                stats = meta.row_group(group).column(position).statistics
                if stats is not None and stats.has_min_max and not (
                        stats.min <= equals <= stats.max):
                    continue
            keys = parquet.read_row_group(group, columns=[where.column], use_threads=False)
            hits = where.arrow(keys.column(0))
            if not pc.any(hits).as_py():
                continue
            rows = parquet.read_row_group(group, columns=wanted, use_threads=False)
            tables.append(rows.filter(hits))
    if tables:
        return pa.concat_tables(tables)
    empty = schema.empty_table()
    return empty if wanted is None else empty.select(wanted)


def _shard_facts(store: DatasetStore, shard: str | None, pids: list[int], urls: set[str],
                 scanned: dict[int, dict]) -> dict[int, dict]:
    """Per pair of one shard: its extracted row, fetch result, scores, exclusions, runs."""
    ids = sorted(pids)
    facts: dict[int, dict] = {pid: {"pair": scanned.get(pid), "missing": []} for pid in pids}
    if shard is None:
        for pid in pids:
            facts[pid]["missing"].append("the release row names no shard")
            facts[pid]["manifests"] = _ShardManifests()
        return facts
    manifests = _ShardManifests.read(store, shard)
    for pid in pids:
        facts[pid]["manifests"] = manifests
        for stage, manifest in manifests.by_stage().items():
            if manifest is None:
                facts[pid]["missing"].append(f"{stage}: nothing committed for shard {shard}")
    extracted = manifests.extracted
    need = [p for p in pids if facts[p]["pair"] is None]
    if extracted is not None and need:
        table = read_where(store, extracted.file, Where("pair_id", "in", need))
        for row in table.to_pylist():
            facts[row["pair_id"]]["pair"] = row
    fetch: dict[str, dict] = {}
    images = manifests.images
    if images is not None:
        table = read_where(store, images.results_file, Where("url", "in", sorted(urls)))
        fetch = {row["url"]: row for row in table.to_pylist()}
    scored: dict[int, dict] = {}
    clip = manifests.scored
    if clip is not None:
        table = read_where(store, clip.ids_file, Where("pair_id", "in", ids))
        scored = {row["pair_id"]: row for row in table.to_pylist()}
    scores: dict[int, dict] = {}
    exclusions: dict[int, list[dict]] = {}
    safety = manifests.safety
    if safety is not None:
        table = read_where(store, safety.scores_file, Where("pair_id", "in", ids))
        scores = {row["pair_id"]: row for row in table.to_pylist()}
        table = read_where(store, safety.exclusions_file, Where("pair_id", "in", ids))
        for row in table.to_pylist():
            exclusions.setdefault(row["pair_id"], []).append(
                {k: row[k] for k in ("rule", "detail", "value")})
    for pid in pids:
        pair = facts[pid]["pair"]
        url = pair["url"] if pair else None
        facts[pid].update(fetch=fetch.get(url) if url else None, clip=scored.get(pid),
                          scores=scores.get(pid), exclusions=exclusions.get(pid, []))
        if extracted is not None and pair is None:
            facts[pid]["missing"].append(
                f"extracted_pairs of {shard} no longer holds pair {pid}")
    return facts


# -- one record ------------------------------------------------------------------------------


def _record(pid: int, seen: dict, facts: dict, versions: list[_Version],
            store: DatasetStore, all_pids: set[int]) -> dict:
    pair = facts.get("pair")
    held = [v for v in versions if pid in v.rows]
    latest = held[-1].rows[pid] if held else None
    manifests = facts.get("manifests") or _ShardManifests()
    source = pair or {}
    if pair is None and latest is not None:  # the shard's outputs are gone: the release's
        location = [(latest["part"], latest["row"])]
        source = held[-1].index.read_rows(location, ["hash"], list(WARC_FIELDS))[0]
    warc = {k: source.get(k) for k in WARC_FIELDS}
    warc["shard"] = seen.get("shard")
    fetch_row = facts.get("fetch")
    scores = facts.get("scores")
    safety = manifests.safety
    if scores is not None:
        decision = "passed" if scores["passed"] else "excluded"
    elif safety is None:
        decision = "not filtered (safety_filtered_pairs not committed)"
    else:
        decision = "not a candidate of the current safety output"
    clip_manifest = manifests.scored
    model = clip_manifest.model if clip_manifest is not None else None
    if model is None and latest and latest.get("model"):
        model = json.loads(latest["model"])
    released = None
    if latest is not None:
        released = {k: latest.get(k) for k in ("TEXT", "WIDTH", "HEIGHT", "similarity",
                                                "punsafe", "pwatermark", "LANGUAGE")}
    return {
        "hash": pid,
        "url": seen["url"],
        "text": pair["text"] if pair else (latest or {}).get("TEXT"),
        "language": pair["language"] if pair else (latest or {}).get("LANGUAGE"),
        "shard": seen.get("shard"),
        "releases": _release_entries(store, pid, versions, all_pids),
        "released_row": released,
        "decision": decision,
        "rules": [r for r in (scores or {}).get("rules", "").split(",") if r],
        "exclusions": facts.get("exclusions", []),
        "scores": None if scores is None else {
            k: scores.get(k) for k in ("similarity", "punsafe", "pwatermark")},
        "clip": None if clip_manifest is None else {
            "scored": facts.get("clip") is not None,
            "similarity": (facts.get("clip") or {}).get("similarity")},
        "model": model,
        "fetch": None if fetch_row is None else {k: fetch_row.get(k) for k in FETCH_FIELDS
                                                 if k in fetch_row},
        "warc": warc,
        "runs": {stage: None if m is None else {
            "run_id": m.run_id or None, "data_version": m.data_version,
            "folder": store.uri(m.folder) if m.folder else None,
            "committed_at": m.committed_at or None}
            for stage, m in manifests.by_stage().items()},
        "missing": facts.get("missing", []),
    }


# -- the page around the <img> ---------------------------------------------------------------


def _html_for(record: dict, cache: dict, storage_options: dict[str, Any] | None) -> dict:
    warc = record["warc"]
    if not warc.get("warc_file") or warc.get("warc_record_offset") is None:
        return {"error": "no WARC record known for this pair"}
    key = (warc["warc_file"], int(warc["warc_record_offset"]))
    if key not in cache:
        cache[key] = _read_page(*key, storage_options)
    page = cache[key]
    if "error" in page:
        return page
    return {"warc_file": key[0], "offset": key[1], "http_status": page["status"],
            "charset": page["charset"],
            **html_around_image(page["text"], warc.get("page_url") or "", record["url"])}


def _read_page(warc_file: str, offset: int, storage_options: dict[str, Any] | None) -> dict:
    """The decoded HTML of the response record at `offset` (one seek), or an error."""
    try:
        with open_uri(warc_file, storage_options) as handle:
            record = read_record_at(handle, offset, max_block_bytes=MAX_PAGE_BYTES + (64 << 10))
        response = parse_response(record.block, max_body_bytes=MAX_PAGE_BYTES)
    except FileNotFoundError:
        return {"error": f"WARC file missing: {warc_file}"}
    except (WarcFormatError, HttpParseError, OSError) as exc:
        return {"error": f"{warc_file} at offset {offset}: {exc}"}
    text, codec, source = decode_html(response.body, response.charset)
    return {"status": response.status, "charset": f"{codec} ({source})", "text": text}


def html_around_image(html: str, page_url: str, image_url: str,
                      context: int = HTML_CONTEXT_LINES) -> dict:
    """The lines of `html` around the `<img>` whose URL (chosen as extraction chooses it:
    lazy attributes, src, srcset; against `<base href>`) is `image_url`, else the first
    `<img>` that mentions the URL's last path segment. Long lines are cut around the tag."""
    base, _ = image_attributes(html, page_url) if page_url else (page_url, [])
    tags = list(_IMG_TAG.finditer(html))
    hit, how = None, None
    for match in tags:
        attrs = _tag_attributes(match.group(0))
        if attrs and choose_url(attrs, base)[0] == image_url:
            hit, how = match, f"its {choose_url(attrs, base)[1]} resolves to the URL"
            break
    if hit is None:
        segment = image_url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        for match in tags:
            if segment and segment in match.group(0):
                hit, how = match, f"it mentions {segment!r}"
                break
    if hit is None:
        return {"found": False, "img_tags": len(tags),
                "detail": f"no <img> of {len(tags)} resolves to the URL or names its file"}
    line = html.count("\n", 0, hit.start()) + 1
    lines = html.split("\n")
    first = max(1, line - context)
    window = []
    for number in range(first, min(len(lines), line + context) + 1):
        text = lines[number - 1].rstrip("\r")
        if number == line:
            column = hit.start() - (html.rfind("\n", 0, hit.start()) + 1)
            text = _cut_around(text, column, column + len(hit.group(0)))
        elif len(text) > HTML_LINE_CHARS:
            text = text[:HTML_LINE_CHARS] + "…"
        window.append([number, text])
    return {"found": True, "match": how, "line": line, "tag": hit.group(0), "lines": window}


def _tag_attributes(tag: str) -> dict[str, str | None]:
    from selectolax.lexbor import LexborHTMLParser

    node = LexborHTMLParser(tag).css_first("img")
    return dict(node.attributes) if node is not None else {}


def _cut_around(text: str, start: int, end: int) -> str:
    if len(text) <= HTML_LINE_CHARS * 2 + (end - start):
        return text
    left, right = max(0, start - HTML_LINE_CHARS), min(len(text), end + HTML_LINE_CHARS)
    return ("…" if left else "") + text[left:right] + ("…" if right < len(text) else "")


# -- output ----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Plain JSON values: datetimes as ISO 8601, NaN as None, tuples as lists."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
