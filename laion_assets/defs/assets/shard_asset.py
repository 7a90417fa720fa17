"""What the per-shard assets share: their decorator, their preamble and their result."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AutomationCondition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)

from laion_assets.defs.metadata import column_schema
from laion_assets.defs.partitions import shard_partitions
from laion_assets.defs.resources import DatasetStoreResource
from laion_assets.pipeline.core.manifests import StageManifest
from laion_assets.pipeline.core.store import DatasetStore

OWNERS = ["team:dataset-builders"]


def shard_asset(*, group_name: str, kinds: set[str], description: str, deps: Sequence = (),
                schema: pa.Schema | None = None, check_specs: Sequence[AssetCheckSpec] = (),
                eager: bool = True, **options: Any) -> Callable:
    """`@asset` for a stage that materializes one shard partition at a time."""
    return asset(
        partitions_def=shard_partitions, deps=list(deps), group_name=group_name, kinds=kinds,
        owners=OWNERS, description=description, check_specs=list(check_specs),
        metadata={"dagster/column_schema": column_schema(schema)} if schema else None,
        automation_condition=AutomationCondition.eager() if eager else None, **options)


@dataclass(frozen=True)
class ShardRun:
    """The store, shard, run id and log a stage runner needs, from an asset's context."""

    store: DatasetStore
    shard: str
    run_id: str
    log: Callable[[str], None]

    @classmethod
    def of(cls, context: AssetExecutionContext, dataset_store: DatasetStoreResource
           ) -> "ShardRun":
        return cls(dataset_store.store(), context.partition_key, context.run.run_id,
                   context.log.info)

    def __call__(self, runner: Callable[..., StageManifest], *args: Any,
                 **kwargs: Any) -> Any:
        """`runner(store, shard, *args, run_id=..., log=..., **kwargs)`: the stage's manifest."""
        return runner(self.store, self.shard, *args, run_id=self.run_id, log=self.log, **kwargs)

    def result(self, manifest: StageManifest, metadata: dict[str, Any], *, path: str = "",
               check_results: Sequence[AssetCheckResult] = ()) -> MaterializeResult:
        """The materialization: `metadata`, the output's path and the manifest's version."""
        where = {"path": MetadataValue.path(self.store.uri(path or manifest.folder))}
        return MaterializeResult(metadata={**metadata, **where},
                                 data_version=DataVersion(manifest.data_version),
                                 check_results=list(check_results))
