#!/usr/bin/env python3
"""Provenance lookups on a 10,000,000-row release: the release index against a full scan.

    .venv/bin/python benchmarks/bench_provenance.py [--rows 10000000] [--part-rows 1000000]
        [--hosts 50000] [--lookups 100] [--baseline-lookups 10] [--data-row-group 16384]
        [--dir /tmp] [--keep | --reuse DIR]
    .venv/bin/python benchmarks/bench_provenance.py --shard-scans [--rows 2000000]

1. Generates a synthetic release in the release layout (`releases/bench/v0001/`): parts of
   `--part-rows` rows, `data/part-NNNNN.parquet` (LAION columns; random URLs on `--hosts`
   hosts, random hashes) and `provenance/part-NNNNN.parquet` (every provenance column, random
   sha256/md5/sha1/pdq), zstd, row groups of `--data-row-group` rows. No embeddings.
2. Builds the four indexes with `release_index.write_indexes` from the parts as written
   (time, peak RSS, sizes).
3. Lookups through `DatasetStore.open` (fsspec, as the CLI does), each kind on 100 random
   rows of the release: `locate` = index only ((part, row) candidates), `find` = locate +
   the data and provenance rows + the collision check (`trace columns`: the provenance
   columns `provenance.trace` reads, without the image digests). URL lookups cold (a fresh
   process per lookup; once with the release's files evicted from the page cache by
   `posix_fadvise(DONTNEED)`, once with the page cache warm), the whole
   `laion-assets provenance --url U --releases-only --json` command the same way, and warm
   (one process, one `ReleaseIndex`, footers cached). Domain lookups use the host of a
   random row (~200 rows on 50,000 hosts).
4. Baseline: the same URL found by a full scan of the data parts with a pyarrow filter
   (`pq.read_table(data/, filters=[("URL", "==", url)])`), single- and multi-threaded.
5. How the data parts' row-group size sets the cost of reading rows back: part 0 rewritten
   with row groups of 8k, 16k, 64k and 1M rows; 1 and 200 random rows read back.

`--shard-scans` times only the scans `provenance.trace` makes of a shard's own outputs (pairs
that no release holds): `provenance.read_where` on one synthetic `extracted_pairs`-shaped file
of `--rows` rows (pyarrow's default row groups, as the stages write): a polars lazy scan with
the filter pushed down (what a local store uses) against the row-group reads through the
store's filesystem (what an S3 store uses, and what every store used before), 10 queries per
kind, one process, not pinned (polars decodes on every core).

Every other step runs in its own child process pinned to one core (the threaded scan and the CLI
runs are not pinned); lookup times are wall seconds measured inside the child around the
lookup (imports excluded), the CLI's from outside (everything included). The generated files
go to a temporary folder under `--dir`, removed at the end unless `--keep`; `--reuse DIR`
skips generating and uses (and keeps) such a folder.
"""

from __future__ import annotations

import argparse
import binascii
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import peak_rss_mb, pin_to_cpu

