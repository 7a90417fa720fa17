#!/usr/bin/env python3
"""Synthetic captions throughput: captions/s of an open_clip CoCa model, beam search vs top-p.

    .venv/bin/python benchmarks/bench_captions.py [--model coca_ViT-B-32] [--images 8]
        [--candidates 5] [--max-tokens 30] [--batch-size 8] [--device auto] [--repeats 2]

Random weights (`pretrained` none): generation time does not depend on the weights' values
except through when an end-of-text token stops a sequence; untrained, that token is as rare
as any other, so sequences run to `--max-tokens` (a real model's worst case; LAION-COCO's
captions are shorter). Per method, the best of `--repeats`:

1. generation: `Captioner.candidates` on preprocessed images (top-p: each image repeated
   `--candidates` times; beam search: one caption per image, `--candidates` kept beams);
2. ranking: `rank_captions` with the same model's CLIP towers (text encode of the candidates
   plus image encode), the rest of the stage's per-image work.

Prints images/s and captions/s (candidates generated per second) per method, and the
CPU-hours (or GPU-hours) one Common Crawl's worth of fetched images would take at that rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from laion_assets.pipeline.captions.generate import (  # noqa: E402
    CaptionConfig,
    load_captioner,
    rank_captions,
)

# the README's capacity plan: images fetched and verified from one crawl (~90,000 WARC files)
CRAWL_IMAGES = 5e9


def main() -> None:
    args = _arguments()
    torch.manual_seed(0)
    images = torch.rand(args.images, 3, 224, 224)
    print(f"{args.model}, {args.images} images, {args.candidates} candidates, "
          f"{args.max_tokens} tokens, batch {args.batch_size}, device {args.device}")
    for method in ("top_p", "beam_search"):
        config = CaptionConfig(model=args.model, pretrained=None, generation=method,
                               candidates=args.candidates, keep=min(3, args.candidates),
                               max_tokens=args.max_tokens, num_beams=max(args.candidates, 3))
        captioner = load_captioner(config, device=args.device)
        inputs = images.to(captioner.coca.device)
        best = min(_timed(captioner, inputs, args.batch_size) for _ in range(args.repeats))
        per_image = 1 if method == "beam_search" else args.candidates
        rate = args.images / best
        print(f"{method:>12}: {rate:8.2f} images/s  {rate * per_image:8.2f} captions/s  "
              f"one crawl ({CRAWL_IMAGES:.1e} images): {CRAWL_IMAGES / rate / 3600:,.0f} "
              f"{'GPU' if inputs.is_cuda else 'CPU'}-hours")


def _timed(captioner, images: torch.Tensor, batch_size: int) -> float:
    start = time.perf_counter()
    for number, first in enumerate(range(0, len(images), batch_size)):
        batch = images[first:first + batch_size]
        candidates = captioner.candidates(batch, number)
        rank_captions(captioner.coca, captioner.coca.encode_images(batch), candidates,
                      captioner.config.keep)
    return time.perf_counter() - start


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="coca_ViT-B-32")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2)
    return parser.parse_args()


if __name__ == "__main__":
    main()
