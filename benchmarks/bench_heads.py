#!/usr/bin/env python3
"""LAION's heads against CLIP scoring, in the same run: what punsafe, aesthetic and pviolence
add to the time it takes to score pairs.

    .venv/bin/python benchmarks/bench_heads.py [--pairs 96] [--batch-size 32] [--repeats 3]
        [--device cpu]

Scores `--pairs` synthetic 256x256 JPEG pairs with `ClipScorer.score` (open_clip ViT-B-32,
random weights: speed does not depend on them), then runs the heads that fit ViT-B-32 (NSFW
detector, aesthetic v1, violence prompts) on the embeddings it produced, `--repeats` times
alternating, best of each. Also times the ViT-L/14 heads (NSFW, aesthetic v2, violence) on
as many 768-d embeddings, against the same scoring time (ViT-L/14 scores ~10x slower than
ViT-B/32, so this overstates their share). Goal: heads at most 2% of scoring time.
Then times the heads on `--head-rows` embeddings at once, as the safety stage runs them on a
shard, for their per-pair cost when the fixed cost of a call is spread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_clip import make_items  # noqa: E402

from laion_assets.pipeline.scoring.clip import ClipModelSpec, load_clip  # noqa: E402
from laion_assets.pipeline.scoring.heads import ClipHeads  # noqa: E402


def time_scoring(scorer, items) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    embeddings = [batch.image_embeddings[batch.ok] for batch in scorer.score(items)]
    return time.perf_counter() - start, np.concatenate(embeddings)


def time_heads(heads: ClipHeads, embeddings: np.ndarray) -> float:
    start = time.perf_counter()
    scores = heads.score(embeddings)
    elapsed = time.perf_counter() - start
    assert all(len(v) == len(embeddings) for v in scores.values()) and len(scores) == 3
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--head-rows", type=int, default=16_384)
    args = parser.parse_args()
    scorer = load_clip(ClipModelSpec(model="ViT-B-32", pretrained=None, device=args.device,
                                     batch_size=args.batch_size))
    items = make_items(args.pairs)
    start = time.perf_counter()
    b32 = ClipHeads.for_model("ViT-B-32", 512, args.device)
    l14 = ClipHeads.for_model("ViT-L-14", 768, args.device)
    load = time.perf_counter() - start
    time_scoring(scorer, items[:args.batch_size])  # warm up workers and kernels
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((args.pairs, 768)).astype(np.float32)
    wide = (wide / np.linalg.norm(wide, axis=1, keepdims=True)).astype(np.float16)
    best = {"scoring": np.inf, "b32": np.inf, "l14": np.inf}
    for _ in range(args.repeats):
        scoring, embeddings = time_scoring(scorer, items)
        best["scoring"] = min(best["scoring"], scoring)
        best["b32"] = min(best["b32"], time_heads(b32, embeddings))
        best["l14"] = min(best["l14"], time_heads(l14, wide))
    n, scoring = args.pairs, best["scoring"]
    print(f"device {scorer.identity.device}, {n} pairs, batch {args.batch_size}, "
          f"best of {args.repeats}; head files loaded in {load * 1e3:.0f} ms (once per process)")
    print(f"CLIP ViT-B-32 scoring: {scoring:.2f} s ({n / scoring:.1f} pairs/s)")
    for name in ("b32", "l14"):
        print(f"{name} heads (nsfw + aesthetic + violence): {best[name] * 1e3:.2f} ms "
              f"({best[name] / n * 1e6:.1f} us/pair) = {best[name] / scoring:.3%} of scoring")
    for name, heads, dim in (("b32", b32, 512), ("l14", l14, 768)):
        many = rng.standard_normal((args.head_rows, dim)).astype(np.float32)
        many = (many / np.linalg.norm(many, axis=1, keepdims=True)).astype(np.float16)
        elapsed = min(time_heads(heads, many) for _ in range(args.repeats))
        per_pair = elapsed / args.head_rows
        print(f"{name} heads on {args.head_rows} embeddings: {elapsed * 1e3:.1f} ms "
              f"({per_pair * 1e6:.2f} us/pair) = {per_pair / (scoring / n):.3%} of scoring")


if __name__ == "__main__":
    main()
