#!/usr/bin/env python3
"""The safety stage on a synthetic shard at its real input shape: peak RSS and time by size.

`bench_memory.py safety` runs this; each size's shard is built once (extracted pairs,
download results for half of them fetched, CLIP ids and float16 embeddings of the fetched
ones, all written as the stages write them), then the stage runs in a child process per
`stage.py`: the package's, and with `--module` another one (e.g. the batch-less stage,
`git show 1474334^:laion_assets/pipeline/safety/stage.py`), each fed its inputs as its
`run.py` fed them and followed by its `run.py`'s re-check of the written pairs. Every rule
is on (bench_safety's lists: 1,000,000 md5s, 100,000 PDQ hashes; LAION's ViT-B/32 heads);
concept prompts are embedded by a fixed random text encoder (no CLIP weights).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import xxhash  # noqa: E402
from measure import module_under_test, peak_rss_mb  # noqa: E402

from laion_assets.pipeline.core.files import LocalFolder  # noqa: E402

CHUNK = 1 << 20
WORDS = ("photo", "of", "a", "red", "bicycle", "in", "the", "city", "harbour", "at", "sunset",
         "with", "old", "boats", "lighthouse", "mountain", "lake", "forest", "cabin", "snow")


def build_shard(root: Path, rows: int, dim: int) -> None:
    """pairs.parquet, results.parquet and clip/ (ids, image and text embeddings) in `root`."""
    from laion_assets.pipeline.download.stage import FETCH_RESULTS_SCHEMA, RESULTS_ROW_GROUP
    from laion_assets.pipeline.extract.dedup import WRITE_ROWS
    from laion_assets.pipeline.extract.pairs import EXTRACTED_PAIRS_SCHEMA
    from laion_assets.pipeline.formats.embeddings import EmbeddingWriter

    rng = np.random.default_rng(0)
    captions = pa.array([" ".join(random.Random(i).choices(WORDS, k=3 + i % 10))
                         for i in range(4096)])
    ok = rng.random(rows) < 0.5
    block = rng.standard_normal((CHUNK // 16, dim), np.float32)
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    with (pq.ParquetWriter(root / "pairs.parquet", EXTRACTED_PAIRS_SCHEMA) as pairs_out,
          pq.ParquetWriter(root / "results.parquet", FETCH_RESULTS_SCHEMA) as results_out,
          EmbeddingWriter(LocalFolder(root / "clip"), int(ok.sum()), dim) as clip_out):
        for start in range(0, rows, CHUNK):
            i = np.arange(start, min(rows, start + CHUNK))
            pairs = _pairs(i, captions, rng)
            pairs_out.write_table(pairs, row_group_size=WRITE_ROWS)  # as extraction writes
            results_out.write_table(_results(pairs.column("url").to_pylist(), ok[i], rng),
                                    row_group_size=RESULTS_ROW_GROUP)  # as the stage writes
            fetched = i[ok[i]]
            clip_out.write(_Embedded(pairs.column("pair_id").to_numpy()[ok[i]],
                                     np.resize(block, (len(fetched), dim)),
                                     np.resize(block[::-1], (len(fetched), dim)),
                                     rng.random(len(fetched), dtype=np.float32) * 0.45))


class _Embedded:
    def __init__(self, pair_ids, image, text, similarity) -> None:
        self.pair_ids, self.image_embeddings = pair_ids, image
        self.text_embeddings, self.similarity = text, similarity


def _pairs(i: np.ndarray, captions: pa.Array, rng: np.random.Generator) -> pa.Table:
    from laion_assets.pipeline.extract.pairs import EXTRACTED_PAIRS_SCHEMA

    n, hosts = len(i), rng.integers(0, 50_000, len(i))
    ids = (i.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)).view(np.int64)  # distinct
    at = list(zip(hosts, i, strict=True))
    values = {
        "pair_id": pa.array(ids), "text": captions.take(pa.array(i % len(captions))),
        "url": pa.array([f"http://img{h}.example.com/p/{k}.jpg" for h, k in at]),
        "page_url": pa.array([f"http://www{h}.example.com/a/{k // 7}" for h, k in at]),
        "warc_record_offset": pa.array(i * 5_000), "warc_record_id": pa.array(
            [f"<urn:uuid:{k:032x}>" for k in i]),
        "warc_file": pa.array([f"crawl-data/CC-BENCH/warc/{k // 250_000:05d}.warc.gz"
                               for k in i]),
    }
    return pa.table([values.get(f.name, _constant(f, n)) for f in EXTRACTED_PAIRS_SCHEMA],
                    schema=EXTRACTED_PAIRS_SCHEMA)


def _results(urls: list[str], ok: np.ndarray, rng: np.random.Generator) -> pa.Table:
    from laion_assets.pipeline.download.stage import FETCH_RESULTS_SCHEMA

    n = len(urls)
    digests = {name: _hex(rng, size, ok) for name, size in
               (("sha256", 32), ("md5", 16), ("sha1", 20), ("pdq", 32))}
    values = {
        "url": pa.array(urls), "url_key": pa.array([xxhash.xxh64_hexdigest(u.encode())
                                                    for u in urls]),
        "status": pa.array(np.where(ok, "ok", "failed")),
        "reason": pa.array(np.where(ok, None, "http_404")),
        "detail": pa.array(np.where(ok, None, "as archived")),
        "http_status": pa.array(np.where(ok, 200, 404), pa.int32()),
        "tar": pa.array([f"{k // 10_000:05d}.tar" for k in range(n)]),
        **digests,
    }
    return pa.table([values.get(f.name, _constant(f, n)) for f in FETCH_RESULTS_SCHEMA],
                    schema=FETCH_RESULTS_SCHEMA)


def _hex(rng: np.random.Generator, size: int, ok: np.ndarray) -> pa.Array:
    """Random lowercase hex digests of `size` bytes; null where not fetched."""
    raw = pa.FixedSizeBinaryArray.from_buffers(pa.binary(size), len(ok),
                                               [None, pa.py_buffer(rng.bytes(size * len(ok)))])
    hexes = pl.Series(raw.cast(pa.binary())).bin.encode("hex").to_arrow().cast(pa.string())
    return pc.if_else(pa.array(ok), hexes, pa.scalar(None, pa.string()))


def _constant(field: pa.Field, n: int) -> pa.Array:
    """A plausible constant for a column without its own generator, by name and type."""
    fixed = {"language": "en", "url_source": "img", "source": "replay", "format": "JPEG",
             "content_type": "image/jpeg", "crawl": "CC-BENCH", "shard": "CC-BENCH/00000"}
    if field.name in fixed:
        return pa.array([fixed[field.name]] * n, field.type)
    if pa.types.is_timestamp(field.type):
        return pa.array(np.full(n, 1_700_000_000_000), pa.int64()).cast(field.type)
    if pa.types.is_floating(field.type):
        return pa.array(np.full(n, 0.9), field.type)
    if pa.types.is_boolean(field.type):
        return pa.array(np.zeros(n, bool))
    if pa.types.is_string(field.type):
        return pa.nulls(n, field.type)
    value = {"bytes": 40_000, "width": 640, "height": 480, "pdq_quality": 90}.get(field.name, 1)
    return pa.array(np.full(n, value), field.type)


# -- the measured child --------------------------------------------------------------------


def child(root: Path, module: str | None, dim: int) -> dict:
    """Run the stage (the package's, or `module`) on the shard in `root`; its figures."""
    from bench_safety import lists

    from laion_assets.pipeline.formats.embeddings import read_embeddings
    from laion_assets.pipeline.safety.policy import SafetyPolicy

    stage = module_under_test(module, "laion_assets.pipeline.safety.stage")
    policy = SafetyPolicy()
    listed = lists(random.Random(0))
    models = stage.SafetyModels(_text_encoder(dim)).with_heads(
        {"model": "ViT-B-32", "embed_dim": dim}, policy)
    out = LocalFolder(root / f"out-{os.getpid()}")
    before = _reset_peak()  # the lists' and models' making peaks no more
    wall, cpu = time.perf_counter(), time.process_time()
    embeddings = read_embeddings(root / "clip")
    try:
        summary, leaks = _run(stage, root, embeddings, policy, listed, models, out)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        check = _digest(out.path, summary)
    finally:
        shutil.rmtree(out.path, ignore_errors=True)
    return {"stage": module or "package", "candidates": summary.candidates,
            "passed": summary.passed, "leaks": len(leaks), "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "rss_before_mb": round(before),
            "peak_mb": round(peak_rss_mb()), "check": check}


def _run(stage, root: Path, embeddings, policy, listed, models, out: LocalFolder):
    """The stage as its run.py drives it: inputs, filter_shard, the re-check of the pairs."""
    from laion_assets.pipeline.safety import verify

    def no_tar(name: str):
        raise AssertionError(f"no watermark model: tar {name} is never read")

    if "batch_rows" in stage.ShardInputs.__dataclass_fields__:  # batched: files, streamed
        with open(root / "pairs.parquet", "rb") as p, open(root / "results.parquet", "rb") as r:
            inputs = stage.ShardInputs(pq.ParquetFile(p), pq.ParquetFile(r), embeddings, no_tar)
            summary = stage.filter_shard(inputs, policy, listed, [], models, out)
        with open(out.path / "pairs.parquet", "rb") as written:
            return summary, verify.listed_pairs_in(pq.ParquetFile(written), listed, [], policy)
    inputs = stage.ShardInputs(pq.read_table(root / "pairs.parquet", use_threads=False),
                               pq.read_table(root / "results.parquet", use_threads=False),
                               embeddings, no_tar)
    summary = stage.filter_shard(inputs, policy, listed, [], models, out)
    written = pq.read_table(out.path / "pairs.parquet", use_threads=False)
    return summary, verify.listed_pairs(written, listed, [], policy)


def _reset_peak() -> float:
    """Reset this process's VmHWM to its RSS now (Linux: clear_refs 5); returns that RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return peak_rss_mb()


def _digest(folder: Path, summary) -> str:
    """What must not change: the counts and the passing pairs' ids (a short sha256)."""
    ids = pq.read_table(folder / "pairs.parquet", columns=["pair_id"]).column(0).to_numpy()
    passed = pq.read_table(folder / "scores.parquet", columns=["passed"]).column(0).to_numpy()
    payload = json.dumps([summary.counts, summary.redacted, summary.histograms], default=list)
    return hashlib.sha256(payload.encode() + ids.tobytes() + passed.tobytes()).hexdigest()[:16]


def _text_encoder(dim: int):
    def encode(prompts: list[str]) -> np.ndarray:
        seeds = [int.from_bytes(hashlib.sha256(p.encode()).digest()[:8]) for p in prompts]
        out = np.stack([np.random.default_rng(s).standard_normal(dim) for s in seeds])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)
    return encode


