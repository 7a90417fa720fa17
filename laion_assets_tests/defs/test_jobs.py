"""release_job's launchpad: the release selection only; the resources' settings stay theirs."""

import pytest
import yaml
from dagster import DagsterInstance, DagsterInvalidConfigError
from dagster_graphql.schema.run_config import default_values_yaml_from_type_snap

from laion_assets.definitions import build_definitions
from laion_assets.defs.assets.release import ReleaseRunConfig


def launchpad_yaml(defs, job_name: str) -> str:
    """What the launchpad pre-fills for a job: its config schema's defaults (rootDefaultYaml)."""
    snapshot = defs.resolve_job_def(job_name).get_job_snapshot()
    schema = snapshot.config_schema_snapshot
    root = schema.get_config_snap(snapshot.mode_def_snaps[0].root_config_key)
    return default_values_yaml_from_type_snap(schema, root)


def test_the_release_launchpad_shows_the_selection_only(settings):
    defs = build_definitions(settings)
    text = launchpad_yaml(defs, "release_job")
    assert yaml.safe_load(text) == {"ops": {"release": {"config": {
        name: field.default for name, field in ReleaseRunConfig.model_fields.items()
        if field.default is not None}}}}
    assert len(text.splitlines()) < 20
    # the shard job still shows every resource's settings (safety thresholds among them)
    shard = yaml.safe_load(launchpad_yaml(defs, "shard_pipeline"))
    assert "watermark_threshold" in shard["resources"]["safety_policy"]["config"]


def test_resource_settings_are_refused_at_launch(settings):
    job = build_definitions(settings).resolve_job_def("release_job")
    with pytest.raises(DagsterInvalidConfigError, match="resources"):
        job.execute_in_process(instance=DagsterInstance.ephemeral(), run_config={
            "resources": {"safety_policy": {"config": {"watermark_threshold": 0.9}}}})
