#!/usr/bin/env python3
"""Peak memory of the release's part writer and of the safety rules, by size.

    .venv/bin/python benchmarks/bench_memory.py publish --rows 1000000 3000000 [--module OLD.py]
    .venv/bin/python benchmarks/bench_memory.py safety --rows 1000000 3000000 [--module OLD.py]

Every size runs in its own child process; the figure is the child's peak RSS (VmHWM, imports
included, see measure.py).

- `publish`: `publish_release` end to end (parts, indexes, card, manifest) on synthetic
  shards committed through every stage, built once per size: N passing pairs in shards of
  `--shard-rows` (default 1,000,000; each repeats 2 % of the shard before's pairs, withheld
  as duplicates), float16 image and text embeddings of zeros (`--dim`, 512 = ViT-B/32;
  sparse files: a release still reads, copies and writes every row), parts of
  1,000,000 rows. `--module` runs another `publish.py` beside the package's on the same
  shards (e.g. an older commit's, from `git show REV:laion_assets/pipeline/release/
  publish.py`); `files_digest` (every file's sha256 but the card's) must match.
- `safety`: the safety stage (`stage.filter_shard` and its run's re-check of the written
  pairs) on a synthetic shard of N candidates at its real input shape, built once per size
  (safety_shard.py: extracted pairs, fetch results with half fetched, CLIP ids and float16
  embeddings; bench_safety's lists; every rule on). `--module` runs another `stage.py`
  beside the package's on the same shard (e.g. the batch-less one, from `git show
  1474334^:laion_assets/pipeline/safety/stage.py`); `check` must match between them.

The disk holds a release while it is measured (2 x N x dim x 2 bytes of embeddings, plus
the parquet): 10 M rows at dim 512 need ~22 GB under $TMPDIR; a safety shard of N
candidates ~N x dim x 2 bytes (half are fetched and embedded) plus ~0.2 KB a candidate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
from measure import module_under_test, peak_rss_mb  # noqa: E402

BATCH = 32_768  # rows a row group of the safety stage's pairs (its batch)
BUILD_BATCH = 524_288  # synthetic rows made at once
ROWS_PER_PART = 1_000_000


SHARD_ROWS = 1_000_000  # passing pairs of a synthetic shard
REPEATED = 0.02  # share of a shard's pairs repeated from the shard before (cross-shard dedup)
CRAWL = "CC-MAIN-BENCH"
# the safety stage's passing pairs, as far as a release reads them (its own schema module
# imports torch: minutes on a loaded machine); exclusions and scores as little as read
PAIRS_SCHEMA = pa.schema([
    ("pair_id", pa.int64()), ("url", pa.string()), ("language", pa.string()),
    ("crawl", pa.string()), ("shard", pa.string()), ("warc_file", pa.string()),
    ("warc_record_offset", pa.int64()), ("warc_record_id", pa.string()),
    ("page_url", pa.string()), ("capture_time", pa.timestamp("ms", tz="UTC")),
    ("text", pa.string()), ("width", pa.int32()), ("height", pa.int32()), ("bytes", pa.int64()),
    ("sha256", pa.string()), ("md5", pa.string()), ("sha1", pa.string()), ("pdq", pa.string()),
    ("pdq_quality", pa.int32()), ("fetch_source", pa.string()),
    ("fetched_at", pa.timestamp("ms", tz="UTC")), ("similarity", pa.float32()),
    ("punsafe", pa.float32()), ("pwatermark", pa.float32()), ("aesthetic", pa.float32())])
EXCLUSIONS_SCHEMA = pa.schema([("pair_id", pa.int64()), ("rule", pa.string()),
                               ("detail", pa.string()), ("value", pa.string())])
SCORES_SCHEMA = pa.schema([("pair_id", pa.int64()), ("passed", pa.bool_())])


def build_shards(root: str, rows: int, dim: int, shard_rows: int = SHARD_ROWS) -> int:
    """A store with `rows` passing pairs in shards of `shard_rows`, committed through every
    stage (manifests) and safety_filtered_pairs (pairs, exclusions, scores, embeddings) as
    the stages write them; returns the rows a release takes (repeats withheld)."""
    from laion_assets.pipeline.core.store import DatasetStore

    store = DatasetStore(root)
    rng = np.random.default_rng(0)
    sizes = [min(shard_rows, rows - start) for start in range(0, rows, shard_rows)]
    keys = [f"{CRAWL}/{i:05d}" for i in range(len(sizes))]
    store.write_json_atomic(f"shards/{CRAWL}.json", {"crawl": CRAWL, "drops": [], "shards": [
        {"key": k, "crawl": CRAWL, "index": i, "files": []} for i, k in enumerate(keys)]})
    first, unique = 0, 0
    for key, size in zip(keys, sizes, strict=True):
        repeats = int(size * REPEATED) if first else 0  # the previous shard's last pairs
        _commit_shard(store, key, first - repeats, size, dim, rng)
        first += size - repeats
        unique += size - repeats
    return unique


def _commit_shard(store, key: str, first: int, size: int, dim: int,
                  rng: np.random.Generator) -> None:
    import pyarrow.parquet as pq

    from laion_assets.pipeline.core import manifests as m
    from laion_assets.pipeline.formats.embeddings import IDS_SCHEMA

    common = {"shard": key, "data_version": f"bench-{key}", "run_id": "bench"}
    model = {"model": "ViT-B-32", "pretrained": "none"}
    for manifest in (
        m.WarcShardsManifest(**common, crawl=CRAWL, files=(), bytes=0),
        m.ExtractedPairsManifest(**common, rows=size, file="none"),
        m.DownloadedImagesManifest(**common, rows=size, results_file="none", tars=[], ok=size,
                                   failed=0, failures={}, by_source={}, sources=[]),
        m.ClipScoredPairsManifest(**common, rows=size, model=model, files={})):
        with store.stage_output(manifest.STAGE, key) as out:
            m.commit(out, manifest)
    with store.stage_output(m.SAFETY_FILTERED_PAIRS, key) as out:
        with ExitStack() as stack:
            writers = {name: stack.enter_context(pq.ParquetWriter(
                stack.enter_context(out.open(name)), schema)) for name, schema in (
                (m.PAIRS_FILE, PAIRS_SCHEMA), (m.EXCLUSIONS_FILE, EXCLUSIONS_SCHEMA),
                (m.SCORES_FILE, SCORES_SCHEMA), (m.IDS_FILE, IDS_SCHEMA))}
            for start in range(first, first + size, BUILD_BATCH):
                ids = np.arange(start, min(start + BUILD_BATCH, first + size), dtype=np.int64)
                pairs = _pairs(ids, key, rng)
                writers[m.PAIRS_FILE].write_table(pairs, row_group_size=BATCH)
                writers[m.SCORES_FILE].write_table(pa.table(
                    [pairs.column("pair_id"), pa.array(np.ones(len(ids), bool))],
                    schema=SCORES_SCHEMA))
                writers[m.IDS_FILE].write_table(pa.table(
                    [pairs.column("pair_id"), pairs.column("similarity")], schema=IDS_SCHEMA))
            writers[m.EXCLUSIONS_FILE].write_table(EXCLUSIONS_SCHEMA.empty_table())
        for name in (m.IMAGE_FILE, m.TEXT_FILE):
            _sparse_npy(out, name, size, dim)
        files = {name: out.file(name) for name in m.SAFETY_FILES}
        m.commit(out, m.SafetyFilteredPairsManifest(
            **common, rows=size, candidates=size, excluded_by_rule={}, files=files,
            model=model, policy={}, lists_version="", ledger_version="0:"))


def _sparse_npy(out, name: str, rows: int, dim: int) -> None:
    """A float16 [rows, dim] `.npy` of zeros as a sparse file: the header, then a hole
    (a release reads and copies every row; 10 M rows would be 20 GB of disk otherwise)."""
    from laion_assets.pipeline.formats.embeddings import write_npy_header

    with out.open(name) as handle:
        write_npy_header(handle, rows, dim)
        handle.seek(rows * dim * 2 - 1, os.SEEK_CUR)
        handle.write(b"\0")


def _pairs(ids: np.ndarray, shard: str, rng: np.random.Generator) -> pa.Table:
    """Passing pairs with ids `ids` (a pair's URL, text and digests follow from its id),
    built column-wise (polars) rather than a Python string a row."""
    i = pl.col("i")
    hex16 = pl.Series(pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(8), len(ids), [None, pa.py_buffer(ids.astype(">u8").tobytes())]
    ).cast(pa.binary())).bin.encode("hex")  # f"{i:016x}": ids are < 2**63
    frame = pl.DataFrame({"i": ids, "hex": hex16}).select(
        url=pl.format("https://img{}.example.com/p/{}.jpg", i % 50_000, i),
        page_url=pl.format("https://www{}.example.com/a/{}", i % 50_000, i // 7),
        text=pl.format("a photo of item {} in the harbour at sunset", i),
        sha256=pl.lit("0" * 48) + pl.col("hex"), md5=pl.lit("0" * 16) + pl.col("hex"),
        sha1=pl.lit("0" * 24) + pl.col("hex"), pdq=pl.lit("0" * 48) + pl.col("hex"))
    values = {"pair_id": pa.array(ids), "shard": pa.array([shard] * len(ids)),
              "float": pa.array(rng.random(len(ids), dtype=np.float32)),
              **{name: frame[name].to_arrow().cast(pa.string()) for name in frame.columns}}
    return pa.table([values[f.name] if f.name in values and f.name != "float"
                     else _column(f, values, len(ids)) for f in PAIRS_SCHEMA],
                    schema=PAIRS_SCHEMA)


def _column(field: pa.Field, values, n: int) -> pa.Array:
    """Plausible values for a column without its own generator, by its name and type."""
    name = field.name.lower()
    if name == "language":
        return pa.array(["en"] * n)
    if pa.types.is_string(field.type):
        return pa.array([f"{name}-bench"] * n)
    if pa.types.is_timestamp(field.type):
        return pa.array(np.full(n, 1_700_000_000_000), pa.int64()).cast(field.type)
    if pa.types.is_floating(field.type):
        return values["float"].cast(field.type)
    if pa.types.is_boolean(field.type):
        return pa.array(np.ones(n, bool))
    return pa.array(np.full(n, 640)).cast(field.type)


def child_publish(root: str, module: str | None) -> dict:
    """`publish_release` end to end over the shards in `root` (then the release is removed):
    peak RSS, wall time, and a digest of every file's sha256 but the card's."""
    import hashlib
    import shutil

    from laion_assets.pipeline.core.store import DatasetStore
    from laion_assets.pipeline.safety.lists import load_lists
    from laion_assets.pipeline.safety.policy import SafetyPolicy

    publish = module_under_test(module, "laion_assets.pipeline.release.publish")
    store = DatasetStore(root)
    ctx = publish.PublishContext(load_lists(store), [], SafetyPolicy(), run_id="bench",
                                 log=lambda _: None)
    before = peak_rss_mb()
    started = time.perf_counter()
    manifest = publish.publish_release(store, publish.ReleaseConfig(
        name="bench", crawls=(CRAWL,), rows_per_part=ROWS_PER_PART), ctx)
    seconds = time.perf_counter() - started
    files = sorted((k, v["sha256"]) for k, v in manifest["files"].items() if k != "README.md")
    shutil.rmtree(f"{root}/releases")
    return {"rows": manifest["rows"], "parts": manifest["parts"],
            "withheld": manifest["withheld"], "seconds": round(seconds, 1),
            "peak_before_mb": round(before), "peak_mb": round(peak_rss_mb()),
            "files_digest": hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]}


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


def publish_sizes(sizes: list[int], dim: int, module: str | None, shard_rows: int) -> None:
    """Per size: the shards built once, then a child per publish.py on them."""
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as root:
            started = time.perf_counter()
            unique = build_shards(root, rows, dim, shard_rows)
            print(json.dumps({"rows": rows, "unique": unique,
                              "build_s": round(time.perf_counter() - started)}), flush=True)
            for which in [None, module] if module else [None]:
                command = [sys.executable, __file__, "publish", "--child", "--store", root,
                           "--rows", str(rows)] + (["--module", which] if which else [])
                out = subprocess.run(command, check=True, capture_output=True, text=True,
                                     cwd=Path(__file__).parent)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                print(json.dumps({"publish": which or "package", **result}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["publish", "safety"])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--module", help="publish.py to measure as well as the package's")
    parser.add_argument("--shard-rows", type=int, default=SHARD_ROWS,
                        help="publish: passing pairs a synthetic shard holds")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        [rows] = args.rows
        result = (child_publish(args.store, args.module) if args.what == "publish"
                  else child_safety(rows))
        print(json.dumps(result))
        return
    if args.what == "publish":
        publish_sizes(args.rows, args.dim, args.module, args.shard_rows)
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
