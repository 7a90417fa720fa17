"""`release`: a new immutable version of a published dataset, cut from the safety stage."""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from laion_assets.defs.assets.safety_filtered_pairs import safety_filtered_pairs
from laion_assets.defs.metadata import column_schema, counts_table, counts_table_value
from laion_assets.defs.resources import DatasetStoreResource, SafetyPolicyResource
from laion_assets.pipeline.core.manifests import FUNNEL, ReleaseManifest
from laion_assets.pipeline.release.publish import (
    MANIFEST,
    RELEASE_SCHEMA,
    PublishContext,
    ReleaseConfig,
    publish_release,
    read_manifest,
    released_rows,
    verify_files,
)
from laion_assets.pipeline.release.subsets import SimilarityThreshold, SubsetRule
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets.pipeline.safety.takedowns import read_ledger
from laion_assets.pipeline.safety.verify import listed_pairs


class ReleaseRunConfig(Config):
    """What to publish (the launchpad of a release run, or the takedown sensor's request)."""

    name: str = Field(default="laion-assets", description="release name (a folder under "
                      "releases/); each run publishes its next version")
    crawls: list[str] = Field(default=[], description="crawls to include; empty: all")
    shards: list[str] = Field(default=[], description="shard keys; empty: every shard of the "
                              "crawls materialized through safety_filtered_pairs")
    dedup_by_sha256: bool = Field(default=False, description="one pair per image as well")
    rows_per_part: int = 1_000_000
    notes: str = Field(default="", description="a line for the changelog")
    parent_version: int = Field(default=0, description="0: select shards by crawls and "
                                "shards; N: keep version N's rows and source shards minus what "
                                "the lists and the ledger now match (takedown versions)")
    # a LAION-style subset (laion_assets.pipeline.release.subsets); defaults: every pair
    subset_name: str = Field(default="", description="e.g. en-aesthetic5-research-safe")
    subset_language: str = Field(default="all", description="all, en (LAION-2B-en), multi "
                                 "(LAION-2B-multi) or nolang (LAION-1B-nolang)")
    min_aesthetic: float | None = Field(default=None, description="LAION-Aesthetics 5/6/6.5+")
    max_punsafe: float | None = Field(default=None, description="Re-LAION research-safe: 0.45")
    max_pwatermark: float | None = None
    similarity_minimums: dict[str, float] = Field(
        default={}, description="CLIP similarity minimum per language ('*': the others)")
    similarity_model: str | None = Field(
        default=None, description="the CLIP model the minimums are for (checked per shard)")
    captions: list[str] = Field(
        default=[], description="crawls whose synthetic captions the release carries "
        "(LAION-COCO's top_caption, all_captions, all_similarities); empty: no caption columns")

    def release_config(self) -> ReleaseConfig:
        subset = SubsetRule(
            name=self.subset_name, language=self.subset_language,
            min_aesthetic=self.min_aesthetic, max_punsafe=self.max_punsafe,
            max_pwatermark=self.max_pwatermark, similarity=tuple(
                SimilarityThreshold(language, minimum, self.similarity_model)
                for language, minimum in sorted(self.similarity_minimums.items())))
        return ReleaseConfig(name=self.name, crawls=tuple(self.crawls), shards=tuple(self.shards),
                             dedup_by_sha256=self.dedup_by_sha256,
                             rows_per_part=self.rows_per_part, notes=self.notes,
                             parent_version=self.parent_version, subset=subset,
                             captions=tuple(self.captions))


@asset(
    deps=[safety_filtered_pairs],
    group_name="release",
    kinds={"parquet", "numpy"},
    owners=["team:dataset-builders"],
    metadata={"dagster/column_schema": column_schema(RELEASE_SCHEMA)},
    description="A new, immutable version of a published dataset: LAION's columns, float16 "
    "embeddings, a provenance table, lookup indexes, manifest.json (the commit, written last), "
    "a dataset card and a changelog with the rows removed since the previous version. Rows are "
    "matched once more against the hash lists and the takedown ledger at publish time.",
)
def release(context: AssetExecutionContext, config: ReleaseRunConfig,
            dataset_store: DatasetStoreResource,
            safety_policy: SafetyPolicyResource) -> MaterializeResult:
    store = dataset_store.store()
    ctx = PublishContext(load_lists(store), read_ledger(store), safety_policy.policy(),
                         run_id=context.run.run_id, log=context.log.info)
    manifest = ReleaseManifest.from_json(publish_release(store, config.release_config(), ctx))
    context.log.info("published %s v%d: %d rows", manifest.name, manifest.version,
                     manifest.rows)
    return MaterializeResult(metadata={
        **release_metadata(store, manifest),
        "explore": dataset_store.explorer_link("/", release=f"{manifest.name}@v{manifest.version}"),
    })


