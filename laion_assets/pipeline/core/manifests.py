"""Stage names, their output file names, and one typed manifest per stage: the contract.

A stage commits its partition by writing its manifest (`DatasetStore.stage_output`); every
later reader — the next stage, the release, provenance, the card, the summary, the CLI —
reads it back through these types, never through string keys. The JSON on disk keeps the
keys written before these types existed; `from_json` reads older manifests too.

Counts in a manifest describe what the committed output holds, whatever mix of earlier and
new work produced it (a re-run of `downloaded_images` keeps earlier results: `ok`, `failed`,
`failures` and `by_source` count all of them; `kept` and `fetched_this_run` say how many
came from where).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from laion_assets.pipeline.core.store import DatasetStore, StoreError
from laion_assets.pipeline.formats.embeddings import IDS_FILE, IMAGE_FILE, TEXT_FILE

WARC_SHARDS = "warc_shards"
EXTRACTED_PAIRS = "extracted_pairs"
DOWNLOADED_IMAGES = "downloaded_images"
CLIP_SCORED_PAIRS = "clip_scored_pairs"
SAFETY_FILTERED_PAIRS = "safety_filtered_pairs"
SYNTHETIC_CAPTIONS = "synthetic_captions"  # optional: not in the release funnel
STAGES = (WARC_SHARDS, EXTRACTED_PAIRS, DOWNLOADED_IMAGES, CLIP_SCORED_PAIRS,
          SAFETY_FILTERED_PAIRS)  # in the order the data flows

# output file names, per stage
PAIRS_FILE = "pairs.parquet"  # extracted_pairs and safety_filtered_pairs
CAPTURES_FILE = "captures.parquet"  # extracted_pairs
RESULTS_FILE = "fetch_results.parquet"  # downloaded_images
EXCLUSIONS_FILE = "exclusions.parquet"  # safety_filtered_pairs
SCORES_FILE = "scores.parquet"  # safety_filtered_pairs
EMBEDDING_FILES = (IMAGE_FILE, TEXT_FILE, IDS_FILE)  # clip_scored_pairs, safety_filtered_pairs
SAFETY_FILES = (PAIRS_FILE, EXCLUSIONS_FILE, SCORES_FILE, *EMBEDDING_FILES)


class ManifestError(StoreError):
    """A committed manifest that lacks a field its type needs; the message names it."""


M = TypeVar("M", bound="StageManifest")


@dataclass(frozen=True, kw_only=True)
class StageManifest:
    """What every stage's commit records; `folder` is the committed attempt's folder."""

    STAGE: ClassVar[str] = ""
    shard: str
    data_version: str
    run_id: str = ""
    attempt: str = ""
    folder: str = ""
    committed_at: str = ""

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to `_CURRENT.json` (the store adds attempt and folder)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls: type[M], value: dict[str, Any]) -> M:
        value = cls._upgrade(dict(value))
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in value.items() if k in names})
        except TypeError as exc:
            raise ManifestError(f"{cls.STAGE} manifest of {value.get('shard')!r} "
                                f"(folder {value.get('folder')!r}): {exc}") from exc

    @classmethod
    def _upgrade(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Fill fields that older manifests did not write."""
        return value

    def path(self, name: str) -> str:
        """Store-relative path of a file of the committed attempt."""
        return posixpath.join(self.folder, name)


@dataclass(frozen=True)
class WarcFile:
    uri: str
    size: int
    sha256: str | None
    modified: str | None = None


@dataclass(frozen=True, kw_only=True)
class WarcShardsManifest(StageManifest):
    """The WARC files a shard holds, observed in place (never copied)."""

    STAGE: ClassVar[str] = WARC_SHARDS
    crawl: str
    files: tuple[WarcFile, ...]
    bytes: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(
            f if isinstance(f, WarcFile) else WarcFile(**f) for f in self.files))

    @property
    def uris(self) -> list[str]:
        return [f.uri for f in self.files]


@dataclass(frozen=True, kw_only=True)
class ExtractedPairsManifest(StageManifest):
    """The shard's deduplicated pairs (`file`) and its image captures (`captures_file`).

    `stats` holds the extractor's counters (`counts`, `dropped`, `skipped_records`,
    `languages`, `top_domains`); the properties name the ones readers use.
    """

    STAGE: ClassVar[str] = EXTRACTED_PAIRS
    rows: int
    file: str
    captures_file: str | None = None
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    skips: list[dict] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    upstream_data_version: str | None = None

    def _count(self, name: str) -> int:
        return int(self.stats.get("counts", {}).get(name, 0))

    @property
    def html_pages(self) -> int:
        """HTML pages read from the WARC files."""
        return self._count("html_pages")

    @property
    def image_candidates(self) -> int:
        """`<img>` elements seen, before any rule dropped one."""
        return self._count("candidates")

    @property
    def image_captures(self) -> int:
        return self._count("image_captures")

    def counter(self, name: str) -> dict[str, int]:
        """One of `dropped`, `skipped_records`, `languages`, `top_domains`."""
        return dict(self.stats.get(name, {}))


