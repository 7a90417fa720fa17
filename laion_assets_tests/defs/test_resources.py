"""One source for every setting: the resources' defaults are the library's, the deployment's
settings only override, and the offline profile is named once."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from laion_assets.definitions import build_definitions
from laion_assets.defs.assets.extracted_pairs import ExtractPairsConfig
from laion_assets.defs.library_fields import library_default, library_sources
from laion_assets.defs.resources import (
    CaptionModelResource,
    ClipModelResource,
    CrawlDropsResource,
    DatasetStoreResource,
    ImageFetcherResource,
    SafetyPolicyResource,
)
from laion_assets.pipeline.captions.generate import CaptionConfig
from laion_assets.pipeline.download.stage import DownloadConfig
from laion_assets.pipeline.extract.stage import ExtractConfig
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.scoring.clip import ClipModelSpec
from laion_assets.settings import OFFLINE, PREFIX, Settings

REPO = Path(__file__).resolve().parents[2]
# ... and the extraction run config, a Dagster `Config` built the same way
LIBRARY_BACKED = [ImageFetcherResource, ClipModelResource, SafetyPolicyResource,
                  CaptionModelResource, ExtractPairsConfig]
# Fields with no library config behind them: where the data is, how drops become shards.
RESOURCE_ONLY = {
    DatasetStoreResource: {"root", "s3_endpoint", "gc_grace_seconds", "explorer_url"},
    CrawlDropsResource: {"location", "shard_size", "listing_base", "s3_endpoint"},
}


def _library_class(source: str) -> tuple[type, str]:
    module_name, class_name, field = source.rsplit(".", 2)
    module = __import__(module_name, fromlist=[class_name])
    return getattr(module, class_name), field


def _as_library(value):
    """A resource value in the library's shape: lists as tuples, concept configs as pairs."""
    if hasattr(value, "prompt"):
        return (value.prompt, value.threshold)
    if isinstance(value, list | tuple):
        return tuple(_as_library(v) for v in value)
    return value


@pytest.mark.parametrize("resource", LIBRARY_BACKED, ids=lambda r: r.__name__)
def test_every_resource_default_is_the_library_default(resource):
    sources = library_sources(resource)
    assert sources.keys() == resource.model_fields.keys(), "fields with no library default"
    for name, source in sources.items():
        config, field = _library_class(source)
        default = resource.model_fields[name].get_default(call_default_factory=True)
        assert _as_library(default) == _as_library(library_default(config, field)), name


@pytest.mark.parametrize("resource", RESOURCE_ONLY, ids=lambda r: r.__name__)
def test_resource_only_fields_are_the_listed_ones(resource):
    assert set(resource.model_fields) <= RESOURCE_ONLY[resource]
    assert library_sources(resource) == {}


def test_default_resources_build_the_library_defaults():
    assert ImageFetcherResource().download_config() == DownloadConfig()
    assert ClipModelResource().spec() == ClipModelSpec()
    assert SafetyPolicyResource().policy() == SafetyPolicy()
    assert CaptionModelResource().config() == CaptionConfig()
    assert ExtractConfig(**ExtractPairsConfig().model_dump()) == ExtractConfig()


def test_a_set_field_reaches_its_library_field():
    config = ImageFetcherResource(min_image_bytes=7, max_concurrency=3,
                                  sources=["replay"]).download_config()
    assert (config.policy.min_bytes, config.live.max_concurrency, config.sources) == (
        7, 3, ("replay",))
    policy = SafetyPolicyResource(punsafe_threshold=0.1, watermark_enabled=False,
                                  nsfw_keywords=["x"], pdq_max_distance=3).policy()
    assert (policy.nsfw.threshold, policy.watermark.enabled, policy.nsfw.keywords,
            policy.pdq_max_distance) == (0.1, False, ("x",), 3)
    assert ClipModelResource(pretrained=None, num_workers=0).spec().pretrained is None


def _resources(settings: Settings) -> dict:
    return build_definitions(settings).resources


