"""`clip_scored_pairs`: CLIP image and text embeddings and their cosine similarity."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from laion_assets.defs.assets.downloaded_images import downloaded_images
from laion_assets.defs.assets.shard_asset import ShardRun, shard_asset
from laion_assets.defs.metadata import histogram_md
from laion_assets.defs.resources import ClipModelResource, DatasetStoreResource
from laion_assets.pipeline.core.manifests import CLIP_SCORED_PAIRS as STAGE
from laion_assets.pipeline.formats.embeddings import IDS_SCHEMA
from laion_assets.pipeline.scoring import run as scoring_stage

__all__ = ["STAGE", "clip_scored_pairs"]


@shard_asset(
    deps=[downloaded_images],
    group_name="scoring",
    kinds={"pytorch", "numpy"},
    schema=IDS_SCHEMA,
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
    shard_run = ShardRun.of(context, dataset_store)
    manifest = shard_run(scoring_stage.run, clip_model.scorer())
    return shard_run.result(manifest, {
        "dagster/row_count": manifest.rows,
        "failed_decodes": manifest.failed_decodes,
        "similarity_mean": MetadataValue.float(manifest.similarity_mean or 0.0),
        "similarity_histogram": MetadataValue.md(histogram_md(manifest.histogram, "cosine")),
        "model": MetadataValue.json(manifest.model),
    })
