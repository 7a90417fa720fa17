"""Histograms and counts as Dagster tables (on a real instance: they add up to the manifests),
and edges printed with the decimals their width needs."""

import base64
import io

import numpy as np
import pytest
from dagster import AssetKey
from PIL import Image

from laion_assets.defs.headless import cut_release
from laion_assets.defs.image_grid import grid_md
from laion_assets.defs.metadata import histogram_md, histogram_table
from laion_assets.pipeline.core.manifests import (
    FUNNEL,
    ClipScoredPairsManifest,
    SafetyFilteredPairsManifest,
    require_current,
)
from laion_assets.pipeline.release.publish import latest_release
from laion_assets.pipeline.scoring.stage import histogram
from laion_assets_tests import chains

SHARD = "CC-MAIN-SAMPLE/00000"


def test_untrained_similarities_as_a_table_and_a_chart():
    values = np.random.default_rng(0).normal(-0.025, 0.01, 200)
    bins = histogram(values)
    table = histogram_table(bins, "cosine similarity")
    assert [c.name for c in table.schema.columns] == ["from", "to", "pairs"]
    assert all(c.description for c in table.schema.columns)
    assert sum(r.data["pairs"] for r in table.records) == 200
    assert table.records[0].data["from"] <= values.min()
    chart = histogram_md(bins, "cosine")
    labels = [line.split("|")[1].strip() for line in chart.splitlines()[2:]]
    assert len(set(labels)) == len(labels)  # 0.005-wide bins: three decimals, none repeated
    assert "-0.000" not in chart and "-0.00 " not in chart


# -- on a real instance: the safety stage's and the release's tables ---------------------------

instance = chains.module_instance


@pytest.fixture(scope="module")
def released(tmp_path_factory, sample_drop_template, instance):
    """One sample shard through the safety stage, and a release of it."""
    defs = chains.materialize_sample_shards(tmp_path_factory.mktemp("tables"),
                                            sample_drop_template, instance, files=1)
    ok, _ = cut_release(defs, instance, {"name": "tables"})
    assert ok
    return defs.resources["dataset_store"].store()


def _metadata(instance, asset: str) -> dict:
    [record] = instance.fetch_materializations(AssetKey(asset), limit=1).records
    return record.asset_materialization.metadata


def _rows(table) -> list[dict]:
    return [record.data for record in table.value.records]


def test_safety_tables_add_up_to_the_manifest(instance, released):
    meta = _metadata(instance, "safety_filtered_pairs")
    manifest = require_current(released, SafetyFilteredPairsManifest, SHARD)
    rules = _rows(meta["excluded_by_rule_table"])
    assert {r["rule"]: r["pairs"] for r in rules} == manifest.excluded_by_rule
    assert [r["pairs"] for r in rules] == sorted((r["pairs"] for r in rules), reverse=True)
    assert [c.name for c in meta["excluded_by_rule_table"].value.schema.columns] == \
        ["rule", "pairs"]
    for name in ("punsafe", "pwatermark", "similarity"):
        bins = _rows(meta[f"{name}_bins"])
        assert sum(b["pairs"] for b in bins) == sum(n for *_, n in manifest.histograms[name])
        assert [(b["from"], b["to"]) for b in bins] == \
            [(lo, hi) for lo, hi, _ in manifest.histograms[name]]
    # every scored pair (a fetched image) gets a punsafe and a pwatermark score
    scored = require_current(released, ClipScoredPairsManifest, SHARD).rows
    assert 0 < scored < manifest.candidates  # the sample holds a failed fetch
    assert sum(b["pairs"] for b in _rows(meta["punsafe_bins"])) == scored
    assert sum(b["pairs"] for b in _rows(meta["pwatermark_bins"])) == scored


def test_release_tables_follow_the_funnel(instance, released):
    meta = _metadata(instance, "release")
    manifest = latest_release(released, "tables")
    funnel = _rows(meta["funnel"])
    assert [r["stage"] for r in funnel] == list(FUNNEL)  # flow order, not sorted
    assert {r["stage"]: r["items"] for r in funnel} == \
        {k: manifest.counts.get(k, 0) for k in FUNNEL}
    assert funnel[-1]["items"] == manifest.rows > 0
    assert {r["reason"]: r["rows"] for r in _rows(meta["withheld_at_publish_table"])} == \
        manifest.withheld
    assert _rows(meta["removed_by_reason_table"]) == []  # v1 removes nothing


def test_an_image_grid_of_passed_and_excluded_pairs(instance, released):
    """Inline thumbnails (data: URIs) of passed pairs and per rule; the shard's `not_fetched`
    pair has no image, so its row says so."""
    grid = _metadata(instance, "safety_filtered_pairs")["images"].value
    manifest = require_current(released, SafetyFilteredPairsManifest, SHARD)
    rows = {line.split("**")[1]: line for line in grid.split("\n\n")}
    assert set(rows) == {"passed", *manifest.excluded_by_rule}
    assert rows["passed"].count("](data:image/jpeg;base64,") == 6
    assert rows["aspect_ratio"].count("](data:image/jpeg;base64,") == 3
    assert rows["not_fetched"].endswith("(no stored image)")
    thumb = rows["passed"].split("base64,")[1].split(")")[0]
    with Image.open(io.BytesIO(base64.b64decode(thumb))) as image:
        assert max(image.size) <= 64


def test_blurred_and_never_shown_rules(released):
    """An NSFW rule's thumbnails are blurred; a hash-list rule is counted, never shown."""
    manifest = require_current(released, SafetyFilteredPairsManifest, SHARD)
    urls = released.read_parquet(manifest.pairs_file, columns=["url"]).column("url").to_pylist()
    grid = grid_md(released, SHARD, [], {"nsfw": urls[:2], "hash_list": urls[2:5]})
    passed, nsfw, hashed = grid.split("\n\n")
    assert passed == "**passed**: (no stored image)"
    assert nsfw.startswith("**nsfw** (blurred): ![nsfw](data:image/jpeg;base64,")
    assert nsfw.count("data:image") == 2
    assert hashed == "**hash_list** (3): matched by a hash list, never shown"
    plain = grid_md(released, SHARD, urls[:1], {})
    sharp, blurred = (_pixels(line) for line in (plain, nsfw))
    assert _detail(blurred) < _detail(sharp)  # the same image, blurred


def _pixels(line: str) -> Image.Image:
    data = base64.b64decode(line.split("base64,")[1].split(")")[0])
    return Image.open(io.BytesIO(data)).convert("L")


def _detail(image: Image.Image) -> float:
    """Mean absolute difference of neighbouring pixels: low when blurred."""
    values = np.asarray(image, dtype=float)
    return float(np.abs(np.diff(values, axis=1)).mean())
