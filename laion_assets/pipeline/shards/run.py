"""The `warc_shards` stage: a registered shard's WARC files, observed in place and committed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from laion_assets.pipeline.core.fingerprint import fingerprint
from laion_assets.pipeline.core.manifests import WARC_SHARDS, WarcShardsManifest, commit
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.shards.drops import load_shard, observe_files


def run(store: DatasetStore, shard: str, *, storage_options: dict[str, Any] | None = None,
        run_id: str = "", log: Callable[[str], None] = print) -> WarcShardsManifest:
    """Observe the shard's WARC files (size, sha256) and commit them as its manifest."""
    registered = load_shard(store, shard)
    files = observe_files(registered, storage_options)
    manifest = WarcShardsManifest(
        shard=registered.key, crawl=registered.crawl, files=tuple(files),
        bytes=sum(f["size"] for f in files),
        data_version=fingerprint([f["sha256"] for f in files]), run_id=run_id)
    with store.stage_output(WARC_SHARDS, registered.key) as output:
        manifest = commit(output, manifest)
    log(f"shard {shard}: {len(files)} WARC files, {manifest.bytes} bytes")
    return manifest
