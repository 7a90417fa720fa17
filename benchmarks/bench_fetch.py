#!/usr/bin/env python3
"""Image fetching throughput: laion_assets `download_shard` against img2dataset, same URLs.

    .venv/bin/python benchmarks/bench_fetch.py [--n 2000] [--concurrency 64] [--repeat 1]
        [--stages] [--profile] [--malloc-row] [--two-shards] [--no-img2dataset]

An image server runs on 127.0.0.1 in its own process (aiohttp, bodies from memory, so it
shares no GIL with the client being measured). It serves `--n` distinct URLs
(`/img/00000.jpg` ...) built from `--sources` generated 640x480 JPEGs (gradient, blobs and
noise, 40-80 KB each); every URL's body is made distinct by a JPEG comment segment holding
its number, so each download has its own sha256. Every contender runs as a child process on
the same URL list with the same resize settings (256, center_crop, JPEG quality 95):

1. laion_assets: `download_shard` with `sources=("live",)`, `min_bytes=0`, loopback allowed,
   `max_concurrency = --concurrency`, `decode_workers` at its default (one worker process
   per CPU) unless the row says otherwise. Since every URL is on one host, the per-host
   limit is the real limit: the main row uses `per_host_concurrency = max_concurrency`
   (img2dataset has no per-host limit: the fair comparison), another the default per-host
   limit 4, another `decode_workers=0` (decoding inline on the fetch loop, as before the
   worker pool). `--two-shards` adds two shards of n/2 in two processes at once (each with
   half the concurrency and one decode worker), the way shard partitions run side by side.
   laion_assets computes sha256, md5 and PDQ of every original and applies EXIF rotation.
2. img2dataset 1.47.0, in its own virtualenv `.bench/img2dataset-venv` (created on first
   use with `python3 -m uv`; never part of the project's dependencies): webdataset output,
   `--processes_count 2`, `--thread_count concurrency/2` (threads are per process, so the
   total in flight matches), one shard of n/2 per process, `--compute_hash sha256` (the only
   hash it computes), `--extract_exif False` (we store no EXIF), `--retries 0`.

Every contender first does a small warm-up run (`--warmup` URLs under `/warm/`). Images ok
are counted from each tool's own output: our `fetch_results.parquet` rows with status "ok",
img2dataset's `*_stats.json` "successes". Two times are reported: the whole child process
(interpreter start, imports, img2dataset's spawned workers) and the fetch window (our
`download_shard` call; from the first img2dataset shard's start to the last one's end). CPU
is user+system of the child and all its descendants (decode workers included); "loop CPU"
is what the process running the fetch loop used during the call (its own threads). The
machine is shared: `--repeat R` runs every contender R times, interleaved, and adds a table of
each row's least disturbed run (shortest fetch window); CPU per image is the steadier figure.

`--profile` adds two cProfile runs of `download_shard` in a child: with `decode_workers=0`,
so that every per-image cost is in the profile, and with the default workers, to show what
the fetch-loop process still does (top functions by cumulative and own time). `--stages`
times each step of processing one image, in-process, for both tools (ours: decode, PDQ,
resize, encode, hashes; img2dataset: its Resizer and its sha256), and adds a fetch-only run
of our fetcher that decodes nothing. `--malloc-row` adds a laion_assets row run with glibc's
mmap/trim thresholds raised and Pillow's block cache on (environment variables only), which
removes most of the per-image page faults.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / ".bench"
I2D_VERSION = "1.47.0"
I2D_VENV = BENCH / "img2dataset-venv"
I2D_REQUIREMENTS = Path(__file__).resolve().parent / "img2dataset-requirements.txt"
IMAGE_DIR = BENCH / "fetch-images"
RESULT_TAG = "BENCH_RESULT "
# Keeps freed image buffers in the heap instead of unmapping them (each image otherwise
# costs thousands of page faults: fresh pages for every decode, resize and numpy copy).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20),
              "PILLOW_BLOCKS_MAX": "16"}
RESIZE, RESIZE_MODE, QUALITY = 256, "center_crop", 95
# albumentations checks PyPI for updates on import, wandb would phone home; neither may.
I2D_ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "WANDB_SILENT": "true"}


# -- source images ----------------------------------------------------------------------------


def make_sources(count: int, width: int, height: int, folder: Path) -> list[Path]:
    """`count` deterministic JPEGs (quality 85) of 40-80 KB: gradient, soft blobs, noise."""
    import io

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"src-{width}x{height}-{i:03d}.jpg" for i in range(count)]
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(1234)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for path in paths:
        angle = rng.uniform(0, 2 * math.pi)
        ramp = x * math.cos(angle) + y * math.sin(angle)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        base = c0 + (c1 - c0) * ramp[..., None]
        for _ in range(6):  # soft coloured blobs
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(30, 160)
            mask = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
            base = base * (1 - mask) + rng.uniform(0, 255, 3) * mask
        coarse = rng.uniform(0, 255, (height // 24 + 1, width // 24 + 1, 3)).astype(np.uint8)
        texture = np.asarray(Image.fromarray(coarse).resize((width, height),
                                                            Image.Resampling.BICUBIC))
        base = 0.75 * base + 0.25 * texture
        sigma, data = 6.0, b""
        for _ in range(12):  # tune the fine noise until the JPEG is 40-80 KB
            noisy = base + rng.normal(0, sigma, base.shape)
            buffer = io.BytesIO()
            Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
            data = buffer.getvalue()
            if len(data) < 40_000:
                sigma *= 1.35
            elif len(data) > 80_000:
                sigma /= 1.3
            else:
                break
        path.write_bytes(data)
    return paths


def numbered(body: bytes, number: int) -> bytes:
    """`body` (a JPEG) with a COM segment naming `number` after SOI: a distinct file."""
    comment = f"bench image {number:06d}".encode()
    return body[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + body[2:]


# -- the image server (its own process) ---------------------------------------------------------


def serve(image_dir: str) -> None:
    """Serve /img/<n>.jpg and /warm/<n>.jpg on 127.0.0.1; print the port; run until killed."""
    from aiohttp import web

    bodies = [p.read_bytes() for p in sorted(Path(image_dir).glob("src-*.jpg"))]

    async def image(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if not name.isdigit():
            return web.Response(status=404)
        number = int(name)
        return web.Response(body=numbered(bodies[number % len(bodies)], number),
                            content_type="image/jpeg")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/img/{name}.jpg", image)
        app.router.add_get("/warm/{name}.jpg", image)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(f"PORT {runner.addresses[0][1]}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


class Server:
    def __init__(self, image_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(image_dir)],
            stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"image server did not start: {line!r}")
        self.port = int(line.split()[1])

    def urls(self, prefix: str, n: int) -> list[str]:
        return [f"http://127.0.0.1:{self.port}/{prefix}/{i:05d}.jpg" for i in range(n)]

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- laion_assets child -------------------------------------------------------------------------


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_laion(args: argparse.Namespace) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from laion_assets.pipeline.core.files import LocalFolder
    from laion_assets.pipeline.download.images import ImagePolicy
    from laion_assets.pipeline.download.live import LiveFetchConfig
    from laion_assets.pipeline.download.stage import RESULTS_FILE, DownloadConfig, download_shard

    urls = Path(args.child_laion).read_text().split()
    out = Path(args.out)
    config = DownloadConfig(
        sources=("live",),
        live=LiveFetchConfig(allowed_networks=("127.0.0.0/8",),
                             max_concurrency=args.max_concurrency,
                             per_host_concurrency=args.per_host),
        policy=ImagePolicy(resize=RESIZE, resize_mode=RESIZE_MODE, min_bytes=0,
                           jpeg_quality=QUALITY),
    )
    if args.decode_workers is not None:
        config = dataclasses.replace(config, decode_workers=args.decode_workers)
    logs: list[str] = []
    cpu0, start = _cpu_self(), time.time()
    if args.profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(download_shard, urls, LocalFolder(out), config=config, log=logs.append)
        profiler.dump_stats(args.profile_to)
    else:
        download_shard(urls, LocalFolder(out), config=config, log=logs.append)
    end, cpu1 = time.time(), _cpu_self()
    results = pq.read_table(out / RESULTS_FILE, columns=["status", "reason"])
    ok = pc.sum(pc.equal(results["status"], "ok")).as_py() or 0
    failures = {}
    for reason in results.filter(pc.not_equal(results["status"], "ok"))["reason"].to_pylist():
        failures[reason] = failures.get(reason, 0) + 1
    print(RESULT_TAG + json.dumps({"ok": ok, "rows": results.num_rows, "start": start,
                                   "end": end, "cpu_in_call": cpu1 - cpu0,
                                   "failures": failures, "log": logs[-1:],
                                   "decode_workers": getattr(config, "decode_workers", None)}),
          flush=True)


def child_fetch_only(args: argparse.Namespace) -> None:
    """Our fetcher alone (bodies discarded): what the event loop does without the images."""
    from laion_assets.pipeline.download.live import LiveFetchConfig, fetch_live_sync

    urls = Path(args.child_fetch_only).read_text().split()
    config = LiveFetchConfig(allowed_networks=("127.0.0.0/8",),
                             max_concurrency=args.max_concurrency,
                             per_host_concurrency=args.per_host)
    ok = 0

    def on_result(result) -> None:
        nonlocal ok
        ok += result.ok

    cpu0, start = _cpu_self(), time.time()
    fetch_live_sync(urls, config, on_result)
    end, cpu1 = time.time(), _cpu_self()
    print(RESULT_TAG + json.dumps({"ok": ok, "start": start, "end": end,
                                   "cpu_in_call": cpu1 - cpu0}), flush=True)


# -- running contenders -------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _result_line(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError("child printed no result")


def run_laion(urls: list[str], work: Path, max_concurrency: int, per_host: int,
              shards: int = 1, decode_workers: int | None = None,
              profile_to: Path | None = None, env: dict[str, str] | None = None) -> dict:
    """download_shard in `shards` child processes at once, the URLs split evenly."""
    size = math.ceil(len(urls) / shards)
    procs = []
    cpu0, start = _children_cpu(), time.monotonic()
    for index in range(shards):
        part = work / f"laion-{index}"
        part.mkdir(parents=True)
        url_file = part / "urls.txt"
        url_file.write_text("\n".join(urls[index * size:(index + 1) * size]) + "\n")
        command = [sys.executable, __file__, "--child-laion", str(url_file),
                   "--out", str(part / "out"), "--max-concurrency", str(max_concurrency),
                   "--per-host", str(per_host)]
        if profile_to is not None:
            command += ["--profile-to", str(profile_to)]
        if decode_workers is not None:
            command += ["--decode-workers", str(decode_workers)]
        procs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd=REPO, env={**os.environ, **(env or {})}))
    outputs = [proc.communicate() for proc in procs]
    wall, cpu = time.monotonic() - start, _children_cpu() - cpu0
    results = []
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        if proc.returncode:
            raise RuntimeError(f"laion_assets child failed ({proc.returncode}):\n{stderr[-3000:]}")
        results.append(_result_line(stdout))
    failures: dict[str, int] = {}
    for result in results:
        for reason, count in result["failures"].items():
            failures[reason] = failures.get(reason, 0) + count
    return {
        "ok": sum(r["ok"] for r in results), "wall": wall, "cpu": cpu,
        "window": max(r["end"] for r in results) - min(r["start"] for r in results),
        "failures": failures, "loop_cpu": sum(r["cpu_in_call"] for r in results),
        "decode_workers": results[0]["decode_workers"],
    }


def run_fetch_only(urls: list[str], work: Path, max_concurrency: int, per_host: int) -> dict:
    work.mkdir(parents=True)
    url_file = work / "urls.txt"
    url_file.write_text("\n".join(urls) + "\n")
    cpu0, start = _children_cpu(), time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, "--child-fetch-only", str(url_file),
         "--max-concurrency", str(max_concurrency), "--per-host", str(per_host)],
        capture_output=True, text=True, cwd=REPO,
    )
    wall, cpu = time.monotonic() - start, _children_cpu() - cpu0
    if proc.returncode:
        raise RuntimeError(f"fetch-only child failed:\n{proc.stderr[-3000:]}")
    result = _result_line(proc.stdout)
    return {"ok": result["ok"], "wall": wall, "cpu": cpu,
            "window": result["end"] - result["start"], "failures": {},
            "loop_cpu": result["cpu_in_call"]}


def ensure_img2dataset() -> tuple[Path | None, str]:
    """The img2dataset executable in its own venv (installed on first use), or None and why."""
    exe = I2D_VENV / "bin" / "img2dataset"
    marker = I2D_VENV / f".installed-{I2D_VERSION}"
    if exe.exists() and marker.exists():
        return exe, "already installed"
    python3 = os.environ.get("PYTHON", "python3")
    uv = [python3, "-m", "uv"]
    steps = [uv + ["venv", "--clear", "--python", python3, str(I2D_VENV)]]
    install = uv + ["pip", "install", "--python", str(I2D_VENV / "bin" / "python"),
                    f"img2dataset=={I2D_VERSION}"]
    if I2D_REQUIREMENTS.exists():
        install += ["-r", str(I2D_REQUIREMENTS)]
    steps.append(install)
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode:
            tail = (proc.stderr or proc.stdout)[-2000:]
            return None, f"`{' '.join(step)}` failed ({proc.returncode}):\n{tail}"
    marker.write_text(I2D_VERSION + "\n")
    return exe, "installed now"


def run_img2dataset(exe: Path, urls: list[str], work: Path, concurrency: int,
                    processes: int) -> dict:
    work.mkdir(parents=True)
    url_file = work / "urls.txt"
    url_file.write_text("\n".join(urls) + "\n")
    out = work / "out"
    threads = max(1, concurrency // processes)
    command = [
        str(exe), "--url_list", str(url_file), "--input_format", "txt",
        "--output_format", "webdataset", "--output_folder", str(out),
        "--image_size", str(RESIZE), "--resize_mode", RESIZE_MODE,
        "--encode_format", "jpg", "--encode_quality", str(QUALITY),
        "--processes_count", str(processes), "--thread_count", str(threads),
        "--number_sample_per_shard", str(math.ceil(len(urls) / processes)),
        "--compute_hash", "sha256", "--extract_exif", "False", "--retries", "0",
        "--timeout", "10", "--enable_wandb", "False",
    ]
    env = {**os.environ, **I2D_ENV}
    cpu0, start = _children_cpu(), time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work)
    wall, cpu = time.monotonic() - start, _children_cpu() - cpu0
    stats = [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]
    if proc.returncode or not stats:
        raise RuntimeError(f"img2dataset failed ({proc.returncode}):\n"
                           f"{(proc.stderr or proc.stdout)[-3000:]}")
    failures: dict[str, int] = {}
    for shard in stats:
        for status, count in shard["status_dict"].items():
            if status != "success":
                failures[status] = failures.get(status, 0) + count
    return {
        "ok": sum(s["successes"] for s in stats), "wall": wall, "cpu": cpu,
        "window": max(s["end_time"] for s in stats) - min(s["start_time"] for s in stats),
        "failures": failures, "threads": threads,
    }


# -- per-image stage costs ----------------------------------------------------------------------

I2D_STAGES = """
import hashlib, io, sys, time, json
from img2dataset.resizer import Resizer
SIZE, MODE, QUALITY = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
paths, reps = sys.argv[4:-1], int(sys.argv[-1])
bodies = [open(p, "rb").read() for p in paths]
r = Resizer(image_size=SIZE, resize_mode=MODE, resize_only_if_bigger=False, encode_quality=QUALITY)
r(io.BytesIO(bodies[0]))
out = {}
t = time.perf_counter()
for _ in range(reps):
    for b in bodies:
        img, *_rest, err = r(io.BytesIO(b))
        assert err is None, err
