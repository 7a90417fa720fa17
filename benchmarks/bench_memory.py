#!/usr/bin/env python3
"""Peak memory of the release's part writer and of the safety rules, by size.

    .venv/bin/python benchmarks/bench_memory.py publish --rows 1000000 3000000 [--dim 512]
    .venv/bin/python benchmarks/bench_memory.py safety --rows 1000000 3000000 [--module OLD.py]
    .venv/bin/python benchmarks/bench_memory.py publish --rows 1000000 --module OLD.py

Every size runs in its own child process; the figure is the child's peak RSS (VmHWM, imports
included, see measure.py).

- `publish`: a synthetic release of N rows through the release's part writer
  (`publish._Publisher`, what `publish_release` feeds the passing pairs of each shard to),
  parts of 1,000,000 rows, rows added a row group (16,384) at a time, with float16 image
  and text embeddings (`--dim`, 512 = ViT-B/32), then the lookup indexes (`write_indexes`
  over the written parts) as `publish_release` writes them. `--module` loads `publish.py`
  from another file (e.g. an older commit's, from `git show REV:laion_assets/pipeline/
  release/publish.py`) to compare.
- `safety`: the safety stage (`stage.filter_shard` and its run's re-check of the written
  pairs) on a synthetic shard of N candidates at its real input shape, built once per size
  (safety_shard.py: extracted pairs, fetch results with half fetched, CLIP ids and float16
  embeddings; bench_safety's lists; every rule on). `--module` runs another `stage.py`
  beside the package's on the same shard (e.g. the batch-less one, from `git show
  1474334^:laion_assets/pipeline/safety/stage.py`); `check` must match between them.

The disk holds a release while it is measured (N x dim x 4 bytes of embeddings, plus the
parquet): 3 M rows at dim 512 need ~7 GB under $TMPDIR.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from measure import peak_rss_mb  # noqa: E402

BATCH = 16_384
ROWS_PER_PART = 1_000_000


def _publish_module(path: str | None):
    if not path:
        from laion_assets.pipeline.release import publish
        return publish
    spec = importlib.util.spec_from_file_location("publish_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _batch(publish, start: int, n: int, dim: int, rng: np.random.Generator):
    """`n` release rows (data, provenance, image and text embeddings) from row `start`."""
    ids = np.arange(start, start + n, dtype=np.int64)
    values = {
        "hash": pa.array(ids),
        "url": pa.array([f"https://img{i % 50_000}.example.com/p/{i}.jpg" for i in ids]),
        "text": pa.array([f"a photo of item {i} in the harbour at sunset" for i in ids]),
        "digest": pa.array([f"{i:064x}" for i in ids]),
        "float": pa.array(rng.random(n, dtype=np.float32)),
    }
    tables = [pa.table([_column(f, values, n, start) for f in schema], schema=schema)
              for schema in (publish.RELEASE_SCHEMA, publish.PROVENANCE_SCHEMA)]
    image = rng.standard_normal((n, dim), np.float32).astype(np.float16)
    text = rng.standard_normal((n, dim), np.float32).astype(np.float16)
    return tables[0], tables[1], image, text


def _column(field: pa.Field, values: dict[str, pa.Array], n: int, start: int) -> pa.Array:
    """Plausible values for a release or provenance column, by its name and type."""
    name = field.name.lower()
    if name == "hash":
        return values["hash"]
    if name in ("url", "page_url"):
        return values["url"]
    if name == "text":
        return values["text"]
    if name in ("sha256", "md5", "sha1", "pdq"):
        return values["digest"]
    if name == "language":
        return pa.array(["en"] * n)
    if pa.types.is_string(field.type):
        return pa.array([f"{name}-{start // 250_000}"] * n)
    if pa.types.is_timestamp(field.type):
        return pa.array(np.full(n, 1_700_000_000_000), pa.int64()).cast(field.type)
    if pa.types.is_floating(field.type):
        return values["float"].cast(field.type)
    if pa.types.is_boolean(field.type):
        return pa.array(np.zeros(n, bool))
    return pa.array(np.full(n, 640)).cast(field.type)


def child_publish(rows: int, dim: int, module: str | None) -> dict:
    from laion_assets.pipeline.core.store import DatasetStore
    from laion_assets.pipeline.release.index import write_indexes

    publish = _publish_module(module)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as root:
        store = DatasetStore(root)
        folder = "releases/bench/v0001"
        publisher = publish._Publisher(store, folder, ROWS_PER_PART)
        started = time.perf_counter()
        for start in range(0, rows, BATCH):  # a row group at a time, as shards stream in
            publisher.add(*_batch(publish, start, min(BATCH, rows - start), dim, rng))
        publisher.flush()
        parts_peak = peak_rss_mb()
        write_indexes(publish.read_parts(store, folder, publisher.parts, ("sha256",)),
                      lambda rel: store.open(f"{folder}/{rel}", "wb"))
        return {"rows": publisher.rows, "parts": publisher.parts,
                "seconds": round(time.perf_counter() - started, 1),
                "peak_after_parts_mb": round(parts_peak), "peak_mb": round(peak_rss_mb())}


def child_safety(rows: int) -> dict:
    import random

    from bench_safety import candidates, lists, scores

    from laion_assets.pipeline.safety.policy import SafetyPolicy
    from laion_assets.pipeline.safety.rules import RuleContext, evaluate

    rng = random.Random(0)
    listed = lists(rng)  # bench_safety's: 1,000,000 md5s, 100,000 PDQ hashes, an opt-out
    before = peak_rss_mb()
    c = candidates(rows, rng)
    s = scores(c, np.random.default_rng(0))
    started = time.perf_counter()
    decisions = evaluate(RuleContext(c, SafetyPolicy(), listed, [], s))
    return {"rows": rows, "passed": int(decisions.passed.sum()),
            "seconds": round(time.perf_counter() - started, 1),
            "peak_before_mb": round(before), "peak_mb": round(peak_rss_mb())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["publish", "safety"])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--module", help="publish.py to measure instead of the package's")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        [rows] = args.rows
        result = (child_publish(rows, args.dim, args.module) if args.what == "publish"
                  else child_safety(rows))
        print(json.dumps(result))
        return
    if args.what == "safety":  # the stage on a synthetic shard, see safety_shard.py
        from safety_shard import sizes
        sizes(args.rows, args.dim, args.module)
        return
    for rows in args.rows:
        command = [sys.executable, __file__, args.what, "--child", "--rows", str(rows),
                   "--dim", str(args.dim)] + (["--module", args.module] if args.module else [])
        out = subprocess.run(command, check=True, capture_output=True, text=True,
                             cwd=Path(__file__).parent)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