def sizes(rows: list[int], dim: int, module: str | None, keep: Path | None = None) -> None:
    """Per size: the shard built once, then a child per stage.py on it (JSON lines). With
    `keep`, each shard is built in (or reused from) `keep/<rows>` and left there."""
    for n in rows:
        with tempfile.TemporaryDirectory(prefix="bench-safety-") as scratch:
            root = keep / str(n) if keep else Path(scratch)
            started = time.perf_counter()
            if not (root / "clip" / "ids.parquet").exists():
                root.mkdir(parents=True, exist_ok=True)
                build_shard(root, n, dim)
            print(json.dumps({"candidates": n, "build_s": round(time.perf_counter() - started)}),
                  flush=True)
            for which in [None, module] if module else [None]:
                command = [sys.executable, __file__, "--child", str(root), "--dim", str(dim)] + (
                    ["--module", which] if which else [])
                out = subprocess.run(command, check=True, capture_output=True, text=True,
                                     cwd=Path(__file__).parent)
                print(out.stdout.strip().splitlines()[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--module", help="stage.py to measure as well as the package's")
    parser.add_argument("--keep", type=Path, help="build shards in (or reuse them from) here")
    parser.add_argument("--build-only", action="store_true", help="with --keep: only build")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child), args.module, args.dim)))
        return
    if args.build_only:
        for n in args.rows:
            (args.keep / str(n)).mkdir(parents=True, exist_ok=True)
            build_shard(args.keep / str(n), n, args.dim)
        return
    sizes(args.rows, args.dim, args.module, args.keep)


if __name__ == "__main__":
    main()
