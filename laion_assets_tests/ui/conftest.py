"""A real `dagster dev` for the UI tests, started once for the package.

`dg dev -w workspace.yaml` runs in its own process group (it ignores SIGTERM sent to the
parent alone) with a fresh DAGSTER_HOME holding a copy of the repository's dagster.yaml, and
LAION_ASSETS_VAR in a temporary folder, offline: images replayed from the drop's WARC
captures, CLIP with seeded random weights.

Fixtures:
  dagster_dev     the server and a GraphQL client (`DagsterDev.graphql`, `launch_job_and_wait`, ...)
  crawl_backfill  the sample drop written into the watched location: the crawl-drop sensor
                  registers its shards and requests one backfill of them; waits until every
                  run (the backfill's and automation's) has finished.
  ui_browser      Chromium on the UI (Playwright); request it before crawl_backfill.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from laion_assets.sample.drop import write_sample_drop

REPO = Path(__file__).resolve().parents[2]
LOCATION = "laion_assets"
REPOSITORY = "__repository__"
SHARDS = "shards"  # the dynamic partitions definition
CRAWL = "CC-MAIN-SAMPLE"
SHARD_KEYS = [f"{CRAWL}/{index:05d}" for index in range(4)]
PER_SHARD_ASSETS = ["warc_shards", "extracted_pairs", "downloaded_images", "clip_scored_pairs"]
GPU_POOL = "gpu"
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--metrics-recording-only"]

# Generous: a 2-core machine starts four processes per run (run worker and step processes, each
# importing torch), and the backfill's runs and automation's share the run queue.
SERVER_START_TIMEOUT = 240
SENSOR_TIMEOUT = 240  # minimum interval 30 s, plus the time a tick takes
RUNS_TIMEOUT = 3600  # measured: 28 min with other test suites sharing the 2 cores

SENSOR = "crawl_drop_sensor"
SHARD_JOB = "shard_pipeline"  # every per-shard asset; the sensor's backfills select the same
ASSET_JOB = "__ASSET_JOB"  # the implicit job the UI launches asset selections in
IN_FLIGHT = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
# The server is `dg dev`, as `make ui` runs it. Should `dagster dev`'s "superseded" notice show
# up anyway, it is about the command, not the definitions, so it is silenced at its source and
# every other warning fails the load check.
DEV_COMMAND_NOTICE = "ignore:Function `dev_command` is superseded"
WARNING_LINE = re.compile(r"\bWARNING\b|\w*Warning\b")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# -- GraphQL: the queries and mutations the UI sends ------------------------------------------

PYTHON_ERROR = "fragment PythonErrorFields on PythonError { message stack }"

# The Dagster UI's LAUNCH_PARTITION_BACKFILL_MUTATION (ui-core/src/instance/backfill/
# BackfillUtils.tsx), sent by LaunchAssetChoosePartitionsDialog ("Materialize all…" →
# partitions → "Launch backfill"); `DagsterDev.backfill_params` builds its variables, and
# test_browser.py checks them against what the dialog sends.
LAUNCH_PARTITION_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on UnauthorizedError { message }
    ... on PipelineNotFoundError { message }
    ... on RunConflict { message }
    ... on ConflictingExecutionParamsError { message }
    ... on PresetNotFoundError { message }
    ... on RunConfigValidationInvalid { pipelineName errors { message path reason } }
    ...PythonErrorFields
  }
}
""" + PYTHON_ERROR

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message path reason } }
    ...PythonErrorFields
  }
}
""" + PYTHON_ERROR

BACKFILL = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id status numPartitions partitionNames isAssetBackfill partitionSetName
      assetSelection { path }
      tags { key value }
      error { message stack }
      partitionStatusCounts { runStatus count }
      assetBackfillData {
        assetBackfillStatuses {
          ... on AssetPartitionsStatusCounts {
            assetKey { path }
            numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized
            numPartitionsFailed
          }
        }
      }
    }
    ... on Error { message }
  }
}
"""

BACKFILLS = """
query Backfills {
  partitionBackfillsOrError(limit: 20) {
    __typename
    ... on PartitionBackfills { results { id tags { key value } } }
    ... on Error { message }
  }
}
"""

