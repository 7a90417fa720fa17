"""The code location loads as Dagster loads it: the module-level `defs` of the module that
workspace.yaml and pyproject.toml ([tool.dagster], [tool.dg]) name."""

import tomllib
from pathlib import Path

import yaml
from dagster import AssetKey
from dagster._core.code_pointer import CodePointer
from dagster._core.definitions.reconstruct import initialize_repository_def_from_pointer
from dagster._core.workspace.autodiscovery import loadable_targets_from_python_module

REPO = Path(__file__).resolve().parents[1]
MODULE = "laion_assets.definitions"
ASSETS = ["warc_shards", "extracted_pairs", "downloaded_images", "clip_scored_pairs",
          "safety_filtered_pairs", "release"]
RESOURCES = {"dataset_store", "crawl_drops", "image_fetcher", "clip_model", "safety_policy"}


def test_every_entry_point_names_the_same_module():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    assert project["dagster"]["module_name"] == MODULE
    assert project["dg"]["project"]["code_location_target_module"] == MODULE
    assert workspace == [{"python_module": {"module_name": MODULE, "attribute": "defs",
                                            "location_name": "laion_assets"}}]


def test_dagster_finds_and_loads_the_module_level_defs():
    targets = loadable_targets_from_python_module(MODULE, working_directory=str(REPO))
    assert [target.attribute for target in targets] == ["defs"]
    pointer = CodePointer.from_module(MODULE, "defs", working_directory=str(REPO))
    repository = initialize_repository_def_from_pointer(pointer)
    graph = repository.asset_graph
    assert [key for key in map(AssetKey, ASSETS) if not graph.has(key)] == []
    assert {"shard_pipeline", "release_job"} <= {job.name for job in repository.get_all_jobs()}
    assert {"crawl_drop_sensor", "takedown_sensor"} <= {s.name for s in repository.sensor_defs}
    assert set(repository.get_top_level_resources()) >= RESOURCES
