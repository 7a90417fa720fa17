#!/usr/bin/env python3
"""Hash-list matching for the safety stage: PdqIndex and ExactHashList against brute force / set.

    .venv/bin/python benchmarks/bench_hashlists.py [--pdq-size 1000000] [--pdq-queries 20000]
        [--brute-queries 200] [--exact-size 10000000] [--exact-queries 1000000]
        [--kinds md5 sha256] [--no-set]

(a) PDQ: a list of `--pdq-size` random 256-bit hashes; queries are 25 % planted near-duplicates
of listed hashes (0..31 bits flipped), 5 % planted at 32..40 bits (must not match) and 70 %
random hashes. `PdqIndex.query_many` (hex strings in, max distance 31) answers all of them;
the vectorised numpy brute force (`PdqIndex.brute_force`, XOR + popcount against every
entry) answers the first `--brute-queries`, and both must give the same answers.

(b) Exact: a text file of `--exact-size` random digests, one lowercase hex a line (written
once to `.bench/hashlists/`), loaded by `load_exact` from the open file; `--exact-queries`
hex queries, half of them listed, answered by `ExactHashList.matches` in batches of 100,000.
Baselines: a Python `set` of the 16/32-byte digests (`bytes.fromhex(q) in s`) and a `set` of
the hex strings (`q in s`), each built from the same file line by line.

Every contender runs in its own child process pinned to one core, with OMP/OPENBLAS/MKL
threads set to 1; rates are over the child's CPU time (the 2-core machine is shared), wall
seconds beside them. Memory: the structure's own `nbytes` where it has one, and RSS growth
of the child from before loading to after (steady) and to its peak (VmHWM).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from measure import peak_rss_mb, pin_to_cpu, rss_now_mb

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".bench" / "hashlists"
RESULT_TAG = "BENCH_RESULT "
DIGEST_BYTES = {"md5": 16, "sha1": 20, "sha256": 32}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
BATCH = 100_000


class Clock:
    """CPU and wall seconds since the last lap."""

    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def lap(self) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        lap = (cpu - self.cpu, wall - self.wall)
        self.cpu, self.wall = cpu, wall
        return lap


# -- PDQ (child) ----------------------------------------------------------------------------


def pdq_inputs(size: int, n_queries: int, seed: int = 0):
    """Random list; queries with planted distances (-1: a random, unrelated hash)."""
    rng = np.random.default_rng(seed)
    listed = rng.integers(0, 256, (size, 32), dtype=np.uint8)
    queries = rng.integers(0, 256, (n_queries, 32), dtype=np.uint8)
    planted = np.full(n_queries, -1)
    kind = rng.random(n_queries)
    near = np.flatnonzero(kind < 0.30)
    planted[near] = np.where(kind[near] < 0.25, rng.integers(0, 32, near.size), 0)
    far = near[kind[near] >= 0.25]
    planted[far] = rng.integers(32, 41, far.size)
    targets = rng.integers(0, size, n_queries)
    for i in near:
        bits = np.unpackbits(listed[targets[i]])
        bits[rng.choice(256, planted[i], replace=False)] ^= 1
        queries[i] = np.packbits(bits)
    return listed, queries, planted, targets


def child_pdq(args: argparse.Namespace) -> dict:
    from laion_assets.pipeline.safety.hashlists import PdqIndex

    listed, queries, planted, targets = pdq_inputs(args.pdq_size, args.pdq_queries)
    hexes = [q.tobytes().hex() for q in queries]
    rss0 = rss_now_mb()
    clock = Clock()
    index = PdqIndex(listed)
    build = clock.lap()
    rss_built = rss_now_mb()
    found, distance = index.query_many(hexes, args.max_distance)
    query = clock.lap()
    brute_n = min(args.brute_queries, len(hexes))
    brute_found, brute_distance = index.brute_force(hexes[:brute_n], args.max_distance)
    brute = clock.lap()
    within = (planted >= 0) & (planted <= args.max_distance)
    return {
        "size": len(index),
        "queries": len(hexes),
        "build": build,
        "query": query,
        "brute_queries": brute_n,
        "brute": brute,
        "nbytes": index.nbytes,
        "rss_index_mb": rss_built - rss0,
        "peak_rss_mb": peak_rss_mb(),
        "rss_start_mb": rss0,
        "matched": int((found >= 0).sum()),
        "planted_within": int(within.sum()),
        "planted_found": bool((found[within] == targets[within]).all()),
        "others_unmatched": bool((found[~within] == -1).all()),
        "distances_right": bool((distance[within] == planted[within]).all()),
        "brute_agrees": bool(
            (brute_found == found[:brute_n]).all() and (brute_distance == distance[:brute_n]).all()
        ),
    }


# -- exact (children) -----------------------------------------------------------------------


def exact_inputs(kind: str, size: int, n_queries: int) -> tuple[Path, Path]:
    """The list file and the query file (cached under .bench/hashlists/)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    listing = CACHE / f"{kind}-{size}.txt"
    queries = CACHE / f"{kind}-{size}-queries-{n_queries}.txt"
    if listing.exists() and queries.exists():
        return listing, queries
    rng = np.random.default_rng(1)
    width = DIGEST_BYTES[kind]
    digests = rng.integers(0, 256, (size, width), dtype=np.uint8)
    _write_hex_lines(listing, digests)
    members = digests[rng.integers(0, size, n_queries // 2)]
    strangers = rng.integers(0, 256, (n_queries - len(members), width), dtype=np.uint8)
    mixed = np.concatenate([members, strangers])[rng.permutation(n_queries)]
    _write_hex_lines(queries, mixed)
    return listing, queries


def _write_hex_lines(path: Path, digests: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for start in range(0, len(digests), 1_000_000):
            part = digests[start : start + 1_000_000]
            hexed = np.frombuffer(part.tobytes().hex().encode(), dtype=np.uint8)
            lines = np.full((len(part), part.shape[1] * 2 + 1), ord("\n"), dtype=np.uint8)
            lines[:, :-1] = hexed.reshape(len(part), -1)
            f.write(lines.tobytes())
    tmp.rename(path)


def child_exact(args: argparse.Namespace) -> dict:
    from laion_assets.pipeline.safety.hashlists import ExactHashList, read_hex_lines

    contender, kind = args.child.split(":")[1:]
    listing, query_file = exact_inputs(kind, args.exact_size, args.exact_queries)
    queries = query_file.read_text().split()
    gc.collect()
    rss0 = rss_now_mb()
    clock = Clock()
    result: dict = {"contender": contender, "kind": kind, "queries": len(queries)}
    if contender == "ours":
        with open(listing, "rb") as f:
            digests = read_hex_lines(f, source=listing.name, digits=DIGEST_BYTES[kind] * 2)
        result["parse"] = clock.lap()
        table = ExactHashList(kind, digests)
        del digests
        result["build"] = clock.lap()
        result["nbytes"] = table.nbytes
        result["size"] = len(table)
        gc.collect()
        result["rss_mb"] = rss_now_mb() - rss0
        clock.lap()
        hits = sum(
            int(table.matches(queries[i : i + BATCH]).sum()) for i in range(0, len(queries), BATCH)
        )
    else:
        with open(listing, "rb" if contender == "set-bytes" else "r") as f:
            if contender == "set-bytes":
                table = {bytes.fromhex(line.decode()) for line in f}
            else:
                table = {line.rstrip("\n") for line in f}
        result["parse"] = (0.0, 0.0)
        result["build"] = clock.lap()
        result["size"] = len(table)
        gc.collect()
        result["rss_mb"] = rss_now_mb() - rss0
        clock.lap()
        if contender == "set-bytes":
            hits = sum(bytes.fromhex(q) in table for q in queries)
        else:
            hits = sum(q in table for q in queries)
    result["lookup"] = clock.lap()
    result["hits"] = int(hits)
    result["peak_rss_mb"] = peak_rss_mb() - rss0
    return result


# -- parent ---------------------------------------------------------------------------------


def run_child(args: argparse.Namespace, child: str) -> dict:
    env = dict(os.environ, **{name: "1" for name in THREAD_VARS})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", child, *args.passthrough]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"child {child} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len(RESULT_TAG) :])


def report_pdq(r: dict, max_distance: int) -> None:
    rate = r["queries"] / r["query"][0]
    brute_rate = r["brute_queries"] / r["brute"][0]
    print(
        f"\n(a) PDQ: {r['size']:,} listed hashes, {r['queries']:,} queries, max distance "
        f"{max_distance}; build {r['build'][0]:.2f} s CPU ({r['build'][1]:.2f} wall)"
    )
    head = (
        f"| {'contender':<44} | {'queries':>7} | {'CPU s':>6} | {'wall s':>6} | "
        f"{'queries/s':>9} | {'vs brute':>8} |"
    )
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    rows = [
        ("PdqIndex.query_many (16x16-bit multi-index)", r["queries"], r["query"], rate),
        ("numpy brute force (XOR + popcount, all)", r["brute_queries"], r["brute"], brute_rate),
    ]
    for name, n, (cpu, wall), per_s in rows:
        print(
            f"| {name:<44} | {n:>7,} | {cpu:>6.2f} | {wall:>6.2f} | {per_s:>9,.0f} | "
            f"{per_s / brute_rate:>7.1f}x |"
        )
    print(
        f"index memory: nbytes {r['nbytes'] / 2**20:.0f} MiB, RSS +{r['rss_index_mb']:.0f} MB "
        f"after build, peak RSS {r['peak_rss_mb']:.0f} MB (process)"
    )
    print(
        f"answers: {r['matched']:,} matched; {r['planted_within']:,} planted within "
        f"{max_distance} all found: {r['planted_found']}; nothing else matched: "
        f"{r['others_unmatched']}; brute force agrees on its {r['brute_queries']}: "
        f"{r['brute_agrees']}"
    )
    verdict = "MET" if rate >= 4000 else "NOT MET"
    print(f"goal >= 4,000 queries/s on one core: {verdict} ({rate:,.0f})")


def report_exact(results: list[dict]) -> None:
    names = {
        "ours": "ExactHashList (sorted words + bucket table)",
        "set-bytes": "Python set of digest bytes",
        "set-str": "Python set of hex str",
    }
    head = (
        f"| {'kind':<6} | {'contender':<43} | {'entries':>10} | {'parse s':>7} | "
        f"{'build s':>7} | {'lookups/s':>10} | {'nbytes MB':>9} | {'RSS +MB':>7} | "
        f"{'peak +MB':>8} |"
    )
    print(
        f"\n(b) exact lists, {results[0]['queries']:,} hex queries (half listed); "
        "CPU seconds; 'build' for the sets is reading the file line by line into the set"
    )
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    for r in results:
        rate = r["queries"] / r["lookup"][0]
        nbytes = f"{r['nbytes'] / 2**20:.0f}" if "nbytes" in r else "-"
        print(
            f"| {r['kind']:<6} | {names[r['contender']]:<43} | {r['size']:>10,} | "
            f"{r['parse'][0]:>7.2f} | {r['build'][0]:>7.2f} | {rate:>10,.0f} | "
            f"{nbytes:>9} | {r['rss_mb']:>7.0f} | {r['peak_rss_mb']:>8.0f} |"
        )
    hits = {(r["kind"], r["hits"]) for r in results}
    print(f"hits agree across contenders: {len(hits) == len({r['kind'] for r in results})}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdq-size", type=int, default=1_000_000)
    parser.add_argument("--pdq-queries", type=int, default=20_000)
    parser.add_argument("--brute-queries", type=int, default=200)
    parser.add_argument("--max-distance", type=int, default=31)
    parser.add_argument("--exact-size", type=int, default=10_000_000)
    parser.add_argument("--exact-queries", type=int, default=1_000_000)
    parser.add_argument("--kinds", nargs="*", default=["md5", "sha256"], choices=DIGEST_BYTES)
    parser.add_argument("--no-set", action="store_true", help="skip the Python set baselines")
    parser.add_argument("--no-pdq", action="store_true")
    parser.add_argument("--cpu", type=int, default=0, help="core the children are pinned to")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        pin_to_cpu(args.cpu)
        result = child_pdq(args) if args.child == "pdq" else child_exact(args)
        print(RESULT_TAG + json.dumps(result))
        return
    args.passthrough = [
        f"--pdq-size={args.pdq_size}", f"--pdq-queries={args.pdq_queries}",
        f"--brute-queries={args.brute_queries}", f"--max-distance={args.max_distance}",
        f"--exact-size={args.exact_size}", f"--exact-queries={args.exact_queries}",
        f"--cpu={args.cpu}",
    ]  # fmt: skip
    import numpy

    print(
        f"bench_hashlists: python {platform.python_version()}, numpy {numpy.__version__}, "
        f"{os.cpu_count()} CPUs, children pinned to CPU {args.cpu}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if not args.no_pdq:
        report_pdq(run_child(args, "pdq"), args.max_distance)
    results = []
    for kind in args.kinds:
        exact_inputs(kind, args.exact_size, args.exact_queries)
        for contender in ("ours",) if args.no_set else ("ours", "set-bytes", "set-str"):
            print(f"running {contender} {kind} ...", flush=True)
            results.append(run_child(args, f"exact:{contender}:{kind}"))
    if results:
        report_exact(results)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
