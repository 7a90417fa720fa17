"""One dynamic partitions definition: the shards of every crawl (`<crawl>/<index>`)."""

from dagster import DynamicPartitionsDefinition

SHARDS = "shards"
shard_partitions = DynamicPartitionsDefinition(name=SHARDS)
