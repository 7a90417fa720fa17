#!/usr/bin/env python3
"""CLIP scoring throughput: `ClipScorer.score` end to end against bare open_clip encoding.

    .venv/bin/python benchmarks/bench_clip.py [--model ViT-B-32] [--pairs N] [--batch-size 64]
        [--device auto] [--precision auto] [--num-workers 1] [--repeats 2]

Makes `--pairs` synthetic 256x256 JPEGs (smooth gradients plus noise, quality 90, like the
fetch stage's resized images) with distinct captions, then times, alternating `--repeats`
times and keeping the best of each:

1. scorer: `ClipScorer.score` over `(pair_id, jpeg bytes, text)` items, end to end: DataLoader
   workers decode and preprocess, texts are deduplicated and tokenised, the model encodes,
   embeddings are normalised, similarity computed, results cast to float16 and copied back.
2. baseline: bare `model.encode_image` + `model.encode_text` on tensors decoded, preprocessed
   and tokenised beforehand, at the same batch size, precision and device (the floor).

Overhead = scorer time / baseline time - 1 (goal: at most 10%). Also printed: single-process
decode+preprocess rate (how many workers a GPU needs) and, on CUDA, bare fp16 `encode_image`
images/s (goal: at least 2,500/s for ViT-B/32). Random weights: throughput does not depend on
them. CPU default is a modest pair count (ViT-B/32 does tens of pairs/s on a few cores).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from laion_assets.pipeline.scoring.clip import (  # noqa: E402
    ClipModelSpec,
    ClipScorer,
    decode_image,
    load_clip,
)

WORDS = ["red", "blue", "small", "large", "old", "new", "wooden", "metal", "photo", "of", "a",
         "the", "dog", "cat", "house", "car", "tree", "river", "city", "street", "mountain",
         "beach", "garden", "kitchen", "table", "chair", "lamp", "window", "door", "sunset",
         "morning", "winter", "summer", "vintage", "modern"]


def make_items(count: int, size: int = 256, seed: int = 0) -> list[tuple[int, bytes, str]]:
    """Synthetic JPEGs with distinct captions of 5-14 words."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    items = []
    for i in range(count):
        a, b, c = rng.uniform(0.2, 2.0, 3)
        base = np.stack([x * a, y * b, (x + y) * c / 2], axis=-1) + rng.uniform(0, 255, 3)
        pixels = np.clip(base % 256 + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=90)
        words = rng.choice(WORDS, size=int(rng.integers(5, 15)))
        items.append((i, out.getvalue(), f"{' '.join(words)} #{i}"))
    return items


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(scorer: ClipScorer):
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(scorer.identity.precision)
    return nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype)


def time_scorer(scorer: ClipScorer, items: list) -> float:
    start = time.perf_counter()
    count = sum(len(batch) for batch in scorer.score(items))
    elapsed = time.perf_counter() - start
    assert count == len(items) and scorer.failed == 0
    return elapsed


def time_baseline(scorer: ClipScorer, images: torch.Tensor, tokens: torch.Tensor,
                  batch_size: int) -> float:
    model, device = scorer.model, scorer.device
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode(), _autocast(scorer):
        for i in range(0, len(images), batch_size):
            model.encode_image(images[i:i + batch_size].to(device, non_blocking=True))
            model.encode_text(tokens[i:i + batch_size].to(device, non_blocking=True))
    _sync(device)
    return time.perf_counter() - start


def time_image_only(scorer: ClipScorer, batch_size: int, batches: int) -> float:
    """Images/s of bare encode_image on one resident batch (the GPU's ceiling)."""
    images = torch.randn(batch_size, 3, 224, 224, device=scorer.device)
    with torch.inference_mode(), _autocast(scorer):
        scorer.model.encode_image(images)
        _sync(scorer.device)
        start = time.perf_counter()
        for _ in range(batches):
            scorer.model.encode_image(images)
        _sync(scorer.device)
    return batch_size * batches / (time.perf_counter() - start)


def prepare(scorer: ClipScorer, items: list) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Decoded, preprocessed images and tokens for the baseline; also decode images/s.

    Decoding runs with one torch thread, as in a DataLoader worker.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    images = torch.stack([decode_image(data, scorer.preprocess) for _, data, _ in items])
    decode_rate = len(items) / (time.perf_counter() - start)
    torch.set_num_threads(threads)
    tokens = scorer.tokenizer([text for _, _, text in items])
    if scorer.device.type == "cuda":
        images, tokens = images.pin_memory(), tokens.pin_memory()
    return images, tokens, decode_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pairs", type=int, default=None,
                        help="default: 4096 on CUDA, 256 on CPU")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    spec = ClipModelSpec(model=args.model, pretrained=None, device=args.device,
                         precision=args.precision,
                         batch_size=args.batch_size, num_workers=args.num_workers)
    scorer = load_clip(spec)
    on_cuda = scorer.device.type == "cuda"
    pairs = args.pairs or (4096 if on_cuda else 256)
    items = make_items(pairs)
    images, tokens, decode_rate = prepare(scorer, items)
    name = torch.cuda.get_device_name(scorer.device) if on_cuda else "cpu"
    print(f"model {args.model}  device {name}  precision {scorer.identity.precision}  "
          f"pairs {pairs}  batch {args.batch_size}  workers {args.num_workers}  "
          f"torch threads {torch.get_num_threads()}")
    print(f"jpeg {np.mean([len(d) for _, d, _ in items]) / 1024:.1f} KiB avg; "
          f"decode+preprocess in one process: {decode_rate:,.0f} images/s")

    time_scorer(scorer, items[:args.batch_size])  # warm-up (kernels, allocator)
    time_baseline(scorer, images[:args.batch_size], tokens[:args.batch_size], args.batch_size)
    scorer.failed = 0
    ours, base = [], []
    for _ in range(args.repeats):
        base.append(time_baseline(scorer, images, tokens, args.batch_size))
        ours.append(time_scorer(scorer, items))
    ours_s, base_s = min(ours), min(base)
    print(f"{'contender':<46}{'seconds':>9}{'pairs/s':>10}")
    print(f"{'baseline: bare encode_image+encode_text':<46}{base_s:>9.2f}{pairs / base_s:>10.1f}")
    print(f"{'ClipScorer.score (jpeg bytes -> similarity)':<46}{ours_s:>9.2f}"
          f"{pairs / ours_s:>10.1f}")
    print(f"overhead {100 * (ours_s / base_s - 1):+.1f}% (goal <= 10%); "
          f"runs: scorer {', '.join(f'{t:.2f}' for t in ours)} s, "
          f"baseline {', '.join(f'{t:.2f}' for t in base)} s")
    if on_cuda:
        fp16 = scorer if scorer.identity.precision == "fp16" else load_clip(
            ClipModelSpec(model=args.model, pretrained=None, device=str(scorer.device),
                          precision="fp16"))
        for batch in (args.batch_size, 256):
            rate = time_image_only(fp16, batch, batches=max(4, 8192 // batch))
            print(f"{args.model} fp16 encode_image, batch {batch}: {rate:,.0f} images/s "
                  f"(goal >= 2,500/s)")


if __name__ == "__main__":
    main()
