"""Every stage before and after a change, side by side: the demo's step times per asset.

Runs `laion-assets demo` (the sample drop, every shard through every stage, a release) from
two source trees in turn, each with a fresh Dagster instance and store, and reads each run's
step durations from the instance's event log, summed per asset over the shards. Both trees
use this checkout's virtual environment (the older one through PYTHONPATH), so only the code
differs. Rounds alternate (before, after, before, …); the table shows each tree's fastest
round per stage, and the ratio after/before (below 1: faster now).

    git archive c86eaa3 | (mkdir -p /tmp/before && tar -x -C /tmp/before)
    .venv/bin/python benchmarks/bench_stages.py --before /tmp/before --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
# The offline profile as each tree spells it: the older tree read one variable per setting.
OLD_OFFLINE = {"LAION_ASSETS_FETCH_SOURCES": "replay", "LAION_ASSETS_CLIP_PRETRAINED": "none",
               "LAION_ASSETS_CLIP_BATCH_SIZE": "32", "LAION_ASSETS_SIMILARITY": "top_fraction"}
NEW_OFFLINE = {"LAION_ASSETS_PROFILE": "offline"}
STEP_TIMES = """
import json, sys
from collections import defaultdict
from dagster import DagsterInstance
instance = DagsterInstance.get()
totals = defaultdict(float)
for run in instance.get_runs():
    for step in instance.get_run_step_stats(run.run_id):
        if step.end_time and step.start_time:
            totals[step.step_key] += step.end_time - step.start_time
json.dump(totals, sys.stdout)
"""


def run_demo(tree: Path, env_extra: dict[str, str]) -> tuple[dict[str, float], float]:
    """Step seconds per asset and the demo's wall seconds, for one tree in a fresh var/."""
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as var:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("LAION_ASSETS_")},
               **env_extra, "PYTHONPATH": str(tree), "LAION_ASSETS_VAR": var,
               "DAGSTER_HOME": str(Path(var) / "dagster")}
        Path(env["DAGSTER_HOME"]).mkdir()
        (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text(
            (tree / "dagster.yaml").read_text())
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from laion_assets.cli import main; main(['demo'])"],
                       env=env, cwd=var, check=True, capture_output=True)
        wall = time.perf_counter() - start
        out = subprocess.run([sys.executable, "-c", STEP_TIMES], env=env, cwd=var, check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the older source tree")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": (args.before.resolve(), OLD_OFFLINE), "after": (HERE, NEW_OFFLINE)}
    best: dict[str, dict[str, float]] = {name: {} for name in trees}
    for round_number in range(args.rounds):
        for name, (tree, env) in trees.items():
            steps, wall = run_demo(tree, env)
            steps["(whole demo, wall)"] = wall
            for step, seconds in steps.items():
                best[name][step] = min(seconds, best[name].get(step, float("inf")))
            print(f"round {round_number + 1} {name}: demo {wall:.1f} s", file=sys.stderr)
    load = os.getloadavg()[0]
    print(f"bench_stages: {args.rounds} rounds, fastest per stage; load average {load:.1f}")
    print(f"{'stage (step seconds, every shard)':<36}{'before':>9}{'after':>9}{'ratio':>8}")
    for step in sorted(set(best["before"]) | set(best["after"])):
        old, new = best["before"].get(step), best["after"].get(step)
        ratio = f"{new / old:.2f}" if old and new else "-"
        fmt = lambda v: f"{v:9.1f}" if v is not None else f"{'-':>9}"  # noqa: E731
        print(f"{step:<36}{fmt(old)}{fmt(new)}{ratio:>8}")


if __name__ == "__main__":
    main()
