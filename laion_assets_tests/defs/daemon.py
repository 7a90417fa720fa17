"""A real `dagster-daemon run` on a temporary DAGSTER_HOME, for the automation and run-monitoring
tests.

The daemon loads `workspace.yaml` (its own code server, as in production) with the repository's
dagster.yaml copied into a fresh DAGSTER_HOME, and runs offline (replayed images, CLIP with
seeded random weights). It runs in its own session and is stopped by process group, as
laion_assets_tests/ui/conftest.py stops `dagster dev`. The crawl-drop sensor watches an empty
folder: tests register shards themselves (`register_drop`), so the only runs are theirs and the
automation sensor's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    Definitions,
    RunsFilter,
)
from dagster._core.instance.ref import InstanceRef

from laion_assets.definitions import build_definitions
from laion_assets.defs.jobs import shard_cpu_stages_job
from laion_assets.defs.partitions import SHARDS
from laion_assets.defs.registration import shards_to_add
from laion_assets.pipeline.shards.drops import list_drops
from laion_assets.sample.drop import write_sample_drop
from laion_assets.settings import Settings

REPO = Path(__file__).resolve().parents[2]
GPU_POOL = "gpu"
DAEMONS = {"SENSOR", "ASSET", "MONITORING", "QUEUED_RUN_COORDINATOR"}
START_TIMEOUT = 300


class Daemon:
    """`dagster-daemon run` on `root/dagster_home`, LAION_ASSETS_VAR `root/var`."""

    def __init__(self, root: Path, clip_batch_size: int = 32,
                 extra_env: dict[str, str] | None = None):
        self.root = root
        self.extra_env = extra_env or {}
        self.home = root / "dagster_home"
        self.var = root / "var"
        self.clip_batch_size = clip_batch_size
        self.log_path = root / "daemon.log"
        self.process: subprocess.Popen | None = None
        self.instance: DagsterInstance | None = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DAGSTER_", "LAION_ASSETS_"))}
        env.update({
            "DAGSTER_HOME": str(self.home), "LAION_ASSETS_VAR": str(self.var),
            "LAION_ASSETS_FETCH_SOURCES": "replay", "LAION_ASSETS_CLIP_PRETRAINED": "none",
            "LAION_ASSETS_CLIP_BATCH_SIZE": str(self.clip_batch_size),
            "LAION_ASSETS_SIMILARITY": "top_fraction", "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        })
        return env

    def settings(self) -> Settings:
        """The settings the daemon's code server reads from `environment()`."""
        return Settings(store=str(self.var / "store"), drops=str(self.var / "drops"),
                        shard_size=1, listing_base=None, s3_endpoint=None,
                        fetch_sources=("replay",), clip_pretrained=None,
                        clip_batch_size=self.clip_batch_size, similarity_mode="top_fraction")

    def defs(self) -> Definitions:
        return build_definitions(self.settings())

    def start(self) -> None:
        self.home.mkdir(parents=True)
        (self.var / "drops").mkdir(parents=True)
        shutil.copy(REPO / "dagster.yaml", self.home / "dagster.yaml")
        # The storages are created here, before the daemon and its code server start: two
        # processes creating a fresh sqlite storage at once stamp its schema twice.
        self.instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home)))
        self.instance.get_runs(limit=1)
        self.instance.get_daemon_heartbeats()
        self.instance.event_log_storage.get_concurrency_keys()
        self.instance.schedule_storage.all_instigator_state()
        daemon = Path(sys.executable).parent / "dagster-daemon"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(daemon), "run", "-w", str(REPO / "workspace.yaml")], cwd=self.home,
                env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        self.wait_for(self._all_daemons_beating, START_TIMEOUT, f"heartbeats of {DAEMONS}")

    def _all_daemons_beating(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"dagster-daemon exited ({self.process.returncode})\n"
                                 + self.log_tail())
        beats = self.instance.get_daemon_heartbeats()
        return set(beats) >= DAEMONS

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to the process group, then SIGKILL what is left of the session."""
        if self.instance is not None:
            self.instance.dispose()
        if self.process is None:
            return
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "--- dagster-daemon (last lines) ---\n" + "\n".join(tail)

    def wait_for(self, probe: Callable[[], Any], timeout: float, what: str,
                 interval: float = 1.0) -> Any:
        """Call `probe` until it returns something truthy; TimeoutError naming `what`."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}\n" + self.log_tail())
            time.sleep(interval)

    # -- what the tests do and look at -----------------------------------------------------

    def register_sample_drop(self, crawl: str, n_files: int, seed: int = 0) -> list[str]:
        """Write a sample drop outside the watched folder and register its shards."""
        drop_dir = self.root / "incoming" / crawl
        write_sample_drop(drop_dir, seed=seed, n_files=n_files)
        defs = self.defs()
        crawl_drops = defs.resources["crawl_drops"]
        drop = list_drops(str(drop_dir), crawl_drops.storage_options)[0]
        new = shards_to_add(defs.resources["dataset_store"].store(), crawl_drops, drop,
                            set(self.instance.get_dynamic_partitions(SHARDS)))
        self.instance.add_dynamic_partitions(SHARDS, new)
        return new

    def run_cpu_stages(self, shard: str) -> str:
        """`shard_cpu_stages` for `shard`, in this process on the daemon's instance; run id."""
        job = self.defs().resolve_job_def(shard_cpu_stages_job.name)
        result = job.execute_in_process(partition_key=shard, instance=self.instance)
        assert result.success
        return result.run_id

    def materializations(self, asset: str, shard: str) -> list:
        """Materialization records of `asset` for `shard`, oldest first."""
        return list(self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[shard]),
            limit=100, ascending=True).records)

    def wait_for_automation(self, timeout: float = START_TIMEOUT) -> None:
        """Until the automation sensor has evaluated once: the code location is loaded, and
        what is materialized from now on is seen as new (eager conditions ignore what was
        materialized before a sensor's first evaluation)."""
        storage = self.instance.schedule_storage
        self.wait_for(lambda: storage.get_auto_materialize_asset_evaluations(
            AssetKey("clip_scored_pairs"), limit=1), timeout,
            "the automation sensor's first evaluation")

    def runs_for(self, shard: str) -> list[DagsterRun]:
        return list(self.instance.get_runs(RunsFilter(tags={"dagster/partition": shard})))

    def gpu_slot_holders(self) -> set[str]:
        """Run ids holding a `gpu` pool slot."""
        info = self.instance.event_log_storage.get_concurrency_info(GPU_POOL)
        return {slot.run_id for slot in info.claimed_slots}

    def gpu_waiters(self) -> set[str]:
        """Run ids with a step waiting for a `gpu` pool slot."""
        info = self.instance.event_log_storage.get_concurrency_info(GPU_POOL)
        return {step.run_id for step in info.pending_steps if step.assigned_timestamp is None}

    def step_started(self, run_id: str, step: str) -> bool:
        return any(e.step_key == step for e in self.instance.all_logs(
            run_id, of_type=DagsterEventType.STEP_START))

    def worker_pid(self, run_id: str) -> int | None:
        """The pid of the process executing `run_id` (its in-process engine event)."""
        for entry in self.instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
            metadata = entry.dagster_event.engine_event_data.metadata or {}
            if "pid" in metadata:
                return int(metadata["pid"].value)
        return None

