"""Runs whose process died: fail them and free the pool slots their steps held.

A run the daemon launched is watched by the code server that started its worker (it marks
the run FAILED when the worker dies) and by the daemon's run monitoring (which then frees its
slots; `run_monitoring` in dagster.yaml). A run of `laion-assets materialize` executes in the
CLI's own process, which nothing watches: killed with `kill -9`, it would stay STARTED and keep
the `gpu` slot forever. Such runs carry `worker_tags()` (host, pid and the process's start
time, so a reused pid is not mistaken for the run's process); `sweep_dead_runs` fails every
unfinished run of this host whose process is gone and frees its slots. It runs when
`materialize` starts, every `SWEEP_INTERVAL` seconds while it runs, and in `dead_run_sensor`
(on by default) wherever a daemon runs.
"""

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

HOST_TAG = "laion_assets/worker_host"
PID_TAG = "laion_assets/worker_pid"
STARTED_TAG = "laion_assets/worker_started"
UNFINISHED = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
SWEEP_INTERVAL = 30.0


def worker_tags(pid: int | None = None) -> dict[str, str]:
    """Tags naming the process that executes a run in-process (this one by default)."""
    process = psutil.Process(pid or os.getpid())
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(process.pid),
            STARTED_TAG: f"{process.create_time():.3f}"}


def worker_alive(tags: dict[str, str]) -> bool:
    """Whether the process named by `worker_tags` still runs (same pid, same start time)."""
    try:
        process = psutil.Process(int(tags[PID_TAG]))
        return (f"{process.create_time():.3f}" == tags[STARTED_TAG]
                and process.status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, ValueError):
        return False


def sweep_dead_runs(instance: DagsterInstance) -> list[str]:
    """Fail this host's unfinished in-process runs whose process is gone; their run ids."""
    records = instance.get_run_records(RunsFilter(
        statuses=UNFINISHED, tags={HOST_TAG: socket.gethostname()}))
    swept = []
    for record in records:
        run = record.dagster_run
        if worker_alive(dict(run.tags)):
            continue
        instance.report_run_failed(
            run, f"The process that executed this run (pid {run.tags.get(PID_TAG)} on "
            f"{run.tags.get(HOST_TAG)}) is gone: marked failed and its pool slots freed.")
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        swept.append(run.run_id)
    return swept


@contextmanager
def sweeping(instance: DagsterInstance, log: Callable[[str], None],
             interval: float = SWEEP_INTERVAL) -> Iterator[None]:
    """Sweep now and every `interval` seconds (a background thread) until the block ends."""
    stop = threading.Event()

    def sweep() -> None:
        for run_id in sweep_dead_runs(instance):
            log(f"run {run_id[:8]}: its process is gone; marked FAILED, pool slots freed")

    def loop() -> None:
        while not stop.wait(interval):
            sweep()

    sweep()
    thread = threading.Thread(target=loop, name="dead-run-sweep", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@sensor(name="dead_run_sensor", minimum_interval_seconds=int(SWEEP_INTERVAL),
        default_status=DefaultSensorStatus.RUNNING,
        description="Fails `laion-assets materialize` runs whose process is gone (killed, "
        "crashed) and frees the pool slots they held, so a dead CLIP step does not keep the "
        "`gpu` slot.")
def dead_run_sensor(context: SensorEvaluationContext) -> SkipReason:
    swept = sweep_dead_runs(context.instance)
    for run_id in swept:
        context.log.info(f"run {run_id}: its process is gone; marked FAILED, slots freed")
    return SkipReason(f"{len(swept)} dead runs failed" if swept else "no dead runs")
