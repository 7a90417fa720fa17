"""Every column of every asset's column schema is described on the asset page."""

from dagster import AssetsDefinition

from laion_assets.definitions import build_definitions
from laion_assets.pipeline.core.columns import COLUMN_DESCRIPTIONS


def test_every_column_of_every_asset_has_a_description(settings):
    defs = build_definitions(settings)
    described: dict[str, int] = {}
    for asset in defs.assets:
        if not isinstance(asset, AssetsDefinition):
            continue
        for key, spec in asset.specs_by_key.items():
            schema = (spec.metadata or {}).get("dagster/column_schema")
            if schema is None:
                continue
            for column in schema.columns:
                assert column.description and column.description.strip(), (
                    f"{key.to_user_string()}.{column.name}: no description")
                described[key.to_user_string()] = described.get(key.to_user_string(), 0) + 1
    assert {"extracted_pairs", "downloaded_images", "clip_scored_pairs", "safety_filtered_pairs",
            "synthetic_captions", "release"} <= described.keys()
    assert sum(described.values()) >= 60


def test_every_shared_description_says_something():
    assert all(text.strip() for text in COLUMN_DESCRIPTIONS.values())
