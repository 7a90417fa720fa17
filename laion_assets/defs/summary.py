"""A printed summary of what a headless run produced, read back from the dataset store."""

from dagster import Definitions

from laion_assets.defs.assets.extracted_pairs import STAGE as EXTRACTED_PAIRS
from laion_assets.defs.assets.warc_shards import STAGE as WARC_SHARDS


def print_summary(defs: Definitions, shards: list[str]) -> None:
    store = defs.resources["dataset_store"].store()
    total_rows = total_pages = 0
    print(f"\n{'shard':<28} {'files':>5} {'MB':>7} {'pages':>6} {'pairs':>7}  output")
    for key in shards:
        raw, pairs = store.current(WARC_SHARDS, key), store.current(EXTRACTED_PAIRS, key)
        if raw is None or pairs is None:
            print(f"{key:<28} (not materialized)")
            continue
        pages = pairs["stats"]["counts"].get("html_pages", 0)
        total_rows += pairs["rows"]
        total_pages += pages
        print(f"{key:<28} {len(raw['files']):>5} {raw['bytes'] / 2**20:>7.2f} {pages:>6} "
              f"{pairs['rows']:>7}  {store.uri(pairs['file'])}")
    print(f"{'total':<28} {'':>5} {'':>7} {total_pages:>6} {total_rows:>7}")
