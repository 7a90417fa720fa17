"""`safety_filtered_pairs`: the pairs that pass every rule, and every exclusion with its reason."""

import warnings

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AutomationCondition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    PreviewWarning,
    asset,
    asset_check,
)

from laion_assets.defs.assets.clip_scored_pairs import STAGE as CLIP_SCORED_PAIRS
from laion_assets.defs.assets.clip_scored_pairs import clip_scored_pairs
from laion_assets.defs.assets.downloaded_images import STAGE as DOWNLOADED_IMAGES
from laion_assets.defs.assets.extracted_pairs import STAGE as EXTRACTED_PAIRS
from laion_assets.defs.metadata import column_schema, counts_table, histogram_md
from laion_assets.defs.partitions import shard_partitions
from laion_assets.defs.resources import (
    ClipModelResource,
    DatasetStoreResource,
    SafetyPolicyResource,
)
from laion_assets.pipeline.core.fingerprint import fingerprint
from laion_assets.pipeline.core.store import StoreError
from laion_assets.pipeline.formats.embeddings import read_embeddings
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets.pipeline.safety.stage import (
    EXCLUSIONS_FILE,
    PAIRS_FILE,
    SAFE_PAIRS_SCHEMA,
    SCORES_FILE,
    SafetyModels,
    ShardInputs,
    filter_shard,
)
from laion_assets.pipeline.safety.takedowns import ledger_version, read_ledger
from laion_assets.pipeline.safety.verify import listed_pairs

STAGE = "safety_filtered_pairs"


@asset(
    partitions_def=shard_partitions,
    deps=[clip_scored_pairs],
    group_name="safety",
    kinds={"parquet", "numpy"},
    owners=["team:dataset-builders"],
    metadata={"dagster/column_schema": column_schema(SAFE_PAIRS_SCHEMA)},
    automation_condition=AutomationCondition.eager(),
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
    store = dataset_store.store()
    shard = context.partition_key
    pairs_manifest = store.require_current(EXTRACTED_PAIRS, shard)
    images = store.require_current(DOWNLOADED_IMAGES, shard)
    scored = store.require_current(CLIP_SCORED_PAIRS, shard)
    scorer = clip_model.scorer()
    if scorer.identity.to_dict() != scored["model"]:
        raise StoreError(f"shard {shard} was scored with {scored['model']}, but the configured "
                         f"CLIP model is {scorer.identity.to_dict()}: re-score it first")
    policy = safety_policy.policy()
    lists, ledger = load_lists(store), read_ledger(store)
    models = SafetyModels(scorer.encode_texts,
                          safety_policy.nsfw_model(scorer.identity.embed_dim),
                          safety_policy.watermark_network())
    folder = images["folder"]
    inputs = ShardInputs(
        pairs=store.read_parquet(pairs_manifest["file"]),
        results=store.read_parquet(images["results_file"]),
        embeddings=read_embeddings(lambda name: store.open(f"{scored['folder']}/{name}")),
        open_tar=lambda name: store.open(f"{folder}/{name}"))
    context.log.info("shard %s: %d candidates; lists %s; %d takedowns", shard,
                     inputs.pairs.num_rows, lists.sizes(), len(ledger))
    version = fingerprint(scored["data_version"], images["data_version"],
                          pairs_manifest["data_version"], policy.to_dict(), lists.version,
                          ledger_version(ledger), models.identity())
    with store.stage_output(STAGE, shard) as output:
        summary = filter_shard(inputs, policy, lists, ledger, models, output)
        leaks = listed_pairs(store.read_parquet(output.file(PAIRS_FILE)), lists, ledger, policy)
        if leaks:  # never commit a listed pair (the rules make this impossible; re-checked)
            raise RuntimeError(f"shard {shard}: written pairs match {_describe(leaks)}")
        manifest = output.commit({
            "shard": shard, "rows": summary.passed, "candidates": summary.candidates,
            "excluded_by_rule": summary.counts, "redacted": summary.redacted,
            "histograms": summary.histograms, "policy": policy.to_dict(),
            "lists": lists.sizes(), "lists_version": lists.version,
            "ledger_version": ledger_version(ledger), "model": scored["model"],
            "safety_models": models.identity(), "data_version": version,
            "files": {name: output.file(name) for name in (
                PAIRS_FILE, EXCLUSIONS_FILE, SCORES_FILE, "img_emb.npy", "text_emb.npy",
                "ids.parquet")},
            "run_id": context.run.run_id,
        })
    context.log.info("shard %s: %d of %d pairs pass; excluded by rule: %s", shard,
                     summary.passed, summary.candidates, summary.counts)
    return MaterializeResult(
        metadata={
            "dagster/row_count": summary.passed,
            "candidates": summary.candidates,
            "excluded_by_rule": MetadataValue.md(counts_table(summary.counts, "rule")),
            "similarity_histogram": MetadataValue.md(
                histogram_md(summary.histograms["similarity"], "cosine")),
            "punsafe_histogram": MetadataValue.md(
                histogram_md(summary.histograms["punsafe"], "punsafe", ".1f")),
            "pwatermark_histogram": MetadataValue.md(
                histogram_md(summary.histograms["pwatermark"], "pwatermark", ".1f")),
            "thresholds": MetadataValue.json(policy.thresholds()),
            "lists": MetadataValue.json(lists.sizes()),
            "takedowns": len(ledger),
            "redacted_captions": summary.redacted,
            "safety_models": MetadataValue.json(models.identity()),
            "path": MetadataValue.path(store.uri(manifest["folder"])),
        },
        data_version=DataVersion(version),
    )


def _no_listed_pair_passes(context: AssetCheckExecutionContext,
                           dataset_store: DatasetStoreResource,
                           safety_policy: SafetyPolicyResource) -> AssetCheckResult:
    store = dataset_store.store()
    manifest = store.require_current(STAGE, context.partition_key)
    pairs = store.read_parquet(manifest["files"][PAIRS_FILE])
    leaks = listed_pairs(pairs, load_lists(store), read_ledger(store), safety_policy.policy())
    return AssetCheckResult(
        passed=not leaks, severity=AssetCheckSeverity.ERROR,
        metadata={"pairs": pairs.num_rows, "matches": sum(len(h.index) for h in leaks),
                  "detail": _describe(leaks) if leaks else "none"})


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


def _describe(leaks: list) -> str:
    return "; ".join(f"{h.rule}: {len(h.index)} ({h.detail[0]})" for h in leaks)

