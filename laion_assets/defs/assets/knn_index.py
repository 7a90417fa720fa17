"""`knn_index`: the image-embedding kNN index of a release version (the explorer's search)."""

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from laion_assets.defs.assets.release import release
from laion_assets.defs.resources import DatasetStoreResource
from laion_assets.pipeline.core.store import StoreError
from laion_assets.pipeline.release.knn import build_index
from laion_assets.pipeline.release.publish import list_versions


class KnnIndexConfig(Config):
    name: str = Field(default="laion-assets", description="release name")
    version: int = Field(default=0, description="0: the latest committed version")


@asset(
    deps=[release],
    group_name="release",
    kinds={"faiss"},
    owners=["team:dataset-builders"],
    description="A faiss IVF index (inner product on unit vectors, float16 codes; one list "
    "for small releases, so exact) over a release version's image embeddings, stored under "
    "knn/<name>/v<NNNN>/ beside the version (whose manifest is not touched), with the row "
    "mapping into the version's parts; built batch by batch into on-disk lists, served "
    "memory-mapped by `laion-assets explore`.",
)
def knn_index(context: AssetExecutionContext, config: KnnIndexConfig,
              dataset_store: DatasetStoreResource) -> MaterializeResult:
    store = dataset_store.store()
    versions = list_versions(store, config.name)
    if not versions:
        raise StoreError(f"release {config.name!r}: no committed version to index")
    version = config.version or versions[-1]
    manifest = build_index(store, config.name, version)
    context.log.info("indexed %s v%d: %d rows", config.name, version, manifest["rows"])
    return MaterializeResult(metadata={
        "name": config.name, "version": version, "dagster/row_count": manifest["rows"],
        "dim": manifest["dim"], "library": manifest["library"],
        "params": MetadataValue.json(manifest["params"]),
        "index": MetadataValue.path(store.uri(manifest["index_file"] or manifest["rows_file"])),
        "explore": MetadataValue.md(
            f"`laion-assets explore --release {config.name}@v{version}`"),
    })