@dataclass(frozen=True, kw_only=True)
class DownloadedImagesManifest(StageManifest):
    """One fetch result per unique URL (`results_file`) and the resized images (`tars`).

    `ok`, `failed`, `failures` (by reason), `by_source` and `bytes` count every stored
    result; `kept` of them were carried over from the previous attempt and
    `fetched_this_run` were fetched (or retried) by this run.
    """

    STAGE: ClassVar[str] = DOWNLOADED_IMAGES
    rows: int
    results_file: str
    tars: list[str]
    ok: int
    failed: int
    failures: dict[str, int]
    by_source: dict[str, int]
    sources: list[str]
    bytes: int = 0
    urls: int = 0  # unique URLs of the shard's pairs
    kept: int = 0
    fetched_this_run: int = 0
    upstream_data_version: str | None = None

    @classmethod
    def _upgrade(cls, value: dict[str, Any]) -> dict[str, Any]:
        value.setdefault("failed", sum(value.get("failures", {}).values()))
        value.setdefault("fetched_this_run", value.get("rows", 0))
        value.setdefault("urls", value.get("rows", 0))
        return value


@dataclass(frozen=True, kw_only=True)
class ClipScoredPairsManifest(StageManifest):
    """Embeddings and similarity of every pair whose image was fetched, with the model."""

    STAGE: ClassVar[str] = CLIP_SCORED_PAIRS
    rows: int
    model: dict[str, Any]
    files: dict[str, str]
    failed_decodes: int = 0
    similarity_mean: float | None = None
    histogram: list = field(default_factory=list)
    upstream_data_version: str | None = None

    @property
    def ids_file(self) -> str:
        return self.files.get(IDS_FILE) or self.path(IDS_FILE)


@dataclass(frozen=True, kw_only=True)
class SafetyFilteredPairsManifest(StageManifest):
    """The passing pairs, their embeddings, every exclusion and every candidate's scores."""

    STAGE: ClassVar[str] = SAFETY_FILTERED_PAIRS
    rows: int
    candidates: int
    excluded_by_rule: dict[str, int]
    files: dict[str, str]
    model: dict[str, Any]
    policy: dict[str, Any]
    lists_version: str
    ledger_version: str
    redacted: int = 0
    histograms: dict[str, list] = field(default_factory=dict)
    lists: dict[str, int] = field(default_factory=dict)
    safety_models: dict[str, Any] = field(default_factory=dict)

    @property
    def pairs_file(self) -> str:
        return self.files[PAIRS_FILE]

    @property
    def exclusions_file(self) -> str:
        return self.files[EXCLUSIONS_FILE]

    @property
    def scores_file(self) -> str:
        return self.files[SCORES_FILE]


# the release's funnel: how many items each stage of its source shards holds, in flow order
FUNNEL = ("html_pages", "candidates", "fetched", "scored", "safe", "released")


@dataclass(frozen=True)
class ShardOutputs:
    """The committed manifest of every stage of one shard (a release's source)."""

    raw: WarcShardsManifest
    pairs: ExtractedPairsManifest
    images: DownloadedImagesManifest
    scored: ClipScoredPairsManifest
    safe: SafetyFilteredPairsManifest

    @classmethod
    def require(cls, store: DatasetStore, shard: str) -> ShardOutputs:
        """Every stage's manifest; a stage with nothing committed is a `StoreError`."""
        return cls(*(require_current(store, kind, shard) for kind in MANIFESTS.values()))

    def by_stage(self) -> dict[str, StageManifest]:
        return dict(zip(STAGES, (self.raw, self.pairs, self.images, self.scored, self.safe),
                        strict=True))

    def funnel(self) -> dict[str, int]:
        """The shard's funnel counts (all but `released`), from what its stages hold."""
        return {"html_pages": self.pairs.html_pages, "candidates": self.pairs.rows,
                "fetched": self.images.ok, "scored": self.scored.rows, "safe": self.safe.rows}


