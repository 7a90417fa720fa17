"""A printed summary of what a headless run produced, read back from the dataset store."""

from collections import Counter

from dagster import Definitions

from laion_assets.pipeline.core.manifests import (
    ClipScoredPairsManifest,
    DownloadedImagesManifest,
    ExtractedPairsManifest,
    SafetyFilteredPairsManifest,
    WarcShardsManifest,
    read_current,
)
from laion_assets.pipeline.core.store import DatasetStore

COLUMNS = ("files", "MB", "pages", "pairs", "images", "scored", "sim", "safe")
TOTALS = ("pages", "pairs", "images", "scored", "safe")


def shard_row(store: DatasetStore, key: str) -> tuple[dict, Counter, dict] | None:
    """(summary row, exclusions by rule, CLIP model) of a shard; None unless fully
    materialized. `images` counts every stored successful fetch, whichever run made it."""
    raw = read_current(store, WarcShardsManifest, key)
    pairs = read_current(store, ExtractedPairsManifest, key)
    images = read_current(store, DownloadedImagesManifest, key)
    scored = read_current(store, ClipScoredPairsManifest, key)
    safe = read_current(store, SafetyFilteredPairsManifest, key)
    if None in (raw, pairs, images, scored, safe):
        return None
    row = {"files": len(raw.files), "MB": f"{raw.bytes / 2**20:.2f}",
           "pages": pairs.html_pages, "pairs": pairs.rows, "images": images.ok,
           "scored": scored.rows, "sim": f"{scored.similarity_mean or 0:.3f}", "safe": safe.rows}
    return row, Counter(safe.excluded_by_rule), scored.model


def print_summary(defs: Definitions, shards: list[str]) -> None:
    store = defs.resources["dataset_store"].store()
    totals = dict.fromkeys(TOTALS, 0)
    excluded: Counter[str] = Counter()
    print(f"\n{'shard':<24}" + "".join(f"{c:>8}" for c in COLUMNS))
    model = None
    for key in shards:
        found = shard_row(store, key)
        if found is None:
            print(f"{key:<24} (not fully materialized)")
            continue
        row, by_rule, model = found
        excluded.update(by_rule)
        for name in totals:
            totals[name] += row[name]
        print(f"{key:<24}" + "".join(f"{row[c]:>8}" for c in COLUMNS))
    print(f"{'total':<24}{'':>8}{'':>8}" + "".join(f"{totals[c]:>8}" for c in totals))
    if excluded:
        print("excluded by rule (a pair can count under several): "
              + ", ".join(f"{rule} {n}" for rule, n in excluded.most_common()))
    print(f"\ndataset store: {store.uri('')}")
    if model:
        print(f"CLIP model: {model['model']} pretrained={model['pretrained']} "
              f"weights={model['weights_sha256'][:16]} on {model['device']} ({model['precision']})")
