"""Deployment settings from the environment, with defaults under the working directory.

| variable                    | default            | what                                      |
|-----------------------------|--------------------|-------------------------------------------|
| LAION_ASSETS_VAR            | ./var              | base folder for the defaults below        |
| LAION_ASSETS_STORE          | $VAR/store         | dataset store root (folder or s3://...)   |
| LAION_ASSETS_DROPS          | $VAR/drops         | where the sensor looks for crawl drops    |
| LAION_ASSETS_SHARD_SIZE     | 1                  | WARC files per shard (~64 for Common Crawl) |
| LAION_ASSETS_LISTING_BASE   | the drop's folder  | base for listing paths (s3://commoncrawl/) |
| LAION_ASSETS_S3_ENDPOINT    | (AWS)              | endpoint of an S3-compatible server       |
| LAION_ASSETS_FETCH_SOURCES  | replay,live        | image sources, in order                   |
| LAION_ASSETS_ALLOWED_NETWORKS | (none)           | CIDRs the fetcher may reach (private ones) |
| LAION_ASSETS_CLIP_MODEL     | ViT-B-32           | open_clip model name                      |
| LAION_ASSETS_CLIP_PRETRAINED | laion2b_s34b_b79k | open_clip tag, file, s3:// URI, or `none` |
| LAION_ASSETS_CLIP_DEVICE    | auto               | auto (CUDA if present), cuda, cpu         |
| LAION_ASSETS_CLIP_BATCH_SIZE | 256               | pairs per batch                           |
| LAION_ASSETS_SIMILARITY     | threshold          | threshold (per language), top_fraction, off |
| LAION_ASSETS_NSFW_HEAD      | (zero-shot)        | LAION NSFW MLP weights (path or s3:// URI) |
| LAION_ASSETS_WATERMARK_MODEL | (zero-shot)       | LAION watermark model weights             |
| LAION_ASSETS_PERSONAL_DATA  | drop               | e-mails/phones in captions: drop, redact, off |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    store: str
    drops: str
    shard_size: int
    listing_base: str | None
    s3_endpoint: str | None
    fetch_sources: tuple[str, ...] = ("replay", "live")
    allowed_networks: tuple[str, ...] = ()
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = "laion2b_s34b_b79k"
    clip_device: str = "auto"
    clip_batch_size: int = 256
    similarity_mode: str = "threshold"
    nsfw_head: str | None = None
    watermark_model: str | None = None
    personal_data: str = "drop"


def from_environment() -> Settings:
    var = Path(os.environ.get("LAION_ASSETS_VAR", "var")).absolute()
    return Settings(
        store=os.environ.get("LAION_ASSETS_STORE", str(var / "store")),
        drops=os.environ.get("LAION_ASSETS_DROPS", str(var / "drops")),
        shard_size=int(os.environ.get("LAION_ASSETS_SHARD_SIZE", "1")),
        listing_base=os.environ.get("LAION_ASSETS_LISTING_BASE") or None,
        s3_endpoint=os.environ.get("LAION_ASSETS_S3_ENDPOINT") or None,
        fetch_sources=_words(os.environ.get("LAION_ASSETS_FETCH_SOURCES", "replay,live")),
        allowed_networks=_words(os.environ.get("LAION_ASSETS_ALLOWED_NETWORKS", "")),
        clip_model=os.environ.get("LAION_ASSETS_CLIP_MODEL", "ViT-B-32"),
        clip_pretrained=_none(os.environ.get("LAION_ASSETS_CLIP_PRETRAINED",
                                             "laion2b_s34b_b79k")),
        clip_device=os.environ.get("LAION_ASSETS_CLIP_DEVICE", "auto"),
        clip_batch_size=int(os.environ.get("LAION_ASSETS_CLIP_BATCH_SIZE", "256")),
        similarity_mode=os.environ.get("LAION_ASSETS_SIMILARITY", "threshold"),
        nsfw_head=os.environ.get("LAION_ASSETS_NSFW_HEAD") or None,
        watermark_model=os.environ.get("LAION_ASSETS_WATERMARK_MODEL") or None,
        personal_data=os.environ.get("LAION_ASSETS_PERSONAL_DATA", "drop"),
    )


def _words(value: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in value.split(",") if w.strip())


def _none(value: str) -> str | None:
    return None if value.strip().lower() in ("", "none") else value


def storage_options(s3_endpoint: str | None) -> dict:
    """fsspec options: an S3 endpoint if one is set; credentials come from the environment."""
    return {"client_kwargs": {"endpoint_url": s3_endpoint}} if s3_endpoint else {}
