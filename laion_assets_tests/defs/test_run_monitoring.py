"""A killed run does not hold the `gpu` pool slot: it ends FAILED and the next CLIP step starts.

End to end with a real `dagster-daemon run` (run monitoring from the repository's
dagster.yaml) and real processes killed with SIGKILL mid-CLIP: a run the daemon launched
(through the automation sensor) and a run of `laion-assets materialize` (in-process in the CLI,
watched only by the sweep). Two runs reach CLIP together, one holds the slot (the pool's
limit is 1), the other waits (its step pending on the pool, or its run held in the daemon's
queue); the holder's process is killed; within the bound the killed run must be FAILED, its
slot free and the waiter under way, and then the waiter's CLIP step runs. Plus the sweep
itself on a real instance with a real dead process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from dagster import (
    DagsterRun,
    DagsterRunStatus,
    RunsFilter,
    build_sensor_context,
    instance_for_test,
)

from laion_assets.defs.run_sweep import (
    PID_TAG,
    STARTED_TAG,
    dead_run_sensor,
    sweep_dead_runs,
    worker_alive,
    worker_tags,
)
from laion_assets.sample.drop import write_sample_drop
from laion_assets_tests.defs.daemon import GPU_POOL, Daemon

CLIP_STEP = "clip_scored_pairs"
SLOT_BOUND = 120  # the bound: a dead run's slot is free for the next CLIP step
# Reaching CLIP: runs started by the daemon or the CLI import torch and run the CPU stages
# first; generous, as the 2 cores are often shared with other suites.
REACH_CLIP_TIMEOUT = 600
# ViT-B-16 with batch size 1 on CPU: a CLIP step long enough to be killed in the middle.
SLOW_CLIP = {"LAION_ASSETS_CLIP_MODEL": "ViT-B-16"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    server = Daemon(tmp_path_factory.mktemp("monitoring"), clip_batch_size=1,
                    extra_env=SLOW_CLIP)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _kill_the_holder_when_another_waits(daemon: Daemon, candidates) -> tuple[str, str, float]:
    """Once one of `candidates()` holds the gpu slot and another waits for it (its CLIP step
    pending on the pool, or, launched by the daemon, the run held in the queue because its
    pool is full): SIGKILL the holder's process. (killed run, waiting run, time of the kill)."""
    def holder_and_waiter():
        runs = candidates()
        queued = {r for r in runs
                  if daemon.instance.get_run_by_id(r).status == DagsterRunStatus.QUEUED}
        holders = daemon.gpu_slot_holders() & runs
        waiters = (daemon.gpu_waiters() | queued) & runs - holders
        return (next(iter(holders)), next(iter(waiters))) if holders and waiters else None

    holder, waiter = daemon.wait_for(holder_and_waiter, REACH_CLIP_TIMEOUT,
                                     "one run holding the gpu slot while another waits",
                                     interval=0.2)
    run = daemon.instance.get_run_by_id(holder)
    pid = int(run.tags[PID_TAG]) if PID_TAG in run.tags else daemon.worker_pid(holder)
    assert pid, f"no process recorded for run {holder}"
    os.kill(pid, signal.SIGKILL)
    return holder, waiter, time.monotonic()


def _assert_the_slot_passes_on(daemon: Daemon, killed: str, waiter: str, killed_at: float):
    """Within SLOT_BOUND of the kill: the killed run FAILED and its slot free, and the waiter
    on its way (its CLIP step started, or, if it was queued, out of the queue); then its
    CLIP step starts."""
    instance = daemon.instance
    queued = instance.get_run_by_id(waiter).status == DagsterRunStatus.QUEUED

    def passed_on() -> bool:
        if not instance.get_run_by_id(killed).is_finished or killed in daemon.gpu_slot_holders():
            return False
        if queued:
            return instance.get_run_by_id(waiter).status != DagsterRunStatus.QUEUED
        return daemon.step_started(waiter, CLIP_STEP) or waiter in daemon.gpu_slot_holders()

    daemon.wait_for(passed_on, SLOT_BOUND + 60, f"the gpu slot to pass from {killed} to {waiter}")
    waited = time.monotonic() - killed_at
    assert waited <= SLOT_BOUND, f"the slot passed on {waited:.0f} s after the kill"
    assert instance.get_run_by_id(killed).status == DagsterRunStatus.FAILURE
    daemon.wait_for(lambda: daemon.step_started(waiter, CLIP_STEP), REACH_CLIP_TIMEOUT,
                    f"run {waiter}'s CLIP step")


