"""Shared fixtures: the sample crawl drop, a dataset store, Definitions and a real instance."""

import shutil
from pathlib import Path

import pytest
from dagster import instance_for_test

from laion_assets.definitions import build_definitions
from laion_assets.sample.drop import write_sample_drop
from laion_assets.settings import OFFLINE, PREFIX, Settings

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


@pytest.fixture(scope="session", autouse=True)
def offline_environment():
    """Tests run under the offline profile whatever the shell sets: every variable the
    settings read is cleared, and `LAION_ASSETS_PROFILE=offline` set (for code that reads the
    environment itself, e.g. the CLI)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in Settings.variables():
            patch.delenv(name, raising=False)
        patch.setenv(f"{PREFIX}PROFILE", OFFLINE)
        yield


@pytest.fixture
def settings(tmp_path, drops_dir) -> Settings:
    """The offline profile, with the store and drops in the test's folder."""
    return Settings(profile=OFFLINE, store=str(tmp_path / "store"), drops=str(drops_dir))


@pytest.fixture
def defs(settings):
    return build_definitions(settings)


@pytest.fixture
def instance():
    with instance_for_test() as dagster_instance:
        yield dagster_instance
