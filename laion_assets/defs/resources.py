"""Resources: the dataset store, crawl drops, the image fetcher, CLIP, the safety policy."""


import os
from functools import cache

from dagster import Config, ConfigurableResource, InitResourceContext
from pydantic import Field

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.download.images import ImagePolicy
from laion_assets.pipeline.download.live import DEFAULT_USER_AGENT, LiveFetchConfig
from laion_assets.pipeline.download.stage import DownloadConfig
from laion_assets.pipeline.safety import concepts as default_concepts
from laion_assets.pipeline.safety import text_rules
from laion_assets.pipeline.safety.concepts import Concept
from laion_assets.pipeline.safety.nsfw_head import NsfwHead
from laion_assets.pipeline.safety.policy import (
    NsfwRules,
    QualityRules,
    SafetyPolicy,
    WatermarkRules,
)
from laion_assets.pipeline.safety.watermark import WatermarkModel
from laion_assets.pipeline.safety.weights import load_model_file
from laion_assets.pipeline.scoring.clip import ClipModelSpec, ClipScorer, load_clip, resolve_device
from laion_assets.pipeline.shards.drops import CrawlDrop, list_drops
from laion_assets.settings import storage_options


class DatasetStoreResource(ConfigurableResource):
    """Where every stage writes: a local folder, or `s3://bucket/prefix` through s3fs."""

    root: str = Field(description="fsspec root: a local folder or s3://bucket/prefix")
    s3_endpoint: str | None = Field(
        default=None, description="endpoint of an S3-compatible server; None for AWS"
    )

    def store(self) -> DatasetStore:
        return DatasetStore(self.root, storage_options(self.s3_endpoint))


class CrawlDropsResource(ConfigurableResource):
    """The location the crawl-drop sensor watches, and how drops become shards."""

    location: str = Field(description="folder or s3:// prefix holding one folder per drop")
    shard_size: int = Field(default=1, description="consecutive WARC files per shard")
    listing_base: str | None = Field(
        default=None,
        description="base for relative paths in warc.paths(.gz); None: the drop's own folder "
        "(use s3://commoncrawl/ for Common Crawl's own listings)",
    )
    s3_endpoint: str | None = Field(default=None, description="S3-compatible endpoint")

    @property
    def storage_options(self) -> dict:
        return storage_options(self.s3_endpoint)

    def drops(self) -> list[CrawlDrop]:
        return list_drops(self.location, self.storage_options)


class ImageFetcherResource(ConfigurableResource):
    """How images are fetched: sources in order, crawler manners, address and image safety."""

    sources: list[str] = Field(default=["replay", "live"],
                               description="tried in order: replay (WARC captures), live")
    user_agent: str = Field(default=DEFAULT_USER_AGENT,
                            description="identifying User-Agent with a contact URL")
    max_concurrency: int = Field(default=64, description="requests in flight overall")
    per_host_concurrency: int = Field(default=4, description="requests in flight per host")
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 30.0
    max_bytes: int = Field(default=16 << 20, description="byte cap, enforced while streaming")
    max_redirects: int = 5
    respect_x_robots_tag: bool = Field(default=True,
                                       description="honour noai, noimageai, noindex, ...")
    retries: int = 2
    allowed_networks: list[str] = Field(
        default=[], description="CIDRs exempt from the private-address refusal (none by default)")
    min_image_bytes: int = Field(default=5_000, description="LAION: images under 5 KB dropped")
    max_pixels: int = Field(default=50_000_000, description="decompression-bomb limit")
    resize: int = Field(default=256, description="side of the resized image for scoring")
    resize_mode: str = Field(default="center_crop", description="img2dataset's resize modes")
    images_per_tar: int = 10_000

    def download_config(self) -> DownloadConfig:
        live = LiveFetchConfig(
            user_agent=self.user_agent, max_concurrency=self.max_concurrency,
            per_host_concurrency=self.per_host_concurrency,
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            total_timeout=self.total_timeout, max_bytes=self.max_bytes,
            max_redirects=self.max_redirects, respect_x_robots_tag=self.respect_x_robots_tag,
            retries=self.retries, allowed_networks=tuple(self.allowed_networks),
        )
        policy = ImagePolicy(min_bytes=self.min_image_bytes, max_pixels=self.max_pixels,
                             resize=self.resize, resize_mode=self.resize_mode)
        return DownloadConfig(sources=tuple(self.sources), policy=policy, live=live,
                              images_per_tar=self.images_per_tar)


class ClipModelResource(ConfigurableResource):
    """The CLIP model (the GPU resource), loaded once per process."""

    model: str = Field(default="ViT-B-32", description="open_clip model name")
    pretrained: str | None = Field(
        default="laion2b_s34b_b79k",
        description="open_clip tag, local file, s3:// URI, or None for seeded random weights")
    device: str = Field(default="auto", description="auto: CUDA if available, else CPU")
    precision: str = Field(default="auto", description="auto: fp16 on CUDA, fp32 on CPU")
    batch_size: int = 256
    num_workers: int = Field(
        default=-1, description="image decoding workers; -1: 1 on CPU, up to 12 on CUDA "
        "(one worker prepares ~300 images/s, a GPU scores thousands)")
    seed: int = Field(default=0, description="seed of the random weights when untrained")
    cache_dir: str | None = None

    def spec(self) -> ClipModelSpec:
        return ClipModelSpec(model=self.model, pretrained=self.pretrained, device=self.device,
                             precision=self.precision, batch_size=self.batch_size,
                             seed=self.seed, num_workers=self._workers(),
                             cache_dir=self.cache_dir)

    def _workers(self) -> int:
        if self.num_workers >= 0:
            return self.num_workers
        return min(os.cpu_count() or 1, 12) if resolve_device(self.device) == "cuda" else 1

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self.scorer()  # load (once per process) before the step starts

    def scorer(self) -> ClipScorer:
        return _load_once(self.spec())


