"""Register a crawl drop's shards and find those the Dagster instance does not know yet.

Shared by the crawl-drop sensor and `laion-assets materialize`, so both take one path.
"""

from __future__ import annotations

from laion_assets.defs.resources import CrawlDropsResource
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.shards.drops import CrawlDrop, register_drop, registered_shards


def shards_to_add(
    store: DatasetStore, crawl_drops: CrawlDropsResource, drop: CrawlDrop, known: set[str]
) -> list[str]:
    """Register the drop's new WARC files; return every shard key of its crawl not in `known`.

    Registered-but-unknown shards are returned too, so a registration whose partitions were
    never added (a crash between the two) is repaired on the next look.
    """
    register_drop(store, drop, crawl_drops.shard_size, crawl_drops.listing_base,
                  crawl_drops.storage_options)
    return [s.key for s in registered_shards(store, drop.crawl) if s.key not in known]
