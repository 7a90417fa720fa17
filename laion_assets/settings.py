"""Deployment settings from the environment, with defaults under the working directory.

| variable                    | default            | what                                      |
|-----------------------------|--------------------|-------------------------------------------|
| LAION_ASSETS_VAR            | ./var              | base folder for the defaults below        |
| LAION_ASSETS_STORE          | $VAR/store         | dataset store root (folder or s3://...)   |
| LAION_ASSETS_DROPS          | $VAR/drops         | where the sensor looks for crawl drops    |
| LAION_ASSETS_SHARD_SIZE     | 1                  | WARC files per shard (~64 for Common Crawl) |
| LAION_ASSETS_LISTING_BASE   | the drop's folder  | base for listing paths (s3://commoncrawl/) |
| LAION_ASSETS_S3_ENDPOINT    | (AWS)              | endpoint of an S3-compatible server       |
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


def from_environment() -> Settings:
    var = Path(os.environ.get("LAION_ASSETS_VAR", "var")).absolute()
    return Settings(
        store=os.environ.get("LAION_ASSETS_STORE", str(var / "store")),
        drops=os.environ.get("LAION_ASSETS_DROPS", str(var / "drops")),
        shard_size=int(os.environ.get("LAION_ASSETS_SHARD_SIZE", "1")),
        listing_base=os.environ.get("LAION_ASSETS_LISTING_BASE") or None,
        s3_endpoint=os.environ.get("LAION_ASSETS_S3_ENDPOINT") or None,
    )


def storage_options(s3_endpoint: str | None) -> dict:
    """fsspec options: an S3 endpoint if one is set; credentials come from the environment."""
    return {"client_kwargs": {"endpoint_url": s3_endpoint}} if s3_endpoint else {}