@cache
def _load_once(spec: ClipModelSpec) -> ClipScorer:
    return load_clip(spec)


class ConceptConfig(Config):
    """A zero-shot concept: a CLIP prompt and the cosine at which it fires."""

    prompt: str
    threshold: float


def _concepts(defaults: tuple[Concept, ...]) -> list[ConceptConfig]:
    return [ConceptConfig(prompt=c.prompt, threshold=c.threshold) for c in defaults]


class SafetyPolicyResource(ConfigurableResource):
    """Every safety rule's switches and thresholds, and the safety models' weights files.

    Hash lists, URL lists and the takedown ledger have no switch: a match never passes.
    """

    similarity_mode: str = Field(default="threshold",
                                 description="threshold (per language), top_fraction, or off")
    similarity_thresholds: dict[str, float] = Field(
        default={"en": 0.28}, description="CLIP cosine per language (LAION: 0.28 English)")
    default_similarity_threshold: float = Field(
        default=0.26, description="for languages not listed (LAION multilingual: 0.26)")
    top_fraction: float = Field(default=0.3, description="DataComp: keep the top 30% (per shard)")
    min_side: int = Field(default=0, description="minimum shorter side of the image, pixels")
    min_bytes: int = Field(default=5_000, description="minimum image bytes (LAION: 5 KB)")
    max_aspect_ratio: float = Field(default=3.0, description="longer side / shorter side")
    min_text_chars: int = Field(default=5, description="LAION: alt text of 5+ characters")
    max_text_chars: int = 1_000
    nsfw_head: str | None = Field(
        default=None, description="torch weights of LAION's NSFW MLP head (path or s3:// URI); "
        "None: zero-shot concepts")
    punsafe_threshold: float = Field(default=0.45, description="Re-LAION research-safe: 0.45")
    nsfw_concepts: list[ConceptConfig] = Field(
        default_factory=lambda: _concepts(default_concepts.DEFAULT_NSFW_CONCEPTS))
    minor_concepts: list[ConceptConfig] = Field(
        default_factory=lambda: _concepts(default_concepts.DEFAULT_MINOR_CONCEPTS),
        description="with any NSFW signal, always excludes")
    nsfw_keywords: list[str] = Field(default=list(text_rules.DEFAULT_NSFW_KEYWORDS))
    minor_keywords: list[str] = Field(default=list(text_rules.DEFAULT_MINOR_KEYWORDS))
    use_nsfw_keywords: bool = True
    watermark_model: str | None = Field(
        default=None, description="torch weights of LAION's efficientnet_b3 watermark model; "
        "None: zero-shot concepts")
    watermark_threshold: float = Field(default=0.8, description="LAION suggests 0.8")
    watermark_concepts: list[ConceptConfig] = Field(
        default_factory=lambda: _concepts(default_concepts.DEFAULT_WATERMARK_CONCEPTS))
    watermark_enabled: bool = True
    personal_data: str = Field(default="drop", description="e-mail and phone numbers in "
                               "captions: drop, redact, or off")
    pdq_max_distance: int = Field(default=31, description="PDQ match: Hamming distance")
    pdq_min_quality: int = Field(default=50, description="PDQ match: minimum image quality")
    device: str = Field(default="cpu", description="where the NSFW head and watermark run")

    def policy(self) -> SafetyPolicy:
        quality = QualityRules(
            similarity_mode=self.similarity_mode,
            similarity_thresholds=dict(self.similarity_thresholds),
            default_similarity_threshold=self.default_similarity_threshold,
            top_fraction=self.top_fraction, min_side=self.min_side, min_bytes=self.min_bytes,
            max_aspect_ratio=self.max_aspect_ratio, min_text_chars=self.min_text_chars,
            max_text_chars=self.max_text_chars)
        nsfw = NsfwRules(
            head=self.nsfw_head, threshold=self.punsafe_threshold,
            concepts=_as_concepts(self.nsfw_concepts),
            minor_concepts=_as_concepts(self.minor_concepts),
            keywords=tuple(self.nsfw_keywords), minor_keywords=tuple(self.minor_keywords),
            use_keywords=self.use_nsfw_keywords)
        watermark = WatermarkRules(model=self.watermark_model,
                                   threshold=self.watermark_threshold,
                                   concepts=_as_concepts(self.watermark_concepts),
                                   enabled=self.watermark_enabled)
        return SafetyPolicy(quality=quality, nsfw=nsfw, watermark=watermark,
                            personal_data=self.personal_data,
                            pdq_max_distance=self.pdq_max_distance,
                            pdq_min_quality=self.pdq_min_quality, device=self.device)

    def nsfw_model(self, embed_dim: int) -> NsfwHead | None:
        if not self.nsfw_head:
            return None
        return _load_head(self.nsfw_head, embed_dim, self.device)

    def watermark_network(self) -> WatermarkModel | None:
        if not self.watermark_model or not self.watermark_enabled:
            return None
        return _load_watermark(self.watermark_model, self.device)


def _as_concepts(configs: list[ConceptConfig]) -> tuple[Concept, ...]:
    return tuple(Concept(c.prompt, c.threshold) for c in configs)


@cache
def _load_head(source: str, embed_dim: int, device: str) -> NsfwHead:
    return NsfwHead(load_model_file(source), embed_dim, device)


@cache
def _load_watermark(source: str, device: str) -> WatermarkModel:
    return WatermarkModel(load_model_file(source), device)
