"""The safety rules' cost per candidate pair (the capacity plan's figure for the safety stage).

Synthetic candidates (realistic captions and URLs, half with a fetched image), a 1,000,000-
entry md5 list and a 100,000-entry PDQ list, zero-shot scores precomputed (they are one
matrix product over embeddings CLIP already made). Prints candidates/s on one core for
`rules.evaluate` with every rule on, against a baseline that only looks rows up in the hash
lists (the floor any safety stage has to pay).

    .venv/bin/python benchmarks/bench_safety.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from laion_assets.pipeline.safety.hashlists import load_exact, load_pdq  # noqa: E402
from laion_assets.pipeline.safety.lists import SafetyLists  # noqa: E402
from laion_assets.pipeline.safety.policy import SafetyPolicy  # noqa: E402
from laion_assets.pipeline.safety.rules import (  # noqa: E402
    Candidates,
    ModelScores,
    RuleContext,
    evaluate,
)

WORDS = ("photo", "of", "a", "red", "bicycle", "in", "the", "city", "harbour", "at", "sunset",
         "with", "old", "boats", "lighthouse", "mountain", "lake", "forest", "cabin", "snow",
         "street", "market", "spices", "portrait", "garden")


def candidates(n: int, rng: random.Random) -> Candidates:
    hexes = [f"{rng.getrandbits(128):032x}" for _ in range(n)]
    ok = [rng.random() < 0.5 for _ in range(n)]
    return Candidates(
        pair_id=np.arange(n, dtype=np.int64),
        url=[f"http://img{rng.randrange(50_000)}.example.com/p/{i}.jpg" for i in range(n)],
        text=[" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for _ in range(n)],
        language=["en"] * n,
        fetch_status=["ok" if o else "failed" for o in ok],
        fetch_reason=[None if o else "http_404" for o in ok], fetch_detail=[None] * n,
        width=np.full(n, 640), height=np.full(n, 480), bytes=np.full(n, 40_000),
        sha256=[h * 2 if o else None for h, o in zip(hexes, ok, strict=True)],
        md5=[h if o else None for h, o in zip(hexes, ok, strict=True)],
        sha1=[h + "0" * 8 if o else None for h, o in zip(hexes, ok, strict=True)],
        pdq=[f"{rng.getrandbits(256):064x}" if o else None for o in ok],
        pdq_quality=np.full(n, 90),
        similarity=np.array([rng.random() * 0.4 if o else np.nan for o in ok], np.float32))


def scores(c: Candidates, rng: np.random.Generator) -> ModelScores:
    n = len(c)
    punsafe = np.where(c.scored, rng.random(n, dtype=np.float32) * 0.5, np.nan)
    return ModelScores(punsafe.astype(np.float32), ["zero-shot"] * n, np.zeros(n, bool),
                       [None] * n, (punsafe * 1.2).astype(np.float32), ["zero-shot"] * n)


def lists(rng: random.Random) -> SafetyLists:
    md5 = "\n".join(f"{rng.getrandbits(128):032x}" for _ in range(1_000_000)).encode()
    pdq = "\n".join(f"{rng.getrandbits(256):064x}" for _ in range(100_000)).encode()
    return SafetyLists(exact={"md5": [("md5.txt", load_exact("md5", [("md5.txt", md5)]))],
                              "sha1": [], "sha256": []},
                       pdq=[("pdq.txt", load_pdq([("pdq.txt", pdq)]))],
                       optout_domains=[("domains.txt", frozenset({"example.org"}))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    rng = random.Random(0)
    c = candidates(args.rows, rng)
    listed = lists(rng)
    model = scores(c, np.random.default_rng(0))
    context = RuleContext(c, SafetyPolicy(), listed, [], model)
    cpu = time.process_time()
    decisions = evaluate(context)
    full = time.process_time() - cpu
    cpu = time.process_time()
    exact = listed.exact["md5"][0][1].matches(c.md5)
    pdq = listed.pdq[0][1].query_many(c.pdq, qualities=c.pdq_quality)
    floor = time.process_time() - cpu
    print(f"candidates: {len(c):,} (half fetched); md5 list 1,000,000; PDQ list 100,000")
    print(f"{'':34}{'CPU s':>8}{'candidates/s':>14}")
    print(f"{'every rule (rules.evaluate)':34}{full:8.2f}{len(c) / full:14,.0f}")
    print(f"{'baseline: hash lookups only':34}{floor:8.2f}{len(c) / floor:14,.0f}")
    print(f"every rule costs {full / floor:.1f}x the hash lookups; passed "
          f"{int(decisions.passed.sum()):,}; checks {int(exact.sum()) + int((pdq[0] >= 0).sum())}")


if __name__ == "__main__":
    main()
