"""Deployment settings, read from the environment (`LAION_ASSETS_*`) in this one place.

A deployment decides where data lives (`VAR`, `STORE`, `DROPS`, `S3_ENDPOINT`) and may
override a few library settings (shard size, image sources, CLIP model, safety switches). An
override left unset keeps the library's default: the resources take their defaults from the
library's config types, so no default is repeated here. `LAION_ASSETS_PROFILE` names a set of
overrides at once; `offline` (the Makefile's, the demo's and the tests') is replay only, CLIP
with seeded random weights, top-fraction similarity (untrained cosines sit near 0, so LAION's
0.28 threshold would keep nothing) and batches of 32. A variable set explicitly wins over its
profile. Every field's description below says what its variable does (`Settings.variables()`
lists the names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PREFIX = "LAION_ASSETS_"
OFFLINE = "offline"
PROFILES: dict[str, dict[str, Any]] = {
    "production": {},
    OFFLINE: {"fetch_sources": ("replay",), "clip_pretrained": None, "clip_batch_size": 32,
              "similarity_mode": "top_fraction", "caption_model": "coca_ViT-B-32",
              "caption_pretrained": None},
}
# setting -> (resource key, resource field): passed to the resource only when set
RESOURCE_FIELDS: dict[str, tuple[str, str]] = {
    "explorer_url": ("dataset_store", "explorer_url"),
    "shard_size": ("crawl_drops", "shard_size"),
    "listing_base": ("crawl_drops", "listing_base"),
    "fetch_sources": ("image_fetcher", "sources"),
    "allowed_networks": ("image_fetcher", "allowed_networks"),
    "clip_model": ("clip_model", "model"),
    "clip_pretrained": ("clip_model", "pretrained"),
    "clip_device": ("clip_model", "device"),
    "clip_batch_size": ("clip_model", "batch_size"),
    "caption_model": ("caption_model", "model"),
    "caption_pretrained": ("caption_model", "pretrained"),
    "similarity_mode": ("safety_policy", "similarity_mode"),
    "nsfw_head": ("safety_policy", "nsfw_head"),
    "watermark_model": ("safety_policy", "watermark_model"),
    "personal_data": ("safety_policy", "personal_data"),
}
# None: untrained weights (elsewhere None means unset)
NONE_IS_A_VALUE = {"clip_pretrained", "caption_pretrained"}
Words = Annotated[tuple[str, ...] | None, NoDecode]


class Settings(BaseSettings):
    """The deployment's settings; unset overrides (None) keep the library's defaults."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, frozen=True,
                                      populate_by_name=True)

    profile: str = Field("production", description="production, or offline (see above)")
    var: Path = Field(Path("var"), description="base folder of the store and drops defaults; "
                      "unset: var/ of the checkout holding this package (else ./var), so "
                      "commands find the same store from any working directory")
    store: str = Field("", description="dataset store root, a folder or s3://bucket/prefix; "
                       "default $VAR/store")
    drops: str = Field("", description="where the sensor looks for crawl drops (folder or "
                       "s3:// prefix); default $VAR/drops")
    s3_endpoint: str | None = Field(None, description="S3-compatible endpoint; unset: AWS")
    explorer_url: str | None = Field(None, description="where `laion-assets explore` is "
                                     "served (metadata links); unset: http://127.0.0.1:8765")
    shard_size: int | None = Field(None, description="WARC files per shard (~64 for CC)")
    listing_base: str | None = Field(None, description="base of listing paths; unset: the "
                                     "drop's folder (s3://commoncrawl/ for Common Crawl)")
    fetch_sources: Words = Field(None, description="image sources in order: replay,live")
    allowed_networks: Words = Field(None, description="CIDRs the fetcher may reach although "
                                    "private (comma-separated)")
    clip_model: str | None = Field(None, description="open_clip model name")
    clip_pretrained: str | None = Field(None, description="open_clip tag, file, s3:// URI, or "
                                        "none (seeded random weights)")
    clip_device: str | None = Field(None, description="auto (CUDA if present), cuda, cpu")
    clip_batch_size: int | None = Field(None, description="pairs per CLIP batch")
    caption_model: str | None = Field(None, description="open_clip CoCa model of captions")
    caption_pretrained: str | None = Field(None, description="its tag, file, s3:// URI, or "
                                           "none (seeded random weights)")
    similarity_mode: str | None = Field(
        None, validation_alias=f"{PREFIX}SIMILARITY",
        description="LAION_ASSETS_SIMILARITY: threshold (per language), top_fraction, off")
    nsfw_head: str | None = Field(None, description="LAION NSFW MLP weights (path, s3://)")
    watermark_model: str | None = Field(None, description="LAION watermark model weights")
    personal_data: str | None = Field(None, description="e-mails/phones in captions: drop, "
                                      "redact, off")

    @model_validator(mode="before")
    @classmethod
    def _profile_and_paths(cls, data: Any) -> Any:
        """Fill unset overrides from the profile, and the store and drops from `var`."""
        data = dict(data)
        profile = data.get("profile") or "production"
        if profile not in PROFILES:
            raise ValueError(f"{PREFIX}PROFILE={profile!r}: expected one of {sorted(PROFILES)}")
        for name, value in PROFILES[profile].items():
            if name not in data and not (name == "similarity_mode"
                                         and f"{PREFIX}SIMILARITY" in data):
                data[name] = value
        var = Path(data.get("var") or default_var()).absolute()
        data["store"] = data.get("store") or str(var / "store")
        data["drops"] = data.get("drops") or str(var / "drops")
        return data

    @field_validator("fetch_sources", "allowed_networks", mode="before")
    @classmethod
    def _words(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(w.strip() for w in value.split(",") if w.strip())
        return value

    @field_validator("clip_pretrained", "caption_pretrained", mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() == "none" else value

    def resource_overrides(self) -> dict[str, dict[str, Any]]:
        """Per resource key, the fields this deployment sets (the rest keep their defaults)."""
        overrides: dict[str, dict[str, Any]] = {}
        for name in sorted(self.model_fields_set & RESOURCE_FIELDS.keys()):
            value = getattr(self, name)
            if value is None and name not in NONE_IS_A_VALUE:
                continue
            resource, field = RESOURCE_FIELDS[name]
            overrides.setdefault(resource, {})[field] = (
                list(value) if isinstance(value, tuple) else value)
        return overrides

    @classmethod
    def variables(cls) -> list[str]:
        """The environment variables these settings read."""
        return [f"{PREFIX}SIMILARITY" if name == "similarity_mode" else f"{PREFIX}{name.upper()}"
                for name in cls.model_fields]


def project_root() -> Path | None:
    """The checkout holding this package (its pyproject.toml beside it), or None when the
    package is installed elsewhere."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").exists() else None


def default_var() -> Path:
    """`var/` of the checkout, wherever the command runs from; ./var for an installed
    package."""
    root = project_root()
    return root / "var" if root else Path("var")


def from_environment() -> Settings:
    return Settings()


def storage_options(s3_endpoint: str | None) -> dict:
    """fsspec options: an S3 endpoint if one is set; credentials come from the environment."""
    return {"client_kwargs": {"endpoint_url": s3_endpoint}} if s3_endpoint else {}
