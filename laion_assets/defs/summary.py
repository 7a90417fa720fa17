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

COLUMNS = ("files", "MB", "pages", "pairs", "images", "scored", "mean_sim", "safe")
LEGEND = ("files: WARC files, MB: their size, pages: HTML pages, pairs: image/alt-text pairs "
          "extracted,\nimages: images fetched, scored: pairs given a CLIP similarity, "
          "mean_sim: their mean image-text\ncosine similarity, safe: pairs passing every "
          "safety rule")
UNTRAINED = ("  untrained: seeded random weights (the offline profile), so similarities sit "
             "near 0 and rank\n  nothing; set LAION_ASSETS_CLIP_PRETRAINED for real scores")
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
           "scored": scored.rows, "mean_sim": f"{scored.similarity_mean or 0:.3f}",
           "safe": safe.rows}
    return row, Counter(safe.excluded_by_rule), scored.model


def print_summary(defs: Definitions, shards: list[str]) -> None:
    store = defs.resources["dataset_store"].store()
    totals = dict.fromkeys(TOTALS, 0)
    excluded: Counter[str] = Counter()
    print(f"\n{'shard':<24}" + "".join(f"{c:>9}" for c in COLUMNS))
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
        print(f"{key:<24}" + "".join(f"{row[c]:>9}" for c in COLUMNS))
    print(f"{'total':<24}{'':>9}{'':>9}" + "".join(f"{totals[c]:>9}" for c in totals))
    if excluded:
        print("excluded by rule (a pair can count under several): "
              + ", ".join(f"{rule} {n}" for rule, n in excluded.most_common()))
    print(LEGEND)
    print(f"\ndataset store: {store.uri('')}")
    if model:
        print(f"CLIP model: {model['model']} pretrained={model['pretrained']} "
              f"weights={model['weights_sha256'][:16]} on {model['device']} ({model['precision']})")
        if model["weights_sha256"] == "untrained" or model["pretrained"] in (None, "none"):
            print(UNTRAINED)


def release_line(store: DatasetStore, name: str, shards: list[str]) -> str | None:
    """What the latest version of release `name` holds against `shards`; None if no version
    is committed."""
    from laion_assets.pipeline.release.publish import latest_release, list_versions

    if not list_versions(store, name):
        return None
    manifest = latest_release(store, name)
    new = sorted(set(shards) - {s.shard for s in manifest.source_shards})
    if not new:
        return (f"release {name} v{manifest.version} unchanged: nothing new "
                f"({manifest.rows} rows, {store.uri(manifest.folder)})")
    return (f"release {name} v{manifest.version} lacks {len(new)} shards materialized now: "
            f"`laion-assets release` cuts v{manifest.version + 1}")


def next_steps(store: DatasetStore, name: str) -> list[str]:
    """What to try next, with a URL from the latest version of release `name`."""
    from laion_assets.pipeline.release.publish import latest_release, read_parts

    steps = ["make ui                 # the assets, runs and metadata at http://127.0.0.1:3000"]
    manifest = latest_release(store, name)
    for _, table in read_parts(store, manifest.folder, manifest.parts):
        if table.num_rows:
            url = table.column("URL")[0].as_py()
            steps.append(f"laion-assets provenance --url '{url}'   # where a released pair "
                         "came from")
            break
    steps.append(f"laion-assets explore --release {name} --build-index   # search and audit "
                 "it at http://127.0.0.1:8765")
    return steps
