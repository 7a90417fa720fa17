"""`synthetic_captions`: LAION-COCO-style captions of a shard's fetched images (opt-in)."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from laion_assets.defs.assets.clip_scored_pairs import clip_scored_pairs
from laion_assets.defs.assets.shard_asset import ShardRun, shard_asset
from laion_assets.defs.resources import (
    CaptionModelResource,
    ClipModelResource,
    DatasetStoreResource,
)
from laion_assets.pipeline.captions import run as captions_stage
from laion_assets.pipeline.captions.stage import CAPTIONS_SCHEMA
from laion_assets.pipeline.core.manifests import SYNTHETIC_CAPTIONS as STAGE

__all__ = ["STAGE", "synthetic_captions"]


@shard_asset(
    deps=[clip_scored_pairs],
    group_name="captions",
    kinds={"pytorch", "parquet"},
    schema=CAPTIONS_SCHEMA,
    pool="gpu",
    eager=False,
    description="Synthetic captions (LAION-COCO's recipe): candidate captions of every fetched "
    "image from an open_clip CoCa model, ranked by CLIP similarity (the scoring model unless "
    "the caption resource names another); the best caption, the kept ones and their "
    "similarities. Incremental: images already captioned by the same models are kept. "
    "Opt-in (job `shard_captions`); runs in the `gpu` pool.",
)
def synthetic_captions(
    context: AssetExecutionContext,
    dataset_store: DatasetStoreResource,
    caption_model: CaptionModelResource,
    clip_model: ClipModelResource,
) -> MaterializeResult:
    shard_run = ShardRun.of(context, dataset_store)
    ranker = caption_model.ranker() or clip_model.scorer()
    manifest = shard_run(captions_stage.run, caption_model.captioner(), ranker)
    return shard_run.result(manifest, {
        "dagster/row_count": manifest.rows,
        "captioned_this_run": manifest.captioned,
        "carried_over": manifest.carried_over,
        "failed_decodes": manifest.failed_decodes,
        "captioner": MetadataValue.json(manifest.captioner),
        "ranker": MetadataValue.json(manifest.ranker),
        "generation": MetadataValue.json(manifest.generation),
    })