REPO = Path(__file__).resolve().parent.parent
RESULT_TAG = "BENCH_RESULT "
NAME, VERSION_DIR = "bench", "releases/bench/v0001"
WORDS = (
    "red", "blue", "green", "old", "new", "small", "large", "wooden", "stone", "river",
    "mountain", "lake", "city", "street", "house", "garden", "dog", "cat", "bird", "flower",
    "tree", "forest", "beach", "sunset", "portrait", "vintage", "modern", "photo", "picture",
    "drawing", "painting", "map", "chart", "logo", "icon", "car", "bike", "boat", "train",
    "bridge", "tower", "church", "market", "kitchen", "table", "chair", "lamp", "book", "cup",
    "plate", "bowl", "shirt", "dress", "shoe", "hat",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--part-rows", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=50_000)
    parser.add_argument("--lookups", type=int, default=100)
    parser.add_argument("--cold-lookups", type=int, default=5)
    parser.add_argument("--baseline-lookups", type=int, default=10)
    parser.add_argument("--data-row-group", type=int, default=16_384)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", help="a folder kept by an earlier --keep run: no generating")
    parser.add_argument("--shard-scans", action="store_true",
                        help="only the shard scans of provenance.read_where (see above)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--arg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        pin_to_cpu(0) if args.child != "scan_threads" else None
        result = CHILDREN[args.child](args)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0
    if args.shard_scans:
        return shard_scans(args)
    return orchestrate(args)


# -- orchestration ---------------------------------------------------------------------------


def shard_scans(args: argparse.Namespace) -> int:
    """polars scan against row-group reads, per kind of question, on one shard file."""
    import numpy as np
    import pyarrow.parquet as pq

    from laion_assets.pipeline.core.store import DatasetStore
    from laion_assets.pipeline.release.provenance import Where, read_where_groups, scan_where

    rng = np.random.default_rng(0)
    data, provenance = synthetic_part(rng, 0, args.rows, args.hosts)
    shard = data.select(["hash", "URL", "TEXT", "LANGUAGE"]).rename_columns(
        ["pair_id", "url", "text", "language"])
    for name in ("warc_file", "warc_record_offset", "warc_record_id", "page_url"):
        shard = shard.append_column(name, provenance.column(name))
    root = tempfile.mkdtemp(prefix="bench-shard-scan-", dir=args.dir)
    try:
        pq.write_table(shard, f"{root}/pairs.parquet", compression="zstd")
        store, rows = DatasetStore(root), rng.integers(0, args.rows, 10).tolist()
        urls = shard.column("url").take(rows).to_pylist()
        questions = {
            "url =": [Where("url", "eq", u) for u in urls],
            "pair_id =": [Where("pair_id", "eq", shard.column("pair_id")[r].as_py())
                          for r in rows],
            "url in 5 (sha256)": [Where("url", "in", urls[i:i + 5]) for i in range(5)],
            "domain regex": [Where("url", "regex", "^https?://" + u.split("/")[2]
                                   .replace(".", r"\.") + "(:[0-9]+)?(/|$)") for u in urls]}
        print(f"# shard scans: {args.rows:,} rows, load average {os.getloadavg()[0]:.1f}")
        print(f"| {'question':18s} | {'polars scan s':>13s} | {'row groups s':>12s} | ratio |")
        for label, wheres in questions.items():
            times = {"polars": [], "groups": []}
            for where in wheres:
                for kind, read in (("polars", lambda w: scan_where(f"{root}/pairs.parquet", w)),
                                   ("groups", lambda w: read_where_groups(
                                       store, "pairs.parquet", w))):
                    started = time.perf_counter()
                    found = read(where)
                    times[kind].append(time.perf_counter() - started)
                    assert found.num_rows >= 1, (label, kind)
            polars, groups = (statistics.median(times[k]) for k in ("polars", "groups"))
            print(f"| {label:18s} | {polars:13.3f} | {groups:12.3f} | {groups / polars:5.1f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def orchestrate(args: argparse.Namespace) -> int:
    root = args.reuse or tempfile.mkdtemp(prefix="bench-provenance-", dir=args.dir)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}; data in {root}; "
          f"load average {os.getloadavg()[0]:.1f}")
    try:
        if not args.reuse:
            gen = child(args, root, "generate")
            print(f"generated {gen['rows']:,} rows in {gen['parts']} parts in "
                  f"{gen['wall_s']:.0f} s: data {mb(gen['data_bytes'])}, "
                  f"provenance {mb(gen['provenance_bytes'])}, row groups of "
                  f"{args.data_row_group:,} rows")
        build = child(args, root, "build")
        print(f"\nindex build: {build['wall_s']:.1f} s wall, {build['cpu_s']:.1f} s CPU, "
              f"peak RSS {build['peak_rss_mb']:.0f} MB")
        for path, info in build["files"].items():
            print(f"  {path:24s} {info['rows']:>12,} rows {mb(info['bytes']):>10s} "
                  f"{info['row_groups']:>5} row groups, footer {info['footer_kb']:.0f} KB")
        print("\nURL lookup, cold process (find: index + rows + collision check):")
        for cache in ("evicted", "warm"):
            runs = [child(args, root, "cold", str(i))
                    if cache == "warm" else child(args, root, "cold_evicted", str(i))
                    for i in range(args.cold_lookups)]
            times = [r["find_s"] for r in runs]
            print(f"  page cache {cache:8s}: {fmt(times)}  (import {runs[0]['import_s']:.2f} s)")
        print("\nthe whole command, `laion-assets provenance --url U --releases-only --json`:")
        for evict in (True, False):
            times = [cli_run(args, root, i, evict) for i in range(args.cold_lookups)]
            print(f"  page cache {'evicted' if evict else 'warm':8s}: {fmt(times)}")
        warm = child(args, root, "warm")
        print(f"\nwarm: one process, {args.lookups} random lookups per kind")
        print(f"| {'lookup':28s} | {'median s':>9s} | {'p95 s':>7s} | {'max s':>7s} | "
              f"{'rows (median)':>13s} |")
        print(f"|{'-' * 30}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 15}|")
        for name, stats in warm["stats"].items():
            print(f"| {name:28s} | {stats['median']:9.4f} | {stats['p95']:7.4f} | "
                  f"{stats['max']:7.4f} | {stats['rows']:13.0f} |")
        print(f"wrong answers: {warm['wrong']}")
        base = child(args, root, "scan")
        threaded = child(args, root, "scan_threads")
        print("\nURL lookup: index against a full scan of the data parts (same URLs)")
        print(f"| {'contender':40s} | {'median s':>9s} | {'p95 s':>7s} | {'max s':>7s} |")
        print(f"|{'-' * 42}|{'-' * 11}|{'-' * 9}|{'-' * 9}|")
        url = warm["stats"]["url find"]
        rows = (("release index, find (warm process)", url),
                ("full scan, pyarrow filter, 1 thread", base["stats"]),
                ("full scan, pyarrow filter, 2 threads", threaded["stats"]))
        for label, stats in rows:
            print(f"| {label:40s} | {stats['median']:9.4f} | {stats['p95']:7.4f} | "
                  f"{stats['max']:7.4f} |")
        print(f"speed-up (median): {base['stats']['median'] / url['median']:.0f}x single-thread,"
              f" {threaded['stats']['median'] / url['median']:.0f}x threaded scan")
        groups = child(args, root, "row_groups")
        print("\nreading rows back from one 1M-row part (data + provenance), by row-group size")
        print(f"| {'row group':>10s} | {'footer KB':>9s} | {'1 row s (median)':>16s} | "
              f"{'200 rows s (median)':>19s} |")
        for size, stats in groups["sizes"].items():
            print(f"| {int(size):>10,} | {stats['footer_kb']:9.0f} | {stats['one']:16.4f} | "
                  f"{stats['many']:19.4f} |")
    finally:
        if args.keep or args.reuse:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def child(args: argparse.Namespace, root: str, task: str, arg: str = "") -> dict:
    command = [sys.executable, __file__, "--child", task, "--root", root, "--arg", arg,
               "--rows", str(args.rows), "--part-rows", str(args.part_rows),
               "--hosts", str(args.hosts), "--lookups", str(args.lookups),
               "--baseline-lookups", str(args.baseline_lookups),
               "--data-row-group", str(args.data_row_group)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    for line in out.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError(f"child {task} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")


def cli_run(args: argparse.Namespace, root: str, number: int, evict: bool) -> float:
    """Wall seconds of the whole CLI in a fresh process (start-up and imports included)."""
    query = json.loads((Path(root) / "queries.json").read_text())[number]
    if evict:
        evict_cache(root)
    command = [str(REPO / ".venv" / "bin" / "laion-assets"), "provenance", "--url", query["url"],
               "--store", root, "--releases-only", "--json"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or json.loads(done.stdout)[0]["hash"] != query["hash"]:
        raise RuntimeError(f"{command}: {done.returncode}\n{done.stdout}\n{done.stderr}")
    return elapsed


def evict_cache(root: str) -> None:
    """Drop the release's files from the page cache (posix_fadvise DONTNEED; no root)."""
    for path in glob.glob(str(Path(root) / VERSION_DIR / "**" / "*"), recursive=True):
        if os.path.isfile(path):
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def fmt(times: list[float]) -> str:
    return (f"median {statistics.median(times):.3f} s, max {max(times):.3f} s "
            f"({', '.join(f'{t:.3f}' for t in times)})")


def summary(times: list[float], rows: list[int] | None = None) -> dict:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median": statistics.median(ordered), "p95": p95, "max": ordered[-1],
            "rows": statistics.median(rows) if rows else 0}


# -- children --------------------------------------------------------------------------------


def generate(args: argparse.Namespace) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    version = Path(args.root) / VERSION_DIR
    (version / "data").mkdir(parents=True)
    (version / "provenance").mkdir()
    rng = np.random.default_rng(20260101)
    start = time.perf_counter()
    queries: list[dict] = []
    pick = np.sort(rng.choice(args.rows, args.lookups, replace=False))
    parts = 0
    for part, first in enumerate(range(0, args.rows, args.part_rows)):
        n = min(args.part_rows, args.rows - first)
        data, provenance = synthetic_part(rng, part, n, args.hosts)
        pq.write_table(data, version / "data" / f"part-{part:05d}.parquet", compression="zstd",
                       row_group_size=args.data_row_group)
        pq.write_table(provenance, version / "provenance" / f"part-{part:05d}.parquet",
                       compression="zstd", row_group_size=args.data_row_group)
        for global_row in pick[(pick >= first) & (pick < first + n)]:
            row = int(global_row - first)
            url = data.column("URL")[row].as_py()
            queries.append({"part": part, "row": row, "url": url,
                            "hash": data.column("hash")[row].as_py(),
                            "sha256": provenance.column("sha256")[row].as_py(),
                            "domain": url.split("/")[2]})
        parts += 1
        del data, provenance
    manifest = {"name": NAME, "version": 1, "parent": None, "rows": args.rows, "parts": parts}
    (version / "manifest.json").write_text(json.dumps(manifest))
    rng.shuffle(queries)
    (Path(args.root) / "queries.json").write_text(json.dumps(queries))
    size = {kind: sum(os.path.getsize(p) for p in glob.glob(str(version / kind / "*.parquet")))
            for kind in ("data", "provenance")}
    return {"rows": args.rows, "parts": parts, "wall_s": time.perf_counter() - start,
            "data_bytes": size["data"], "provenance_bytes": size["provenance"]}


def synthetic_part(rng, part: int, n: int, hosts: int):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    host = rng.integers(0, hosts, n)
    ids = rng.integers(0, 1 << 62, n)
    folders = rng.choice(WORDS, n)
    urls = [f"https://cdn{h % 7}.site{h:05d}.example/{f}/{i:x}.jpg"
            for h, f, i in zip(host.tolist(), folders.tolist(), ids.tolist(), strict=True)]
    words = rng.choice(WORDS, (n, 6))
    text = [" ".join(w) for w in words.tolist()]
    hashes = rng.integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64)
    data = pa.table({
        "URL": pa.array(urls, pa.string()), "TEXT": pa.array(text, pa.string()),
        "WIDTH": pa.array(rng.integers(100, 2000, n), pa.int32()),
        "HEIGHT": pa.array(rng.integers(100, 2000, n), pa.int32()),
        "similarity": pa.array(rng.random(n, np.float32) * 0.2 + 0.28, pa.float32()),
        "punsafe": pa.array(rng.random(n, np.float32) * 0.4, pa.float32()),
        "pwatermark": pa.array(rng.random(n, np.float32), pa.float32()),
        "LANGUAGE": pa.array(rng.choice(["en", "de", "fr", "es", "und"], n), pa.string()),
        "hash": pa.array(hashes, pa.int64()),
    })
    shard = f"CC-MAIN-BENCH/{part:05d}"
    page = [f"https://www.site{h:05d}.example/page/{i % 100_000}.html"
            for h, i in zip(host.tolist(), ids.tolist(), strict=True)]
    offsets = np.sort(rng.integers(0, 1 << 30, n))
    capture = np.datetime64("2024-05-01T00:00:00") + rng.integers(0, 86_400 * 30, n).astype(
        "timedelta64[s]")
    model = json.dumps({"name": "ViT-B-32", "pretrained": "laion2b_s34b_b79k", "sha256": "0" * 64})
    record_ids = pc.binary_join_element_wise("<urn:uuid:", hex_array(rng, n, 16), ">", "")
    provenance = pa.table({
        "hash": pa.array(hashes, pa.int64()),
        "crawl": pa.array(["CC-MAIN-BENCH"] * n, pa.string()),
        "shard": pa.array([shard] * n, pa.string()),
        "warc_file": pa.array([f"s3://bench/CC-MAIN-BENCH/{part:05d}.warc.gz"] * n, pa.string()),
        "warc_record_offset": pa.array(offsets, pa.int64()),
        "warc_record_id": record_ids,
        "page_url": pa.array(page, pa.string()),
        "capture_time": pa.array(capture.astype("datetime64[ms]"), pa.timestamp("ms", tz="UTC")),
        "fetch_source": pa.array(["replay"] * n, pa.string()),
        "fetched_at": pa.array(capture.astype("datetime64[ms]"), pa.timestamp("ms", tz="UTC")),
        "sha256": hex_array(rng, n, 32), "md5": hex_array(rng, n, 16),
        "sha1": hex_array(rng, n, 20), "pdq": hex_array(rng, n, 32),
        "pdq_quality": pa.array(rng.integers(50, 101, n), pa.int32()),
        "model": pa.array([model] * n, pa.string()),
        **{f"{stage}_run_id": pa.array([f"{stage[:4]}-run-{part:04d}"] * n, pa.string())
           for stage in ("extracted", "downloaded", "scored", "safety")},
    })
    return data, provenance


def hex_array(rng, n: int, nbytes: int):
    """n random lower-case hex strings of 2*nbytes digits, built without a Python loop."""
    import numpy as np
    import pyarrow as pa

    digits = binascii.hexlify(rng.bytes(n * nbytes))
    offsets = np.arange(0, n * 2 * nbytes + 1, 2 * nbytes, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(digits))


def build(args: argparse.Namespace) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from laion_assets.pipeline.core.store import DatasetStore
    from laion_assets.pipeline.release.index import write_indexes

    store = DatasetStore(args.root)
    version = Path(args.root) / VERSION_DIR
    parts = sorted(int(p.stem.split("-")[1]) for p in (version / "data").glob("part-*.parquet"))

    def tables():
        for part in parts:
            data = pq.read_table(version / "data" / f"part-{part:05d}.parquet",
                                 columns=["hash", "URL"], use_threads=False)
            sha = pq.read_table(version / "provenance" / f"part-{part:05d}.parquet",
                                columns=["sha256"], use_threads=False)
            yield part, pa.table({"hash": data.column("hash"), "URL": data.column("URL"),
                                  "sha256": sha.column("sha256")})

    cpu, wall = time.process_time(), time.perf_counter()
    files = write_indexes(tables(), lambda p: store.open(f"{VERSION_DIR}/{p}", "wb"))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for path, info in files.items():
        meta = pq.ParquetFile(version / path).metadata
        info["row_groups"] = meta.num_row_groups
        info["footer_kb"] = meta.serialized_size / 1024
    return {"wall_s": wall, "cpu_s": cpu, "files": files}


def _queries(args: argparse.Namespace) -> list[dict]:
    return json.loads((Path(args.root) / "queries.json").read_text())


def cold(args: argparse.Namespace, evict: bool = False) -> dict:
    query = _queries(args)[int(args.arg)]
    if evict:
        evict_cache(args.root)
    start = time.perf_counter()
    from laion_assets.pipeline.core.store import DatasetStore
    from laion_assets.pipeline.release.index import ReleaseIndex

    store = DatasetStore(args.root)
    imported = time.perf_counter()
    rows = ReleaseIndex(lambda p: store.open(f"{VERSION_DIR}/{p}")).find("url", query["url"])
    done = time.perf_counter()
    assert [(r["part"], r["row"]) for r in rows] == [(query["part"], query["row"])], rows
    return {"import_s": imported - start, "find_s": done - imported}


def warm(args: argparse.Namespace) -> dict:
    from laion_assets.pipeline.core.store import DatasetStore
    from laion_assets.pipeline.release.index import ReleaseIndex
    from laion_assets.pipeline.release.provenance import RELEASE_PROVENANCE

    store = DatasetStore(args.root)
    index = ReleaseIndex(lambda p: store.open(f"{VERSION_DIR}/{p}"))
    queries = _queries(args)
    index.find("url", queries[0]["url"])  # footers read once, as a long-lived process would
    stats, wrong = {}, 0
    for kind in ("url", "hash", "sha256", "domain"):
        for mode in ("locate", "find", "find, trace columns"):
            times, rows = [], []
            for query in queries:
                start = time.perf_counter()
                if mode == "locate":
                    got = index.lookup(kind, query[kind])
                    found = [tuple(g) for g in got]
                else:
                    columns = RELEASE_PROVENANCE if mode != "find" else None
                    got = index.find(kind, query[kind], provenance_columns=columns)
                    found = [(r["part"], r["row"]) for r in got]
                times.append(time.perf_counter() - start)
                rows.append(len(got))
                wrong += (query["part"], query["row"]) not in found
                if kind != "domain" and len(found) != 1:
                    wrong += 1
            stats[f"{kind} {mode}"] = summary(times, rows)
    fresh = []
    for query in queries:
        start = time.perf_counter()
        ReleaseIndex(lambda p: store.open(f"{VERSION_DIR}/{p}")).find("url", query["url"])
        fresh.append(time.perf_counter() - start)
    stats["url find, new reader each"] = summary(fresh, [1] * len(fresh))
    return {"stats": stats, "wrong": wrong}


def scan(args: argparse.Namespace, threads: bool = False) -> dict:
    import pyarrow.parquet as pq

    data = str(Path(args.root) / VERSION_DIR / "data")
    times = []
    for query in _queries(args)[: args.baseline_lookups]:
        start = time.perf_counter()
        table = pq.read_table(data, filters=[("URL", "==", query["url"])], use_threads=threads)
        times.append(time.perf_counter() - start)
        assert table.num_rows == 1 and table.column("hash")[0].as_py() == query["hash"]
    return {"stats": summary(times)}


def row_groups(args: argparse.Namespace) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    from laion_assets.pipeline.release.index import ReleaseIndex

    version = Path(args.root) / VERSION_DIR
    data = pq.read_table(version / "data" / "part-00000.parquet", use_threads=False)
    provenance = pq.read_table(version / "provenance" / "part-00000.parquet", use_threads=False)
    rng = np.random.default_rng(7)
    out = {}
    for size in (8_192, 16_384, 65_536, 1_048_576):
        scratch = Path(args.root) / f"rg-{size}"
        (scratch / "data").mkdir(parents=True)
        (scratch / "provenance").mkdir()
        pq.write_table(data, scratch / "data" / "part-00000.parquet", compression="zstd",
                       row_group_size=size)
        pq.write_table(provenance, scratch / "provenance" / "part-00000.parquet",
                       compression="zstd", row_group_size=size)
        one, many = [], []
        for _ in range(5):
            index = ReleaseIndex(lambda p, s=scratch: open(s / p, "rb"))  # noqa: SIM115
            start = time.perf_counter()
            index.read_rows([(0, int(rng.integers(data.num_rows)))])
            one.append(time.perf_counter() - start)
            rows = rng.choice(data.num_rows, 200, replace=False).tolist()
            start = time.perf_counter()
            index.read_rows([(0, r) for r in rows])
            many.append(time.perf_counter() - start)
        footer = pq.ParquetFile(scratch / "provenance" / "part-00000.parquet").metadata
        out[str(size)] = {"one": statistics.median(one), "many": statistics.median(many),
                          "footer_kb": footer.serialized_size / 1024}
        shutil.rmtree(scratch)
    return {"sizes": out}


CHILDREN = {
    "generate": generate, "build": build, "cold": cold,
    "cold_evicted": lambda a: cold(a, evict=True), "warm": warm, "scan": scan,
    "scan_threads": lambda a: scan(a, threads=True), "row_groups": row_groups,
}

if __name__ == "__main__":
    sys.exit(main())
