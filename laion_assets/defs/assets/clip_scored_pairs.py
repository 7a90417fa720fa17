"""`clip_scored_pairs`: CLIP image and text embeddings and their cosine similarity."""

from dagster import (
    AssetExecutionContext,
    AutomationCondition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from laion_assets.defs.assets.downloaded_images import STAGE as DOWNLOADED_IMAGES
from laion_assets.defs.assets.downloaded_images import downloaded_images
from laion_assets.defs.assets.extracted_pairs import STAGE as EXTRACTED_PAIRS
from laion_assets.defs.metadata import column_schema, histogram_md
from laion_assets.defs.partitions import shard_partitions
from laion_assets.defs.resources import ClipModelResource, DatasetStoreResource
from laion_assets.pipeline.core.fingerprint import fingerprint
from laion_assets.pipeline.formats.embeddings import IDS_SCHEMA
from laion_assets.pipeline.scoring.stage import score_shard

STAGE = "clip_scored_pairs"


@asset(
    partitions_def=shard_partitions,
    deps=[downloaded_images],
    group_name="scoring",
    kinds={"pytorch", "numpy"},
    owners=["team:dataset-builders"],
    metadata={"dagster/column_schema": column_schema(IDS_SCHEMA)},
    automation_condition=AutomationCondition.eager(),
    pool="gpu",
    description="CLIP image and text embeddings (float16 .npy, aligned with ids.parquet) and "
    "the cosine similarity of every pair whose image was fetched, with the model's identity. "
    "No threshold is applied here. Runs in the `gpu` concurrency pool.",
)
def clip_scored_pairs(
    context: AssetExecutionContext,
    dataset_store: DatasetStoreResource,
    clip_model: ClipModelResource,
) -> MaterializeResult:
    store = dataset_store.store()
    shard = context.partition_key
    pairs_manifest = store.require_current(EXTRACTED_PAIRS, shard)
    images = store.require_current(DOWNLOADED_IMAGES, shard)
    pairs = store.read_parquet(pairs_manifest["file"], columns=["pair_id", "url", "text"])
    results = store.read_parquet(images["results_file"],
                                 columns=["url_key", "status", "tar"])
    scorer = clip_model.scorer()
    identity = scorer.identity.to_dict()
    version = fingerprint(images["data_version"], pairs_manifest["data_version"], identity)
    folder = images["folder"]
    with store.stage_output(STAGE, shard) as output:
        summary = score_shard(scorer, pairs, results,
                              lambda name: store.open(f"{folder}/{name}"), output,
                              log=context.log.info)
        manifest = output.commit({
            "shard": shard, "rows": summary.rows, "model": identity,
            "failed_decodes": summary.failed_decodes, "similarity_mean": summary.similarity_mean,
            "histogram": summary.histogram, "data_version": version,
            "files": {n: output.file(n) for n in ("img_emb.npy", "text_emb.npy",
                                                  "ids.parquet")},
            "run_id": context.run.run_id,
        })
    context.log.info("shard %s: %d pairs scored with %s", shard, summary.rows, identity)
    return MaterializeResult(
        metadata={
            "dagster/row_count": summary.rows,
            "failed_decodes": summary.failed_decodes,
            "similarity_mean": MetadataValue.float(summary.similarity_mean or 0.0),
            "similarity_histogram": MetadataValue.md(histogram_md(summary.histogram, "cosine")),
            "model": MetadataValue.json(identity),
            "path": MetadataValue.path(store.uri(manifest["folder"])),
        },
        data_version=DataVersion(version),
    )