RUN_FIELDS = """
fragment RunFields on Run {
  runId status jobName startTime endTime
  tags { key value }
  assetSelection { path }
  stepStats { stepKey status startTime endTime }
}
"""

RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { ...RunFields } }
    ... on Error { message }
  }
}
""" + RUN_FIELDS

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ...RunFields
    ... on Error { message }
  }
}
""" + RUN_FIELDS

RUN_LOGS = """
query RunLogs($runId: ID!, $afterCursor: String) {
  logsForRun(runId: $runId, afterCursor: $afterCursor, limit: 1000) {
    __typename
    ... on EventConnection {
      cursor hasMore
      events {
        __typename
        ... on MessageEvent { message level }
        ... on StepEvent { stepKey }
        ... on ErrorEvent { error { message stack causes { message stack } } }
      }
    }
    ... on Error { message }
  }
}
"""

ASSET_NODES = """
query AssetNodes {
  assetNodes {
    assetKey { path }
    groupName
    pools
    isPartitioned
    partitionDefinition {
      type name
      dimensionTypes { name type dynamicPartitionsDefinitionName }
    }
  }
}
"""

JOB_ASSETS = """
query JobAssets($pipeline: PipelineSelector!) {
  assetNodes(pipeline: $pipeline) { assetKey { path } }
}
"""

PARTITION_KEYS = """
query PartitionKeys($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode { partitionKeys }
    ... on Error { message }
  }
}
"""

MATERIALIZATIONS = """
query Materializations($assetKey: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions) { partition runId timestamp }
    }
    ... on Error { message }
  }
}
"""

ASSET_CHECKS = """
query AssetChecks($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      assetChecksOrError {
        __typename
        ... on AssetChecks {
          checks { name blocking executionForLatestMaterialization { status runId } }
        }
      }
    }
  }
}
"""

WORKSPACE = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name loadStatus
        locationOrLoadError {
          __typename
          ...PythonErrorFields
        }
      }
    }
  }
}
""" + PYTHON_ERROR

POOL = """
query Pool($pool: String!) {
  instance {
    poolConfig { poolGranularity defaultPoolLimit }
    runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml }
    concurrencyLimit(concurrencyKey: $pool) {
      concurrencyKey limit usingDefaultLimit
      claimedSlots { runId stepKey }
      pendingSteps { runId stepKey assignedTimestamp }
    }
  }
}
"""


SENSOR_STATE = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      name minIntervalSeconds
      sensorState { status ticks(limit: 1) { status timestamp } }
    }
    ... on Error { message }
  }
}
"""


