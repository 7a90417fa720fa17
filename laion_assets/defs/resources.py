"""Resources: the dataset store and the crawl drops location."""


from dagster import ConfigurableResource
from pydantic import Field

from laion_assets.pipeline.drops import CrawlDrop, list_drops
from laion_assets.pipeline.store import DatasetStore
from laion_assets.settings import storage_options


class DatasetStoreResource(ConfigurableResource):
    """Where every stage writes: a local folder, or `s3://bucket/prefix` through s3fs."""

    root: str = Field(description="fsspec root: a local folder or s3://bucket/prefix")
    s3_endpoint: str | None = Field(
        default=None, description="endpoint of an S3-compatible server; None for AWS"
    )

    def store(self) -> DatasetStore:
        return DatasetStore(self.root, storage_options(self.s3_endpoint))


class CrawlDropsResource(ConfigurableResource):
    """The location the crawl-drop sensor watches, and how drops become shards."""

    location: str = Field(description="folder or s3:// prefix holding one folder per drop")
    shard_size: int = Field(default=1, description="consecutive WARC files per shard")
    listing_base: str | None = Field(
        default=None,
        description="base for relative paths in warc.paths(.gz); None: the drop's own folder "
        "(use s3://commoncrawl/ for Common Crawl's own listings)",
    )
    s3_endpoint: str | None = Field(default=None, description="S3-compatible endpoint")

    @property
    def storage_options(self) -> dict:
        return storage_options(self.s3_endpoint)

    def drops(self) -> list[CrawlDrop]:
        return list_drops(self.location, self.storage_options)
