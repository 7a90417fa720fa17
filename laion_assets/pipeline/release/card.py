"""The dataset card (`README.md`) written into every release version, from its manifest."""

from __future__ import annotations

import json
from typing import Any

from laion_assets.pipeline.core.manifests import FUNNEL, ReleaseManifest
from laion_assets.pipeline.release.subsets import describe_subset

STAGE_TEXT = {
    "html_pages": "HTML pages read from the WARC files",
    "candidates": "image/alt-text pairs extracted (normalised, deduplicated per shard)",
    "fetched": "unique image URLs fetched and verified by decoding",
    "scored": "pairs scored by CLIP",
    "safe": "pairs that passed every safety and quality rule",
    "released": "rows in this version (after cross-shard deduplication and publish-time checks)",
}


def dataset_card(manifest: ReleaseManifest | dict[str, Any]) -> str:
    """Markdown: what it is, how it was built, counts, filters, limitations, removal requests."""
    if isinstance(manifest, dict):
        manifest = ReleaseManifest.from_json(manifest)
    name, version = manifest.name, manifest.version
    return "\n".join([
        f"# {name} v{version}",
        "",
        f"An image-text dataset in LAION-5B's format, built by laion_assets from Common Crawl "
        f"style WARC captures. {manifest.rows:,} rows in {manifest.parts} parts; "
        f"published {manifest.created_at}"
        + (f", superseding v{manifest.parent}." if manifest.parent else "."),
        "",
        "## Files",
        "",
        "- `data/part-*.parquet`: `URL, TEXT, WIDTH, HEIGHT, similarity, punsafe, pwatermark, "
        "LANGUAGE, hash, AESTHETIC_SCORE` (hash: xxh64 of the URL and the caption; "
        "AESTHETIC_SCORE: LAION-Aesthetics, empty where no head fits the CLIP model)",
        "- `img_emb/`, `text_emb/`: float16 CLIP embeddings, row-aligned with the data parts",
        "- `provenance/part-*.parquet`: per row, the crawl, shard, WARC file, record offset and "
        "id, page URL, capture time, fetch source and time, image hashes, model and run ids",
        "- `removed.parquet`: rows of the previous version that this one does not hold, and why",
        "- `manifest.json`: every file with its sha256, the counts, configuration and sources",
        "",
        "## How it was built",
        "",
        *_counts(manifest.counts),
        "",
        "## Models",
        "",
        *[f"- CLIP `{m.get('model')}` weights `{m.get('pretrained')}` (sha256 "
          f"`{str(m.get('weights_sha256'))[:16]}`)" for m in manifest.models if m],
        "",
        "## Filters and thresholds",
        "",
        *_filters(manifest.policy_at_publish),
        "",
        "## Subset",
        "",
        describe_subset(manifest.config.get("subset")),
        *[f"- left out as outside the subset: {n:,} ({reason})"
          for reason, n in manifest.subset_excluded.items()],
        "",
        "## Changes",
        "",
        *[f"- {line}" for line in manifest.changelog],
        "",
        "## Known limitations",
        "",
        "- Captions are web alt texts: often short, sometimes wrong, in many languages.",
        "- `punsafe` and `pwatermark` are model estimates; some unsafe or watermarked images "
        "pass and some safe ones are dropped. Hash lists only catch known images.",
        "- URLs point at the live web: images change or disappear after publication.",
        "- Opt-outs and takedowns apply from the version after they were received.",
        "",
        "## Requesting removal",
        "",
        "Send the image URL, the page URL, a domain or an image hash (SHA-256, MD5 or PDQ) and "
        "the reason. Operators record it with `laion-assets takedown add --url URL --reason "
        "...` (or `--domain`, `--sha256`, `--md5`, `--pdq`); the next version leaves out every "
        "matching row and lists it in `removed.parquet`.",
        "",
    ])


def _counts(counts: dict) -> list[str]:
    return [f"- {STAGE_TEXT[k]}: {counts.get(k, 0):,}" for k in FUNNEL]


def _filters(policy: dict) -> list[str]:
    quality, nsfw, watermark = policy["quality"], policy["nsfw"], policy["watermark"]
    if quality["similarity_mode"] == "threshold":
        sim = (f"CLIP similarity ≥ {json.dumps(quality['similarity_thresholds'])} by language, "
               f"{quality['default_similarity_threshold']} otherwise")
    elif quality["similarity_mode"] == "top_fraction":
        sim = f"top {quality['top_fraction']:.0%} of each shard by CLIP similarity"
    else:
        sim = "no CLIP similarity filter"
    return [
        f"- {sim}",
        f"- images of at least {quality['min_bytes']} bytes and {quality['min_side']} px a "
        f"side, aspect ratio at most {quality['max_aspect_ratio']}:1; captions of "
        f"{quality['min_text_chars']}–{quality['max_text_chars']} characters",
        f"- `punsafe` < {nsfw['threshold']} ("
        + ("an NSFW head file" if nsfw["head"] else
           "LAION's NSFW detector where it fits the CLIP model, else zero-shot CLIP concepts"
           if nsfw.get("laion_head") else "zero-shot CLIP concepts")
        + "), NSFW keywords, and never a minor-related signal together with an NSFW one",
        f"- `pwatermark` < {watermark['threshold']}" if watermark["enabled"]
        else "- no watermark filter",
        f"- e-mail addresses and phone numbers in captions: {policy['personal_data']}",
        "- image hashes (MD5, SHA-1, SHA-256, PDQ within distance "
        f"{policy['pdq_max_distance']}), URL lists, opt-out lists and the takedown ledger",
    ]
