"""`safety_filtered_pairs`: the pairs that pass every rule, and every exclusion with its reason."""

import warnings

import pyarrow.parquet as pq
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    PreviewWarning,
    asset_check,
)

from laion_assets.defs.assets.clip_scored_pairs import clip_scored_pairs
from laion_assets.defs.assets.shard_asset import ShardRun, shard_asset
from laion_assets.defs.image_grid import shard_grid_md
from laion_assets.defs.metadata import (
    counts_table,
    counts_table_value,
    histogram_md,
    histogram_table,
)
from laion_assets.defs.partitions import shard_partitions
from laion_assets.defs.resources import (
    ClipModelResource,
    DatasetStoreResource,
    SafetyPolicyResource,
)
from laion_assets.pipeline.core.manifests import SAFETY_FILTERED_PAIRS as STAGE
from laion_assets.pipeline.core.manifests import SafetyFilteredPairsManifest, require_current
from laion_assets.pipeline.safety import run as safety_stage
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets.pipeline.safety.stage import SAFE_PAIRS_SCHEMA, SafetyModels
from laion_assets.pipeline.safety.takedowns import read_ledger
from laion_assets.pipeline.safety.verify import listed_pairs_in

__all__ = ["STAGE", "no_listed_pair_passes", "safety_filtered_pairs"]


@shard_asset(
    deps=[clip_scored_pairs],
    group_name="safety",
    kinds={"parquet", "numpy"},
    schema=SAFE_PAIRS_SCHEMA,
    description="The pairs that pass every safety and quality rule, with `punsafe` and "
    "`pwatermark` and their embeddings; an exclusions table (pair_id, rule, detail, value) "
    "explaining every pair that does not pass; scores of every pair. Hash lists, URL lists "
    "and the takedown ledger always exclude.",
)
def safety_filtered_pairs(
    context: AssetExecutionContext,
    dataset_store: DatasetStoreResource,
    clip_model: ClipModelResource,
    safety_policy: SafetyPolicyResource,
) -> MaterializeResult:
    shard_run = ShardRun.of(context, dataset_store)
    scorer = clip_model.scorer()
    ledger = read_ledger(shard_run.store)
    models = SafetyModels(scorer.encode_texts,
                          safety_policy.nsfw_model(scorer.identity.embed_dim),
                          safety_policy.watermark_network())
    policy = safety_policy.policy()
    manifest = shard_run(safety_stage.run, policy=policy, lists=load_lists(shard_run.store),
                         ledger=ledger, models=models, model_identity=scorer.identity.to_dict())
    return shard_run.result(manifest, {
        **_metadata(manifest), "takedowns": len(ledger),
        "thresholds": MetadataValue.json(policy.thresholds()),
        "images": MetadataValue.md(shard_grid_md(shard_run.store, manifest)),
        "audit": dataset_store.explorer_link("/audit", shard=context.partition_key)})


def _metadata(manifest: SafetyFilteredPairsManifest) -> dict:
    histograms = manifest.histograms
    return {
        "dagster/row_count": manifest.rows,
        "candidates": manifest.candidates,
        "excluded_by_rule": MetadataValue.md(counts_table(manifest.excluded_by_rule, "rule")),
        "excluded_by_rule_table": counts_table_value(manifest.excluded_by_rule, "rule"),
        "similarity_histogram": MetadataValue.md(
            histogram_md(histograms["similarity"], "cosine")),
        "similarity_bins": histogram_table(histograms["similarity"], "cosine similarity"),
        **_score_histograms(histograms),
        "lists": MetadataValue.json(manifest.lists),
        "redacted_captions": manifest.redacted,
        "safety_models": MetadataValue.json(manifest.safety_models),
    }


def _score_histograms(histograms: dict[str, list]) -> dict:
    """punsafe, pwatermark (and LAION's aesthetic and pviolence heads where they ran): a bar
    chart and a table of bins each."""
    out = {}
    for name in ("punsafe", "pwatermark", "aesthetic", "pviolence"):
        if name in histograms:
            out[f"{name}_histogram"] = MetadataValue.md(
                histogram_md(histograms[name], name, ".1f"))
            out[f"{name}_bins"] = histogram_table(histograms[name], name)
    return out


def _no_listed_pair_passes(context: AssetCheckExecutionContext,
                           dataset_store: DatasetStoreResource,
                           safety_policy: SafetyPolicyResource) -> AssetCheckResult:
    store = dataset_store.store()
    manifest = require_current(store, SafetyFilteredPairsManifest, context.partition_key)
    with store.open(manifest.pairs_file) as handle:  # a batch at a time: memory stays flat
        pairs = pq.ParquetFile(handle)
        leaks = listed_pairs_in(pairs, load_lists(store), read_ledger(store),
                                safety_policy.policy())
    return AssetCheckResult(
        passed=not leaks, severity=AssetCheckSeverity.ERROR,
        metadata={"pairs": pairs.metadata.num_rows, "matches": sum(len(h.index) for h in leaks),
                  "detail": safety_stage.describe_leaks(leaks) if leaks else "none"})


# Partitioned asset checks are a Dagster preview feature: the check runs per shard, with the
# shard's materialization; its PreviewWarning is expected and silenced here only.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", PreviewWarning)
    no_listed_pair_passes = asset_check(
        asset=safety_filtered_pairs, name="no_listed_pair_passes", blocking=True,
        partitions_def=shard_partitions,
        description="Re-reads the shard's passing pairs and matches them against the hash "
        "lists, URL lists and takedown ledger as they are now: fails when a list or the ledger "
        "gained an entry the shard's output still holds (re-materialize it).",
    )(_no_listed_pair_passes)
