"""A printed summary of what a headless run produced, read back from the dataset store."""

from collections import Counter

from dagster import Definitions

from laion_assets.defs.assets.clip_scored_pairs import STAGE as CLIP_SCORED_PAIRS
from laion_assets.defs.assets.downloaded_images import STAGE as DOWNLOADED_IMAGES
from laion_assets.defs.assets.extracted_pairs import STAGE as EXTRACTED_PAIRS
from laion_assets.defs.assets.safety_filtered_pairs import STAGE as SAFETY_FILTERED_PAIRS
from laion_assets.defs.assets.warc_shards import STAGE as WARC_SHARDS

STAGES = (WARC_SHARDS, EXTRACTED_PAIRS, DOWNLOADED_IMAGES, CLIP_SCORED_PAIRS,
          SAFETY_FILTERED_PAIRS)
COLUMNS = ("files", "MB", "pages", "pairs", "images", "scored", "sim", "safe")


def print_summary(defs: Definitions, shards: list[str]) -> None:
    store = defs.resources["dataset_store"].store()
    totals = dict.fromkeys(("pages", "pairs", "images", "scored", "safe"), 0)
    excluded: Counter[str] = Counter()
    print(f"\n{'shard':<24}" + "".join(f"{c:>8}" for c in COLUMNS))
    model = None
    for key in shards:
        raw, pairs, images, scored, safe = (store.current(stage, key) for stage in STAGES)
        if None in (raw, pairs, images, scored, safe):
            print(f"{key:<24} (not fully materialized)")
            continue
        row = {"files": len(raw["files"]), "MB": f"{raw['bytes'] / 2**20:.2f}",
               "pages": pairs["stats"]["counts"].get("html_pages", 0), "pairs": pairs["rows"],
               "images": images["ok"], "scored": scored["rows"],
               "sim": f"{scored['similarity_mean'] or 0:.3f}", "safe": safe["rows"]}
        excluded.update(safe["excluded_by_rule"])
        for name in totals:
            totals[name] += row[name]
        model = scored["model"]
        print(f"{key:<24}" + "".join(f"{row[c]:>8}" for c in COLUMNS))
    print(f"{'total':<24}{'':>8}{'':>8}" + "".join(f"{totals[c]:>8}" for c in totals))
    if excluded:
        print("excluded by rule (a pair can count under several): "
              + ", ".join(f"{rule} {n}" for rule, n in excluded.most_common()))
    print(f"\ndataset store: {store.uri('')}")
    if model:
        print(f"CLIP model: {model['model']} pretrained={model['pretrained']} "
              f"weights={model['weights_sha256'][:16]} on {model['device']} ({model['precision']})")
