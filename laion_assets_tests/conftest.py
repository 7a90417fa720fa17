"""Shared fixtures: the sample crawl drop, a dataset store, Definitions and a real instance."""

import shutil
from pathlib import Path

import pytest
from dagster import instance_for_test

from laion_assets.definitions import build_definitions
from laion_assets.sample.drop import write_sample_drop
from laion_assets.settings import Settings

SHARED_WARCS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "warcs"


@pytest.fixture(scope="session")
def sample_drop_template(tmp_path_factory) -> Path:
    """The default sample drop, written once per test session (copy it before changing it)."""
    drop = tmp_path_factory.mktemp("template") / "CC-MAIN-SAMPLE"
    write_sample_drop(drop, seed=0)
    return drop


@pytest.fixture
def drops_dir(tmp_path, sample_drop_template) -> Path:
    """A drops location holding a private copy of the sample drop."""
    drops = tmp_path / "drops"
    shutil.copytree(sample_drop_template, drops / sample_drop_template.name)
    return drops


@pytest.fixture
def settings(tmp_path, drops_dir) -> Settings:
    return Settings(store=str(tmp_path / "store"), drops=str(drops_dir), shard_size=1,
                    listing_base=None, s3_endpoint=None, fetch_sources=("replay",),
                    clip_pretrained=None, clip_batch_size=32)


@pytest.fixture
def defs(settings):
    return build_definitions(settings)


@pytest.fixture
def instance():
    with instance_for_test() as dagster_instance:
        yield dagster_instance
