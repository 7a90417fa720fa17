"""The automation the README promises is on: a real daemon runs each shard's downstream stages.

Only `shard_cpu_stages` is run by the test (in this process, on the daemon's instance); the
automation condition sensor defined in code (running by default) must then launch
`clip_scored_pairs` and, once it is materialized, `safety_filtered_pairs` for that shard.
"""

import pytest

from laion_assets.defs.automation import automation_sensor
from laion_assets_tests.defs.daemon import Daemon

# Two sensor ticks (30 s apart) and two runs, each importing torch: about 2 min on an idle
# machine; generous, as the 2 cores are often shared with other suites.
AUTOMATION_TIMEOUT = 900


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    server = Daemon(tmp_path_factory.mktemp("automation"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_cpu_stages_alone_bring_clip_then_safety(daemon: Daemon):
    [shard] = daemon.register_sample_drop("CC-MAIN-AUTO", n_files=1)
    daemon.wait_for_automation()
    cpu_run = daemon.run_cpu_stages(shard)

    safety = daemon.wait_for(lambda: daemon.materializations("safety_filtered_pairs", shard),
                             AUTOMATION_TIMEOUT, f"safety_filtered_pairs of {shard}")
    clip = daemon.materializations("clip_scored_pairs", shard)
    assert len(clip) == 1 and len(safety) == 1
    assert clip[0].storage_id < safety[0].storage_id  # CLIP first, then safety
    clip_run, safety_run = clip[0].run_id, safety[0].run_id
    assert cpu_run not in (clip_run, safety_run)

    runs = {run.run_id: run for run in daemon.runs_for(shard)}
    assert set(runs) == {cpu_run, clip_run, safety_run}  # nothing else was launched
    for run_id in (clip_run, safety_run):
        assert runs[run_id].status.value == "SUCCESS"
        assert runs[run_id].tags.get("dagster/sensor_name") == automation_sensor.name