def test_a_killed_daemon_run_frees_the_gpu_slot(daemon: Daemon):
    shards = daemon.register_sample_drop("CC-MAIN-DAEMON", n_files=2)
    daemon.wait_for_automation()
    for shard in shards:  # the automation sensor then launches one CLIP run per shard
        daemon.run_cpu_stages(shard)

    def clip_runs() -> set[str]:
        return {r.run_id for shard in shards for r in daemon.runs_for(shard)
                if r.tags.get("dagster/sensor_name")}

    killed, waiter, killed_at = _kill_the_holder_when_another_waits(daemon, clip_runs)
    _assert_the_slot_passes_on(daemon, killed, waiter, killed_at)
    # The waiter's slow CLIP is not needed: killed too, so the next test finds the pool free.
    os.kill(daemon.worker_pid(waiter), signal.SIGKILL)
    daemon.wait_for(lambda: not daemon.gpu_slot_holders(), SLOT_BOUND,
                    f"the slot of killed run {waiter} to be freed")


def test_a_killed_materialize_frees_the_gpu_slot(daemon: Daemon):
    env = {**daemon.environment(), "PYTHONWARNINGS": "ignore"}
    cli = Path(sys.executable).parent / "laion-assets"
    processes = []
    for crawl in ("CC-MAIN-CLI-A", "CC-MAIN-CLI-B"):
        drop = daemon.root / "incoming" / crawl
        write_sample_drop(drop, seed=1, n_files=1)
        log = open(daemon.root / f"{crawl}.log", "wb")  # noqa: SIM115 (closed below)
        processes.append((subprocess.Popen([str(cli), "materialize", "--drop", str(drop)],
                                           env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True), log))
    pids = {str(p.pid) for p, _ in processes}

    def cli_runs() -> set[str]:
        runs = daemon.instance.get_runs(RunsFilter(tags={"laion_assets/trigger": "cli"}))
        return {r.run_id for r in runs if r.tags.get(PID_TAG) in pids}

    try:
        killed, waiter, killed_at = _kill_the_holder_when_another_waits(daemon, cli_runs)
        _assert_the_slot_passes_on(daemon, killed, waiter, killed_at)
    finally:
        for process, log in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
            log.close()


def test_the_sweep_fails_a_dead_process_run_and_frees_its_slot():
    overrides = {"concurrency": {"pools": {"granularity": "op", "default_limit": 1}}}
    with instance_for_test(overrides=overrides) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(GPU_POOL, 1)
        process = subprocess.Popen(["sleep", "60"])
        dead = _started_run(instance, worker_tags(process.pid))
        alive = _started_run(instance, worker_tags())
        assert storage.claim_concurrency_slot(GPU_POOL, dead, CLIP_STEP).is_claimed
        assert not storage.claim_concurrency_slot(GPU_POOL, alive, CLIP_STEP).is_claimed
        assert sweep_dead_runs(instance) == []  # its process still runs

        process.kill()
        process.wait()
        assert not worker_alive(dict(instance.get_run_by_id(dead).tags))
        result = dead_run_sensor(build_sensor_context(instance=instance))
        assert "1 dead runs failed" in result.skip_message
        assert instance.get_run_by_id(dead).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive).status == DagsterRunStatus.STARTED
        assert storage.claim_concurrency_slot(GPU_POOL, alive, CLIP_STEP).is_claimed
        assert sweep_dead_runs(instance) == []  # failed once, not again


def test_a_reused_pid_is_not_the_runs_process():
    tags = {**worker_tags(), STARTED_TAG: "12.000"}  # this pid, another start time
    assert not worker_alive(tags)
    assert worker_alive(worker_tags())
    assert not worker_alive({})


def _started_run(instance, tags: dict[str, str]) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="shard_gpu_stage", run_id=run_id,
                                status=DagsterRunStatus.STARTED, tags=tags))
    return run_id