def _funnel(counts: dict[str, int]) -> dict[str, int]:
    counts = dict(counts)
    if "pages" in counts:  # written before the count had one name
        counts.setdefault("html_pages", counts.pop("pages"))
    return counts


@dataclass(frozen=True, kw_only=True)
class SourceShard:
    """A shard a release version was cut from, with the versions and runs of its stages."""

    shard: str
    data_version: str
    run_id: str | None
    stages: dict[str, dict[str, Any]]
    counts: dict[str, int]
    model: dict[str, Any] | None = None
    policy: dict[str, Any] | None = None
    lists_version: str | None = None
    ledger_version: str | None = None
    captions: dict[str, Any] | None = None  # caption models, when the release carries captions

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", _funnel(self.counts))


@dataclass(frozen=True, kw_only=True)
class ReleaseManifest:
    """`releases/<name>/v<NNNN>/manifest.json`: a committed release version (the commit).

    `counts` is the funnel (`FUNNEL`) summed over the source shards; `files` maps each file
    of the version to its sha256, bytes and rows.
    """

    name: str
    version: int
    folder: str
    rows: int
    parts: int
    parent: int | None = None
    created_at: str = ""
    run_id: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    withheld: dict[str, int] = field(default_factory=dict)
    removed_by_reason: dict[str, int] = field(default_factory=dict)
    removed_by_request: dict[str, int] = field(default_factory=dict)
    changelog: list[str] = field(default_factory=list)
    coverage: dict[str, dict[str, int]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    source_shards: tuple[SourceShard, ...] = ()
    models: list[dict[str, Any]] = field(default_factory=list)
    ledger_version: str = ""
    lists_version: str = ""
    policy_at_publish: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    # source rows outside the release's subset (config["subset"]), by first failing condition
    subset_excluded: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", _funnel(self.counts))
        object.__setattr__(self, "source_shards", tuple(
            s if isinstance(s, SourceShard) else SourceShard(**s) for s in self.source_shards))

    @classmethod
    def of(cls, value: ReleaseManifest | dict[str, Any]) -> ReleaseManifest:
        """`value` typed (a manifest dict as `publish_release` builds and returns it)."""
        return value if isinstance(value, ReleaseManifest) else cls.from_json(value)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ReleaseManifest:
        names = {f.name for f in fields(cls)}
        sources = [{k: v for k, v in s.items() if k in _SOURCE_FIELDS}
                   for s in value.get("source_shards", [])]
        try:
            return cls(**{**{k: v for k, v in value.items() if k in names},
                          "source_shards": sources})
        except TypeError as exc:
            raise ManifestError(f"release manifest {value.get('name')!r} "
                                f"v{value.get('version')}: {exc}") from exc

    def path(self, name: str) -> str:
        return posixpath.join(self.folder, name)


_SOURCE_FIELDS = {f.name for f in fields(SourceShard)}


@dataclass(frozen=True, kw_only=True)
class SyntheticCaptionsManifest(StageManifest):
    """LAION-COCO-style captions of every fetched image (`file`, one row per `url_key`).

    `rows` counts every stored caption row; `carried_over` of them were kept from the
    previous attempt (same caption identity) and `captioned` were written by this run.
    """

    STAGE: ClassVar[str] = SYNTHETIC_CAPTIONS
    rows: int
    file: str
    captioned: int
    carried_over: int
    failed_decodes: int
    caption_identity: str
    captioner: dict[str, Any]
    ranker: dict[str, Any]
    generation: dict[str, Any]
    upstream_data_version: str | None = None


MANIFESTS: dict[str, type[StageManifest]] = {m.STAGE: m for m in (
    WarcShardsManifest, ExtractedPairsManifest, DownloadedImagesManifest,
    ClipScoredPairsManifest, SafetyFilteredPairsManifest)}


def read_current(store: DatasetStore, kind: type[M], shard: str) -> M | None:
    """The committed manifest of a shard's stage, typed; None if nothing is committed."""
    value = store.current(kind.STAGE, shard)
    return None if value is None else kind.from_json(value)


def require_current(store: DatasetStore, kind: type[M], shard: str) -> M:
    """As `read_current`, but a missing commit is a `StoreError` naming the folder."""
    return kind.from_json(store.require_current(kind.STAGE, shard))


def commit(output: Any, manifest: M) -> M:
    """Commit a stage's attempt (`StageOutput`) with `manifest`; returns it as written."""
    return type(manifest).from_json(output.commit(manifest.to_json()))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, WarcFile):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return value