class GraphQLError(AssertionError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def asset_key(name: str | list[str]) -> dict:
    return {"path": [name] if isinstance(name, str) else list(name)}


class DagsterDev:
    """`dagster dev` in its own process group, and a GraphQL client for its webserver."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = root
        self.home = root / "dagster_home"
        self.var = root / "var"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = root / "dagster-dev.out"
        self.stderr_path = root / "dagster-dev.err"
        self.process: subprocess.Popen | None = None
        self.load_warnings: list[str] = []
        # Called on every poll while waiting for runs (the browser test watches the gpu pool).
        self.while_waiting: list[Callable[[], None]] = []

    # -- process ---------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DAGSTER_", "LAION_ASSETS_"))}
        env.update({
            "DAGSTER_HOME": str(self.home),
            "LAION_ASSETS_VAR": str(self.var),
            "LAION_ASSETS_PROFILE": "offline",  # as the Makefile (laion_assets/settings.py)
            "PYTHONWARNINGS": DEV_COMMAND_NOTICE,
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def start(self) -> None:
        self.home.mkdir(parents=True)
        (self.var / "drops").mkdir(parents=True)
        shutil.copy(REPO / "dagster.yaml", self.home / "dagster.yaml")
        dg = Path(sys.executable).parent / "dg"
        # cwd = DAGSTER_HOME: started in the repository, `dagster dev` warns that the
        # dagster.yaml it finds there is not the one DAGSTER_HOME uses.
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [str(dg), "dev", "-w", str(REPO / "workspace.yaml"),
                 "-h", "127.0.0.1", "-p", str(self.port)],
                cwd=self.home, env=self.environment(), stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_default_sigint,  # even where pytest runs with SIGINT ignored
            )
        self.wait_for(self._serving, SERVER_START_TIMEOUT, "the webserver's /server_info")
        self.wait_for(self._location_loaded, SERVER_START_TIMEOUT,
                      f"code location {LOCATION} to load")
        # The daemon loads the code location too: its first sensor tick ends the loading.
        self.wait_for(lambda: self.sensor(SENSOR)["sensorState"]["ticks"], SENSOR_TIMEOUT,
                      f"the daemon's first tick of {SENSOR}")
        self.load_warnings = self.warnings()

    def _serving(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"dagster dev exited ({self.process.returncode})\n"
                                 + self.output_tail())
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _location_loaded(self) -> bool:
        entries = self.location_entries()
        entry = next((e for e in entries if e["name"] == LOCATION), None)
        if entry is None or entry["loadStatus"] != "LOADED":
            return False
        error = entry["locationOrLoadError"]
        if error and error["__typename"] == "PythonError":
            raise AssertionError(f"code location {LOCATION} failed to load: {error['message']}\n"
                                 + "".join(error["stack"]))
        return True

    def stop(self, grace: float = 20.0) -> None:
        """SIGINT to the process group (dagster dev's own shutdown), then SIGKILL what is left."""
        if self.process is None:
            return
        session = self.process.pid  # session and group leader: start_new_session=True
        _signal_group(session, signal.SIGINT)
        deadline = time.monotonic() + grace
        while _session_pids(session) and time.monotonic() < deadline:
            time.sleep(0.5)
        _signal_group(session, signal.SIGKILL)
        for pid in _session_pids(session):  # a child that made its own group, same session
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        self.process = None

    def output(self) -> str:
        text = ""
        for path in (self.stdout_path, self.stderr_path):
            if path.exists():
                text += ANSI.sub("", path.read_text(errors="replace"))
        return text

    def output_tail(self, lines: int = 80) -> str:
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            if path.exists():
                tail = ANSI.sub("", path.read_text(errors="replace")).splitlines()[-lines:]
                parts.append(f"--- {path.name} (last {len(tail)} lines) ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def warnings(self) -> list[str]:
        return [line for line in self.output().splitlines() if WARNING_LINE.search(line)]

    # -- GraphQL ---------------------------------------------------------------------------

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        """POST to /graphql; the `data`, or GraphQLError with the errors."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise GraphQLError(f"HTTP {exc.code}: {exc.read()[:2000]!r}") from exc
        if payload.get("errors"):
            raise GraphQLError(json.dumps(payload["errors"], indent=1)[:4000])
        return payload["data"]

    def wait_for(self, probe: Callable[[], Any], timeout: float, what: str,
                 interval: float = 2.0) -> Any:
        """Call `probe` until it returns something truthy; TimeoutError naming `what`."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            last = probe()
            if last:
                return last
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}; last: {last!r}\n"
                                   + self.output_tail())
            time.sleep(interval)

    def location_entries(self) -> list[dict]:
        try:
            data = self.graphql(WORKSPACE)
        except GraphQLError:
            return []
        workspace = data["workspaceOrError"]
        return workspace.get("locationEntries", [])

    def asset_nodes(self) -> list[dict]:
        return self.graphql(ASSET_NODES)["assetNodes"]

    def per_shard_assets(self) -> list[str]:
        """Names of the assets partitioned by the `shards` dynamic partitions."""
        names = []
        for node in self.asset_nodes():
            definition = node["partitionDefinition"] or {}
            dims = definition.get("dimensionTypes") or []
            if any(d.get("dynamicPartitionsDefinitionName") == SHARDS for d in dims):
                names.append("/".join(node["assetKey"]["path"]))
        return names

    def job_assets(self, job: str) -> list[str]:
        """The assets of an asset job, in the order the UI lists them (by key)."""
        nodes = self.graphql(JOB_ASSETS, {"pipeline": {
            "pipelineName": job, "repositoryName": REPOSITORY,
            "repositoryLocationName": LOCATION}})["assetNodes"]
        return sorted("/".join(n["assetKey"]["path"]) for n in nodes)

    def asset_checks(self, asset: str) -> list[dict]:
        """The asset's checks with the status of their run for its latest materialization."""
        node = self.graphql(ASSET_CHECKS, {"assetKey": asset_key(asset)})["assetNodeOrError"]
        assert node["__typename"] == "AssetNode", node
        checks = node["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", checks
        return checks["checks"]

    def partition_keys(self, asset: str) -> list[str]:
        node = self.graphql(PARTITION_KEYS, {"assetKey": asset_key(asset)})["assetNodeOrError"]
        assert node["__typename"] == "AssetNode", node
        return node["partitionKeys"]

    def materialized_partitions(self, asset: str) -> dict[str, list[str]]:
        """Partition key -> run ids of its materializations."""
        data = self.graphql(MATERIALIZATIONS, {"assetKey": asset_key(asset)})["assetOrError"]
        if data["__typename"] != "Asset":
            return {}
        found: dict[str, list[str]] = {}
        for event in data["assetMaterializations"]:
            found.setdefault(event["partition"], []).append(event["runId"])
        return found

    def sensor(self, name: str) -> dict:
        data = self.graphql(SENSOR_STATE, {"selector": {
            "repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
            "sensorName": name}})["sensorOrError"]
        assert data["__typename"] == "Sensor", data
        return data

    def pool(self, name: str = GPU_POOL) -> dict:
        return self.graphql(POOL, {"pool": name})["instance"]

    # -- launching and waiting -------------------------------------------------------------

    @staticmethod
    def backfill_params(job: str, assets: list[str], partitions: list[str]) -> dict:
        """The variables the job page's "Materialize all…" dialog sends for `partitions`.

        Jobs → `job` → Materialize all… → a partition selection → Launch backfill: the job's
        assets, the partitions, the job's partition set and the UI's `dagster/from_ui` tag.
        """
        return {"backfillParams": {
            "tags": [{"key": "dagster/from_ui", "value": "true"}],
            "assetSelection": [asset_key(a) for a in assets],
            "partitionNames": list(partitions),
            "fromFailure": False,
            "selector": {
                "partitionSetName": f"{job}_partition_set",
                "repositorySelector": {"repositoryLocationName": LOCATION,
                                       "repositoryName": REPOSITORY},
            },
        }}

    def launch_backfill(self, job: str, partitions: list[str]) -> str:
        """Backfill `partitions` of every asset of `job`, as the UI launches it; the id."""
        variables = self.backfill_params(job, self.job_assets(job), partitions)
        result = self.graphql(LAUNCH_PARTITION_BACKFILL, variables)["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        return result["backfillId"]

    def backfill(self, backfill_id: str) -> dict:
        data = self.graphql(BACKFILL, {"backfillId": backfill_id})["partitionBackfillOrError"]
        assert data["__typename"] == "PartitionBackfill", data
        return data

    def backfills(self, tags: dict[str, str]) -> list[str]:
        """Ids of the latest backfills carrying every tag of `tags`."""
        data = self.graphql(BACKFILLS)["partitionBackfillsOrError"]
        assert data["__typename"] == "PartitionBackfills", data
        return [b["id"] for b in data["results"]
                if tags.items() <= {(t["key"], t["value"]) for t in b["tags"]}]

    def wait_for_backfill(self, backfill_id: str, timeout: float = RUNS_TIMEOUT) -> dict:
        def done():
            self._while_waiting()
            backfill = self.backfill(backfill_id)
            return backfill if backfill["status"] in BACKFILL_DONE else None

        return self.wait_for(done, timeout, f"backfill {backfill_id} to finish", interval=5)

    def runs(self, tags: dict[str, str] | None = None,
             statuses: list[str] | None = None) -> list[dict]:
        run_filter: dict = {}
        if tags:
            run_filter["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        if statuses:
            run_filter["statuses"] = statuses
        data = self.graphql(RUNS, {"filter": run_filter})["runsOrError"]
        assert data["__typename"] == "Runs", data
        return data["results"]

    def run(self, run_id: str) -> dict:
        data = self.graphql(RUN, {"runId": run_id})["runOrError"]
        assert data["__typename"] == "Run", data
        return data

    def wait_for_idle(self, timeout: float = RUNS_TIMEOUT) -> list[dict]:
        """Wait until no run is queued or in progress; every run."""
        def idle():
            self._while_waiting()
            return not self.runs(statuses=IN_FLIGHT)

        self.wait_for(idle, timeout, "every run to finish", interval=5)
        return self.runs()

    def _while_waiting(self) -> None:
        for hook in list(self.while_waiting):
            hook()

    def launch_run(self, job: str, *, assets: list[str] | None = None,
                   partition: str | None = None, tags: dict[str, str] | None = None,
                   run_config: dict | None = None) -> str:
        """Launch one run of `job` (an asset subset, a partition) as the launchpad does."""
        selector: dict = {"jobName": job, "repositoryName": REPOSITORY,
                          "repositoryLocationName": LOCATION}
        if assets:
            selector["assetSelection"] = [asset_key(a) for a in assets]
        run_tags = {"dagster/from_ui": "true", **(tags or {})}
        if partition is not None:
            run_tags["dagster/partition"] = partition
        params = {"selector": selector, "runConfigData": run_config or {},
                  "executionMetadata": {"tags": [{"key": k, "value": v}
                                                 for k, v in run_tags.items()]}}
        result = self.graphql(LAUNCH_RUN, {"executionParams": params})["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def wait_for_run(self, run_id: str, timeout: float = RUNS_TIMEOUT) -> dict:
        def finished():
            run = self.run(run_id)
            return run if run["status"] not in IN_FLIGHT else None

        return self.wait_for(finished, timeout, f"run {run_id} to finish", interval=3)

    def launch_job_and_wait(self, job: str, *, timeout: float = RUNS_TIMEOUT, **launch) -> dict:
        """Launch a run of `job` and wait for it; fail with its error events unless it succeeded."""
        run = self.wait_for_run(self.launch_run(job, **launch), timeout)
        assert run["status"] == "SUCCESS", self.failure_report([run])
        return run

    def materialize(self, assets: list[str], *, timeout: float = RUNS_TIMEOUT,
                    **launch) -> dict:
        """Materialize `assets` as their page's Materialize button does (the implicit asset
        job, `__ASSET_JOB`); `partition=`, `run_config=`, `tags=` as for `launch_run`."""
        return self.launch_job_and_wait(ASSET_JOB, assets=assets, timeout=timeout, **launch)

    # -- diagnostics -----------------------------------------------------------------------

    def run_errors(self, run_id: str) -> list[str]:
        lines, cursor = [], None
        while True:
            data = self.graphql(RUN_LOGS, {"runId": run_id, "afterCursor": cursor})["logsForRun"]
            if data["__typename"] != "EventConnection":
                return [f"(no logs: {data})"]
            for event in data["events"]:
                error = event.get("error")
                if error or event.get("level") in ("ERROR", "CRITICAL"):
                    lines.append(f"[{event['__typename']}] {event.get('stepKey') or ''} "
                                 f"{event.get('message', '')}")
                if error:
                    for err in [error, *error.get("causes", [])]:
                        lines.append(f"  {err['message']}\n" + "".join(err["stack"]))
            if not data["hasMore"]:
                return lines
            cursor = data["cursor"]

    def failure_report(self, runs: list[dict]) -> str:
        parts = []
        for run in runs:
            if run["status"] == "SUCCESS":
                continue
            tags = {t["key"]: t["value"] for t in run["tags"]}
            parts.append(f"=== run {run['runId']} {run['status']} "
                         f"partition={tags.get('dagster/partition')} "
                         f"backfill={tags.get('dagster/backfill')}")
            steps = ", ".join(f"{s['stepKey']}={s['status']}" for s in run["stepStats"])
            parts.append(f"steps: {steps}")
            parts.extend(self.run_errors(run["runId"]))
        parts.append(self.output_tail())
        return "\n".join(parts)


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to default, so dagster dev can handle it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _session_pids(session: int) -> list[int]:
    """Live processes of session `session` (the group dagster dev leads, and any stragglers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


@dataclass
class CrawlBackfill:
    shards: list[str]
    assets: list[str]
    backfill_id: str
    backfill: dict
    backfill_runs: list[dict]  # the sensor's backfill's: one per shard
    all_runs: list[dict]


class UiBrowser:
    """Chromium on the server's UI (Playwright); screenshots go to docs/screenshots/."""

    def __init__(self, server: DagsterDev, page):
        self.server = server
        self.page = page
        self.busy_pool_captured = False

    def open(self, path: str, *texts: str, timeout: float = 120) -> None:
        """Go to `path` and wait until every one of `texts` is visible."""
        self.page.goto(self.server.url + path, wait_until="load", timeout=timeout * 1000)
        for text in texts:
            self.expect_text(text, timeout)

    def expect_text(self, text: str, timeout: float = 120) -> None:
        locator = self.page.get_by_text(text, exact=True).first
        try:
            locator.wait_for(state="visible", timeout=timeout * 1000)
        except Exception as exc:  # playwright's TimeoutError: name what was missing
            body = self.page.inner_text("body")[:3000]
            raise AssertionError(f"{self.page.url}: {text!r} not visible within {timeout:.0f} s;"
                                 f" the page reads:\n{body}") from exc

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        self.page.wait_for_timeout(1500)  # let the last poll render
        self.page.screenshot(path=str(path))
        return path

    def capture_busy_gpu_pool(self) -> None:
        """While runs go on: the gpu pool page once one CLIP step holds it and another waits."""
        if self.busy_pool_captured:
            return
        info = self.server.pool(GPU_POOL)["concurrencyLimit"]
        waiting = [s for s in info["pendingSteps"] if not s["assignedTimestamp"]]
        if not info["claimedSlots"] or not waiting:
            return
        self.open(f"/deployment/concurrency/{GPU_POOL}", "In progress steps")
        self.expect_text("clip_scored_pairs")
        self.screenshot("gpu-pool.png")
        self.busy_pool_captured = True


@pytest.fixture(scope="package")
def ui_browser(request):
    """Chromium (Debian's) driven by Playwright, watching the gpu pool while runs go on.

    Package-scoped and requested before `crawl_backfill`, so the pool page can be captured
    while the backfill's CLIP steps queue for the pool.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser test drives Debian's Chromium. Install "
                    "it with scripts/system-packages.sh (`make test` runs it).", pytrace=False)
    from playwright.sync_api import sync_playwright

    server: DagsterDev = request.getfixturevalue("dagster_dev")
    server.graphql("mutation { setNuxSeen }")  # the "Join the Dagster community" dialog
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(120_000)
            ui = UiBrowser(server, page)
            server.while_waiting.append(ui.capture_busy_gpu_pool)
            try:
                yield ui
            finally:
                server.while_waiting.remove(ui.capture_busy_gpu_pool)
        finally:
            browser.close()


@pytest.fixture(scope="package")
def dagster_dev(tmp_path_factory):
    server = DagsterDev(tmp_path_factory.mktemp("dagster_dev"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def crawl_backfill(dagster_dev: DagsterDev) -> CrawlBackfill:
    """The sample drop through the sensor: its shards and the one backfill it requested, with
    every run done."""
    server = dagster_dev
    staging = server.var / "staging" / CRAWL
    write_sample_drop(staging, seed=0)
    staging.rename(server.var / "drops" / CRAWL)  # the sensor never sees half a drop

    shards = server.wait_for(
        lambda: sorted(server.partition_keys("warc_shards")) == SHARD_KEYS and SHARD_KEYS,
        SENSOR_TIMEOUT, f"the crawl-drop sensor to register {SHARD_KEYS}", interval=3)
    assets = server.job_assets(SHARD_JOB)
    [backfill_id] = server.wait_for(
        lambda: server.backfills({"dagster/sensor_name": SENSOR}), SENSOR_TIMEOUT,
        "the crawl-drop sensor's backfill", interval=3)
    server.wait_for_backfill(backfill_id)
    all_runs = server.wait_for_idle()
    backfill = server.backfill(backfill_id)
    backfill_runs = [r for r in all_runs if _tag(r, "dagster/backfill") == backfill_id]
    assert len(server.backfills({})) == 1, "the sensor requested more than one backfill"
    return CrawlBackfill(shards, assets, backfill_id, backfill, backfill_runs, all_runs)


def _tag(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)