def release_metadata(store, manifest: ReleaseManifest) -> dict:
    """The release's materialization metadata: funnel, removals, changelog, sources."""
    funnel = "\n".join(f"| {k} | {manifest.counts.get(k, 0):,} |" for k in FUNNEL)
    return {
        "name": manifest.name, "version": manifest.version,
        "parent": manifest.parent or 0,
        "dagster/row_count": manifest.rows,
        "counts": MetadataValue.md("| stage | rows |\n|---|---:|\n" + funnel),
        "funnel": counts_table_value({k: manifest.counts.get(k, 0) for k in FUNNEL}, "stage",
                                     "items", largest_first=False),
        "removed_by_reason": MetadataValue.md(counts_table(manifest.removed_by_reason, "reason")),
        "removed_by_reason_table": counts_table_value(manifest.removed_by_reason, "reason",
                                                      "rows"),
        "withheld_at_publish": MetadataValue.md(counts_table(manifest.withheld, "reason")),
        "withheld_at_publish_table": counts_table_value(manifest.withheld, "reason", "rows"),
        "changelog": MetadataValue.md("\n".join(f"- {c}" for c in manifest.changelog)),
        "coverage": MetadataValue.json(manifest.coverage),
        "source_shards": len(manifest.source_shards),
        "models": MetadataValue.json(manifest.models),
        "manifest": MetadataValue.path(store.uri(manifest.path(MANIFEST))),
        "path": MetadataValue.path(store.uri(manifest.folder)),
    }


def _latest(context: AssetCheckExecutionContext, store) -> ReleaseManifest:
    event = context.instance.get_latest_materialization_event(AssetKey("release"))
    meta = event.asset_materialization.metadata
    return ReleaseManifest.from_json(
        read_manifest(store, meta["name"].value, meta["version"].value))


@asset_check(asset=release, description="Every file of the latest version matches the sha256 "
             "its manifest records.")
def files_match_manifest(context: AssetCheckExecutionContext,
                         dataset_store: DatasetStoreResource) -> AssetCheckResult:
    store = dataset_store.store()
    manifest = _latest(context, store)
    problems = verify_files(store, manifest)
    return AssetCheckResult(passed=not problems, severity=AssetCheckSeverity.ERROR, metadata={
        "version": manifest.version, "files": len(manifest.files),
        "problems": "\n".join(problems) or "none"})


@asset_check(asset=release, blocking=True, description="No row of the latest version matches "
             "a hash list, a URL list or the takedown ledger as they are now.")
def no_listed_rows(context: AssetCheckExecutionContext, dataset_store: DatasetStoreResource,
                   safety_policy: SafetyPolicyResource) -> AssetCheckResult:
    store = dataset_store.store()
    manifest = _latest(context, store)
    rows = released_rows(store, manifest)
    hits = listed_pairs(rows, load_lists(store), read_ledger(store), safety_policy.policy())
    return AssetCheckResult(passed=not hits, severity=AssetCheckSeverity.ERROR, metadata={
        "version": manifest.version, "rows": rows.num_rows,
        "matches": "\n".join(f"{h.rule}: {len(h.index)} ({h.detail[0]})" for h in hits)
        or "none"})


@asset_check(asset=release, description="Shards included of shards known, per crawl (warns "
             "when a crawl is only partly materialized).")
def coverage(context: AssetCheckExecutionContext,
             dataset_store: DatasetStoreResource) -> AssetCheckResult:
    manifest = _latest(context, dataset_store.store())
    per_crawl = manifest.coverage
    partial = {c: v for c, v in per_crawl.items() if v["included"] < v["known"]}
    return AssetCheckResult(passed=not partial, severity=AssetCheckSeverity.WARN, metadata={
        "version": manifest.version,
        **{crawl: f"{v['included']}/{v['known']} shards" for crawl, v in per_crawl.items()}})