out["Resizer (imdecode, SmallestMaxSize area, CenterCrop, imencode q95)"] = time.perf_counter() - t
t = time.perf_counter()
for _ in range(reps):
    for b in bodies:
        hashlib.sha256(b).hexdigest()
out["sha256"] = time.perf_counter() - t
print(json.dumps({k: v / (reps * len(bodies)) for k, v in out.items()}))
"""


def stages(paths: list[Path], reps: int, i2d: Path | None) -> None:
    """Per-image milliseconds of each processing step, single thread, in-process."""
    import hashlib
    import io

    from PIL import Image

    from laion_assets.pipeline.download import images

    policy = images.ImagePolicy(resize=RESIZE, resize_mode=RESIZE_MODE, min_bytes=0,
                                jpeg_quality=QUALITY)
    bodies = [p.read_bytes() for p in paths]
    count = reps * len(bodies)

    def per_image(fn) -> float:
        fn(bodies[0])
        start = time.perf_counter()
        for _ in range(reps):
            for body in bodies:
                fn(body)
        return (time.perf_counter() - start) / count * 1000

    def decode(body: bytes) -> Image.Image:
        with Image.open(io.BytesIO(body), formats=policy.formats) as im:
            rgb, _ = images._decode_first_frame(im, policy)
        return rgb

    rgbs = [decode(b) for b in bodies]
    resized = [images.resize_image(r, RESIZE, RESIZE_MODE) for r in rgbs]

    def cycle(items: list):
        return iter(items * (reps + 1))

    pdq_in, resize_in, encode_in = cycle(rgbs), cycle(rgbs), cycle(resized)
    rows = [
        ("process_image, all of it", per_image(lambda b: images.process_image(b, policy))),
        ("  open + decode + EXIF + RGB", per_image(decode)),
        ("  PDQ (BOX to 512x512 + pdqhash)", per_image(lambda b: images.pdq_bits(next(pdq_in)))),
        ("  resize (LANCZOS, center crop)",
         per_image(lambda b: images.resize_image(next(resize_in), RESIZE, RESIZE_MODE))),
        ("  encode JPEG q95 256x256",
         per_image(lambda b: images.encode_image(next(encode_in), policy))),
        ("  sha256 + md5", per_image(lambda b: (hashlib.sha256(b).hexdigest(),
                                               hashlib.md5(b).hexdigest()))),
    ]
    print(f"\nPer-image processing cost, one thread, {len(bodies)} source images x {reps}:")
    for name, ms in rows:
        print(f"  laion_assets {name:<40} {ms:7.2f} ms")
    if i2d is None:
        return
    proc = subprocess.run(
        [str(i2d.parent / "python"), "-c", I2D_STAGES, str(RESIZE), RESIZE_MODE, str(QUALITY),
         *map(str, paths), str(reps)],
        capture_output=True, text=True, env={**os.environ, **I2D_ENV},
    )
    if proc.returncode:
        print(f"  img2dataset stage timing failed: {proc.stderr[-1000:]}")
        return
    for name, seconds in json.loads(proc.stdout.splitlines()[-1]).items():
        print(f"  img2dataset  {name:<40} {seconds * 1000:7.2f} ms")


def show_profile(path: Path, label: str) -> None:
    import pstats

    stats = pstats.Stats(str(path))
    print(f"\n==== cProfile of download_shard, {label} ({path.relative_to(REPO)}) ====")
    print("-- top 25 by cumulative time --")
    stats.sort_stats("cumulative").print_stats(25)
    print("-- top 15 by own time --")
    stats.sort_stats("tottime").print_stats(15)


# -- main ---------------------------------------------------------------------------------------


W = 46  # tool column


def table(rows: list[tuple[str, dict | None, str]], n: int) -> None:
    base = next((r for name, r, _ in rows if r and name.startswith("img2dataset")), None)
    header = (f"{'tool':<{W}} {'ok':>5} {'wall s':>7} {'img/s':>6} {'x i2d':>5} "
              f"{'fetch s':>7} {'img/s':>6} {'x i2d':>5} {'CPU s':>6} {'ms/img':>6} {'loop':>5}")
    print(f"\n{n} URLs; 'wall' = whole child process(es); 'fetch' = the fetch window "
          "(download_shard call / first img2dataset shard start to last shard end);\n"
          "'x i2d' = images/s relative to img2dataset; CPU = user+sys of the client "
          "and all its children (ms/img: per image ok);\n'loop' = CPU of the fetch-loop "
          "process during the call")
    print(header)
    print("-" * len(header))
    for name, r, note in rows:
        if r is None:
            print(f"{name:<{W}} {note}")
            continue
        wall_rate, win_rate = r["ok"] / r["wall"], r["ok"] / r["window"]
        if base:
            ratio_wall = f"{wall_rate / (base['ok'] / base['wall']):5.2f}"
            ratio_win = f"{win_rate / (base['ok'] / base['window']):5.2f}"
        else:
            ratio_wall = ratio_win = f"{'n/a':>5}"
        loop = f"{r['loop_cpu']:5.1f}" if r.get("loop_cpu") is not None else f"{'':>5}"
        print(f"{name:<{W}} {r['ok']:>5} {r['wall']:7.2f} {wall_rate:6.1f} {ratio_wall} "
              f"{r['window']:7.2f} {win_rate:6.1f} {ratio_win} {r['cpu']:6.1f} "
              f"{r['cpu'] / max(r['ok'], 1) * 1000:6.1f} {loop}")
        if r.get("failures"):
            print(f"{'':<{W}}   failures: {r['failures']}")
        if note:
            print(f"{'':<{W}}   {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="distinct image URLs")
    parser.add_argument("--sources", type=int, default=20, help="distinct source JPEGs")
    parser.add_argument("--size", default="640x480", help="source image size WxH")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="total requests in flight, the same for every contender")
    parser.add_argument("--processes", type=int, default=2, help="img2dataset processes")
    parser.add_argument("--warmup", type=int, default=100, help="URLs in each warm-up run")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per contender")
    parser.add_argument("--profile", action="store_true",
                        help="also profile download_shard with cProfile")
    parser.add_argument("--stages", action="store_true",
                        help="also time each per-image step, and a fetch-only run")
    parser.add_argument("--two-shards", action="store_true",
                        help="also run two laion_assets shards of n/2 in parallel processes")
    parser.add_argument("--malloc-row", action="store_true",
                        help="also run laion_assets with glibc malloc thresholds raised and "
                             "Pillow's block cache on (environment only, no code change)")
    parser.add_argument("--no-img2dataset", action="store_true")
    # child modes
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--child-laion", help=argparse.SUPPRESS)
    parser.add_argument("--child-fetch-only", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--max-concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--per-host", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    parser.add_argument("--decode-workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.child_laion:
        return child_laion(args)
    if args.child_fetch_only:
        return child_fetch_only(args)

    width, height = (int(v) for v in args.size.lower().split("x"))
    concurrency = args.concurrency
    BENCH.mkdir(exist_ok=True)
    paths = make_sources(args.sources, width, height, IMAGE_DIR)
    sizes = [p.stat().st_size for p in paths]
    print(f"sources: {len(paths)} JPEGs {width}x{height}, {min(sizes) // 1000}-"
          f"{max(sizes) // 1000} KB (mean {sum(sizes) // len(sizes) // 1000} KB); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    i2d, i2d_note = (None, "skipped (--no-img2dataset)")
    if not args.no_img2dataset:
        i2d, i2d_note = ensure_img2dataset()
        print(f"img2dataset {I2D_VERSION}: {i2d_note if i2d else 'NOT AVAILABLE'}")
        if i2d is None:
            print(i2d_note)

    from laion_assets.pipeline.download.stage import DownloadConfig

    default_workers = getattr(DownloadConfig(), "decode_workers", "n/a")
    server = Server(IMAGE_DIR)
    half = max(1, concurrency // 2)
    contenders: list[tuple[str, object, str]] = [
        (f"laion_assets conc {concurrency}, per-host {concurrency}",
         lambda urls, work: run_laion(urls, work, concurrency, concurrency),
         "per_host_concurrency = max_concurrency (img2dataset has no per-host limit); "
         f"decode_workers default ({default_workers})"),
        (f"laion_assets conc {concurrency}, per-host 4 (default)",
         lambda urls, work: run_laion(urls, work, concurrency, 4),
         "the default per-host limit: only 4 in flight, all URLs share one host"),
        (f"laion_assets conc {concurrency}, per-host {concurrency}, inline",
         lambda urls, work: run_laion(urls, work, concurrency, concurrency, decode_workers=0),
         "decode_workers=0: decode/hash/resize on the fetch loop (before the worker pool)"),
    ]
    if args.malloc_row:
        contenders.append((
            f"laion_assets conc {concurrency}, per-host {concurrency}, malloc env",
            lambda urls, work: run_laion(urls, work, concurrency, concurrency, env=MALLOC_ENV),
            " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items())))
    if args.two_shards:
        contenders.append((
            f"laion_assets 2 shards x (conc {half}, per-host {half})",
            lambda urls, work: run_laion(urls, work, half, half, shards=2, decode_workers=1),
            "two download_shard processes at once, n/2 URLs and 1 decode worker each"))
    if i2d is not None:
        contenders.append((
            f"img2dataset {args.processes} proc x {max(1, concurrency // args.processes)} threads",
            lambda urls, work: run_img2dataset(i2d, urls, work, concurrency, args.processes),
            f"webdataset, {max(1, math.ceil(args.n / args.processes))} URLs per shard, "
            "sha256 only, no EXIF",
        ))
    if args.stages:
        contenders.append((
            f"laion_assets fetch only (conc {concurrency}, per-host {concurrency})",
            lambda urls, work: run_fetch_only(urls, work, concurrency, concurrency),
            "fetch_live_sync alone: no decode/hash/resize/tar/parquet",
        ))
    results: dict[str, list[dict]] = {name: [] for name, _, _ in contenders}
    try:
        with tempfile.TemporaryDirectory(dir=BENCH, prefix="fetch-run-") as tmp:
            work = Path(tmp)
            warm = server.urls("warm", args.warmup)
            for index, (_name, run, _) in enumerate(contenders):
                run(warm, work / f"warm-{index}")
            print(f"warm-up done ({args.warmup} URLs per contender); image server on port "
                  f"{server.port}")
            urls = server.urls("img", args.n)
            for rep in range(args.repeat):
                for index, (name, run, _) in enumerate(contenders):
                    server_cpu = server.cpu_seconds()
                    result = run(urls, work / f"run-{rep}-{index}")
                    result["server_cpu"] = server.cpu_seconds() - server_cpu
                    results[name].append(result)
                    print(f"  {name}: {result['ok']} ok in {result['wall']:.2f}s "
                          f"(server CPU {result['server_cpu']:.2f}s)", flush=True)
                    shutil.rmtree(work / f"run-{rep}-{index}")
            profiles = []
            if args.profile:
                for workers, label in ((0, "decode_workers=0 (everything in one process)"),
                                       (None, "default decode workers (fetch-loop process)")):
                    path = BENCH / f"bench_fetch-{'inline' if workers == 0 else 'workers'}.prof"
                    result = run_laion(urls, work / f"profile-{workers}", concurrency,
                                       concurrency, decode_workers=workers, profile_to=path)
                    profiles.append((path, f"{label}: {result['ok']} ok, "
                                           f"{result['window']:.2f}s under the profiler"))
    finally:
        server.stop()

    missing = [] if i2d else [(f"img2dataset {I2D_VERSION}", None,
                               f"NOT RUN: {i2d_note.splitlines()[0]}")]
    for rep in range(args.repeat):
        if args.repeat > 1:
            print(f"\n== run {rep + 1} of {args.repeat} ==")
        table([(name, results[name][rep], note) for name, _, note in contenders] + missing,
              args.n)
    if args.repeat > 1:
        print(f"\n== best of {args.repeat}: each row's run with the shortest fetch window "
              "(the machine is shared: the least disturbed run) ==")
        best = [(name, min(results[name], key=lambda r: r["window"]), note)
                for name, _, note in contenders]
        table(best + missing, args.n)
    print("\nhashes: laion_assets sha256 + md5 + PDQ (and EXIF rotation); "
          "img2dataset sha256 only (--compute_hash sha256)")
    if args.stages:
        stages(paths, 10, i2d)
    for path, label in profiles:
        show_profile(path, label)


if __name__ == "__main__":
    main()