def test_unset_settings_keep_the_library_defaults(tmp_path):
    resources = _resources(Settings(profile="production", store=str(tmp_path / "s"),
                                    drops=str(tmp_path / "d")))
    assert resources["image_fetcher"] == ImageFetcherResource()
    assert resources["clip_model"] == ClipModelResource()
    assert resources["safety_policy"] == SafetyPolicyResource()
    assert resources["crawl_drops"].shard_size == CrawlDropsResource(location="x").shard_size


def test_the_offline_profile(tmp_path):
    resources = _resources(Settings(profile=OFFLINE, store=str(tmp_path / "s"),
                                    drops=str(tmp_path / "d")))
    spec = resources["clip_model"].spec()
    assert (spec.pretrained, spec.batch_size, spec.model) == (None, 32, ClipModelSpec().model)
    assert resources["image_fetcher"].download_config().sources == ("replay",)
    assert resources["safety_policy"].policy().quality.similarity_mode == "top_fraction"
    assert resources["safety_policy"].policy().nsfw == SafetyPolicy().nsfw


def test_the_environment_sets_and_overrides_the_profile(monkeypatch, tmp_path):
    monkeypatch.setenv(f"{PREFIX}PROFILE", OFFLINE)
    monkeypatch.setenv(f"{PREFIX}VAR", str(tmp_path))
    monkeypatch.setenv(f"{PREFIX}SIMILARITY", "off")
    monkeypatch.setenv(f"{PREFIX}FETCH_SOURCES", "replay, live")
    monkeypatch.setenv(f"{PREFIX}ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv(f"{PREFIX}SHARD_SIZE", "64")
    monkeypatch.setenv(f"{PREFIX}CLIP_DEVICE", "")  # empty: unset
    settings = Settings()
    assert (settings.store, settings.drops) == (str(tmp_path / "store"), str(tmp_path / "drops"))
    resources = _resources(settings)
    assert resources["safety_policy"].similarity_mode == "off"
    fetch = resources["image_fetcher"].download_config()
    assert (fetch.sources, fetch.live.allowed_networks) == (("replay", "live"), ("127.0.0.0/8",))
    assert resources["crawl_drops"].shard_size == 64
    assert resources["clip_model"].spec().device == ClipModelSpec().device
    assert resources["clip_model"].spec().pretrained is None  # from the profile
    monkeypatch.setenv(f"{PREFIX}CLIP_PRETRAINED", "laion2b_s34b_b79k")
    assert _resources(Settings())["clip_model"].pretrained == "laion2b_s34b_b79k"


def test_an_unknown_profile_is_named(monkeypatch):
    monkeypatch.setenv(f"{PREFIX}PROFILE", "offfline")
    with pytest.raises(ValidationError, match="LAION_ASSETS_PROFILE='offfline'"):
        Settings()


def test_production_env_repeats_no_default(tmp_path):
    """Every variable in infra/production.env changes what the resources get."""
    lines = (REPO / "infra" / "production.env").read_text().splitlines()
    variables = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert set(variables) <= set(Settings.variables())
    base = {"profile": "production", "store": str(tmp_path / "s"), "drops": str(tmp_path / "d")}
    default = _resources(Settings(**base))
    for variable, value in variables.items():
        name = variable.removeprefix(PREFIX).lower()
        if name == "profile":  # the Makefile's default is offline: production says so
            assert value == "production"
            continue
        changed = _resources(Settings(**{**base, name: value}))
        assert changed != default, f"{variable}={value} is the default"


def test_the_explorer_url_reaches_the_store_resource(monkeypatch, tmp_path):
    monkeypatch.setenv(f"{PREFIX}VAR", str(tmp_path))
    store = build_definitions(Settings()).resources["dataset_store"]
    assert store.explorer_url == "http://127.0.0.1:8765"
    assert store.explorer_link("/audit", shard="a/b").url == \
        "http://127.0.0.1:8765/audit?shard=a%2Fb"
    monkeypatch.setenv(f"{PREFIX}EXPLORER_URL", "https://audit.example.org/explore/")
    store = build_definitions(Settings()).resources["dataset_store"]
    assert store.explorer_link("/", release="x@v2").url == \
        "https://audit.example.org/explore/?release=x%40v2"
