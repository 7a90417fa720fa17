"""Resources: the dataset store, crawl drops, the image fetcher, CLIP, the safety policy."""

from functools import cache
from urllib.parse import urlencode

from dagster import Config, ConfigurableResource, InitResourceContext, MetadataValue
from pydantic import Field

from laion_assets.defs.library_fields import library_field, library_values
from laion_assets.explorer.cli import DEFAULT_PORT
from laion_assets.pipeline.captions.generate import CaptionConfig, Captioner, load_captioner
from laion_assets.pipeline.core.store import GC_GRACE_SECONDS, DatasetStore
from laion_assets.pipeline.download.images import ImagePolicy
from laion_assets.pipeline.download.live import LiveFetchConfig
from laion_assets.pipeline.download.stage import DownloadConfig
from laion_assets.pipeline.safety.concepts import Concept
from laion_assets.pipeline.safety.nsfw_head import NsfwHead
from laion_assets.pipeline.safety.policy import (
    AestheticRules,
    NsfwRules,
    QualityRules,
    SafetyPolicy,
    ViolenceRules,
    WatermarkRules,
)
from laion_assets.pipeline.safety.watermark import WatermarkModel
from laion_assets.pipeline.safety.weights import load_model_file
from laion_assets.pipeline.scoring.clip import ClipModelSpec, ClipScorer, load_clip
from laion_assets.pipeline.shards.drops import CrawlDrop, list_drops
from laion_assets.settings import storage_options

EXPLORER_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


class DatasetStoreResource(ConfigurableResource):
    """Where every stage writes: a local folder, or `s3://bucket/prefix` through s3fs."""

    root: str = Field(description="fsspec root: a local folder or s3://bucket/prefix")
    s3_endpoint: str | None = Field(
        default=None, description="endpoint of an S3-compatible server; None for AWS"
    )
    gc_grace_seconds: float = Field(
        default=GC_GRACE_SECONDS, description="a superseded stage attempt is removed only "
        "once it was not written to for this long (it may belong to a run still writing)"
    )

    explorer_url: str = Field(
        default=EXPLORER_URL, description="where `laion-assets explore` serves this store: "
        "the release and safety materializations link to it"
    )

    def store(self) -> DatasetStore:
        return DatasetStore(self.root, storage_options(self.s3_endpoint), self.gc_grace_seconds)

    def explorer_link(self, path: str, **query: str) -> MetadataValue:
        """A link to a page of the audit explorer (`/` search, `/audit` exclusions)."""
        url = self.explorer_url.rstrip("/") + path
        return MetadataValue.url(f"{url}?{urlencode(query)}" if query else url)


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
    """How images are fetched: sources in order, crawler manners, address and image safety.

    Every default is the library's (`DownloadConfig`, `LiveFetchConfig`, `ImagePolicy`)."""

    sources: list[str] = library_field(
        DownloadConfig, "sources", "tried in order: replay (WARC captures), live")
    user_agent: str = library_field(
        LiveFetchConfig, "user_agent", "identifying User-Agent with a contact URL")
    max_concurrency: int = library_field(
        LiveFetchConfig, "max_concurrency", "requests in flight overall")
    per_host_concurrency: int = library_field(
        LiveFetchConfig, "per_host_concurrency", "requests in flight per host")
    connect_timeout: float = library_field(LiveFetchConfig, "connect_timeout", "seconds")
    read_timeout: float = library_field(LiveFetchConfig, "read_timeout",
                                        "seconds between bytes")
    total_timeout: float = library_field(LiveFetchConfig, "total_timeout",
                                         "network seconds per attempt, redirects included")
    max_bytes: int = library_field(LiveFetchConfig, "max_bytes",
                                   "byte cap, enforced while streaming")
    max_redirects: int = library_field(LiveFetchConfig, "max_redirects")
    respect_x_robots_tag: bool = library_field(
        LiveFetchConfig, "respect_x_robots_tag", "honour noai, noimageai, noindex, ...")
    retries: int = library_field(LiveFetchConfig, "retries",
                                 "for 408, 429, 5xx, timeouts, connection errors")
    allowed_networks: list[str] = library_field(
        LiveFetchConfig, "allowed_networks",
        "CIDRs exempt from the private-address refusal (none by default)")
    host_budget_seconds: float = library_field(
        LiveFetchConfig, "host_budget_seconds", "a host's 429/503 backoff per shard, in total")
    min_image_bytes: int = library_field(ImagePolicy, "min_bytes",
                                         "LAION: images under 5 KB dropped")
    max_pixels: int = library_field(ImagePolicy, "max_pixels", "decompression-bomb limit")
    resize: int = library_field(ImagePolicy, "resize", "side of the resized image for scoring")
    resize_mode: str = library_field(ImagePolicy, "resize_mode", "img2dataset's resize modes")
    images_per_tar: int = library_field(DownloadConfig, "images_per_tar")

    def download_config(self) -> DownloadConfig:
        return DownloadConfig(**library_values(self, DownloadConfig),
                              policy=ImagePolicy(**library_values(self, ImagePolicy)),
                              live=LiveFetchConfig(**library_values(self, LiveFetchConfig)))


class ClipModelResource(ConfigurableResource):
    """The CLIP model (the GPU resource), loaded once per process; defaults: `ClipModelSpec`."""

    model: str = library_field(ClipModelSpec, "model", "open_clip model name")
    pretrained: str | None = library_field(
        ClipModelSpec, "pretrained",
        "open_clip tag, local file, s3:// URI, or None for seeded random weights")
    device: str = library_field(ClipModelSpec, "device", "auto: CUDA if available, else CPU")
    precision: str = library_field(ClipModelSpec, "precision",
                                   "auto: fp16 on CUDA, fp32 on CPU")
    batch_size: int = library_field(ClipModelSpec, "batch_size", "pairs per batch")
    num_workers: int | None = library_field(
        ClipModelSpec, "num_workers", "image decoding workers; None: 1 on CPU, up to 12 on CUDA")
    seed: int = library_field(ClipModelSpec, "seed", "seed of the random weights when untrained")
    cache_dir: str | None = library_field(ClipModelSpec, "cache_dir",
                                          "where remote weights are copied")

    def spec(self) -> ClipModelSpec:
        return ClipModelSpec(**library_values(self, ClipModelSpec))

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


def _concept_config(concept: Concept) -> ConceptConfig:
    return ConceptConfig(prompt=concept.prompt, threshold=concept.threshold)


def _concept(config: ConceptConfig) -> Concept:
    return Concept(config.prompt, config.threshold)


class SafetyPolicyResource(ConfigurableResource):
    """Every safety rule's switches and thresholds, and the safety models' weights files.

    Every default is the library's (`QualityRules`, `NsfwRules`, `WatermarkRules`,
    `SafetyPolicy`). Hash lists, URL lists and the takedown ledger have no switch: a match
    never passes.
    """

    similarity_mode: str = library_field(QualityRules, "similarity_mode",
                                         "threshold (per language), top_fraction, or off")
    similarity_thresholds: dict[str, float] = library_field(
        QualityRules, "similarity_thresholds", "CLIP cosine per language (LAION: 0.28 English)")
    default_similarity_threshold: float = library_field(
        QualityRules, "default_similarity_threshold",
        "for languages not listed (LAION multilingual: 0.26)")
    top_fraction: float = library_field(QualityRules, "top_fraction",
                                        "DataComp: keep the top 30% (per shard)")
    min_side: int = library_field(QualityRules, "min_side",
                                  "minimum shorter side of the image, pixels")
    min_bytes: int = library_field(QualityRules, "min_bytes", "minimum image bytes (LAION: 5 KB)")
    max_aspect_ratio: float = library_field(QualityRules, "max_aspect_ratio",
                                            "longer side / shorter side")
    min_text_chars: int = library_field(QualityRules, "min_text_chars",
                                        "LAION: alt text of 5+ characters")
    max_text_chars: int = library_field(QualityRules, "max_text_chars")
    nsfw_head: str | None = library_field(
        NsfwRules, "head", "torch weights of LAION's NSFW MLP head (path or s3:// URI); "
        "None: zero-shot concepts")
    punsafe_threshold: float = library_field(NsfwRules, "threshold",
                                             "Re-LAION research-safe: 0.45")
    nsfw_concepts: list[ConceptConfig] = library_field(NsfwRules, "concepts",
                                                       to_resource=_concept_config)
    minor_concepts: list[ConceptConfig] = library_field(
        NsfwRules, "minor_concepts", "with any NSFW signal, always excludes",
        to_resource=_concept_config)
    nsfw_keywords: list[str] = library_field(NsfwRules, "keywords")
    minor_keywords: list[str] = library_field(NsfwRules, "minor_keywords")
    use_nsfw_keywords: bool = library_field(NsfwRules, "use_keywords")
    watermark_model: str | None = library_field(
        WatermarkRules, "model", "torch weights of LAION's efficientnet_b3 watermark model; "
        "None: zero-shot concepts")
    watermark_threshold: float = library_field(WatermarkRules, "threshold",
                                               "LAION suggests 0.8")
    watermark_concepts: list[ConceptConfig] = library_field(
        WatermarkRules, "concepts", to_resource=_concept_config)
    watermark_enabled: bool = library_field(WatermarkRules, "enabled")
    personal_data: str = library_field(SafetyPolicy, "personal_data",
                                       "e-mail and phone numbers in captions: drop, redact, off")
    pdq_max_distance: int = library_field(SafetyPolicy, "pdq_max_distance",
                                          "PDQ match: Hamming distance")
    pdq_min_quality: int = library_field(SafetyPolicy, "pdq_min_quality",
                                         "PDQ match: minimum image quality")
    laion_nsfw_head: bool = library_field(
        NsfwRules, "laion_head", "punsafe from LAION's shipped detector when it fits the model")
    aesthetic_enabled: bool = library_field(AestheticRules, "enabled",
                                            "score `aesthetic` where a LAION head fits")
    min_aesthetic: float | None = library_field(AestheticRules, "min_score",
                                                "exclude pairs below it; None: score only")
    violence_enabled: bool = library_field(ViolenceRules, "enabled",
                                           "score `pviolence` (clip-retrieval's detector)")
    exclude_violence: bool = library_field(ViolenceRules, "exclude",
                                           "exclude pairs above the violence threshold")
    violence_threshold: float = library_field(ViolenceRules, "threshold",
                                              "pviolence above it is violence")
    device: str = library_field(SafetyPolicy, "device",
                                "where the NSFW head and watermark run")

    def policy(self) -> SafetyPolicy:
        return SafetyPolicy(
            quality=QualityRules(**library_values(self, QualityRules)),
            nsfw=NsfwRules(**library_values(self, NsfwRules, _concept)),
            watermark=WatermarkRules(**library_values(self, WatermarkRules, _concept)),
            aesthetic=AestheticRules(**library_values(self, AestheticRules)),
            violence=ViolenceRules(**library_values(self, ViolenceRules)),
            **library_values(self, SafetyPolicy))

    def nsfw_model(self, embed_dim: int) -> NsfwHead | None:
        if not self.nsfw_head:
            return None
        return _load_head(self.nsfw_head, embed_dim, self.device)

    def watermark_network(self) -> WatermarkModel | None:
        if not self.watermark_model or not self.watermark_enabled:
            return None
        return _load_watermark(self.watermark_model, self.device)


@cache
def _load_head(source: str, embed_dim: int, device: str) -> NsfwHead:
    return NsfwHead(load_model_file(source), embed_dim, device)


@cache
def _load_watermark(source: str, device: str) -> WatermarkModel:
    return WatermarkModel(load_model_file(source), device)


class CaptionModelResource(ConfigurableResource):
    """The CoCa captioning model (GPU), loaded once per process; defaults: `CaptionConfig`."""

    model: str = library_field(CaptionConfig, "model", "open_clip CoCa model name")
    pretrained: str | None = library_field(
        CaptionConfig, "pretrained",
        "open_clip tag, local file, s3:// URI, or None for seeded random weights")
    generation: str = library_field(CaptionConfig, "generation",
                                    "top_p or top_k (sampling), or beam_search (one caption)")
    candidates: int = library_field(CaptionConfig, "candidates", "candidates per image")
    keep: int = library_field(CaptionConfig, "keep", "best candidates kept, by similarity")
    max_tokens: int = library_field(CaptionConfig, "max_tokens", "generated tokens per caption")
    top_p: float = library_field(CaptionConfig, "top_p", "nucleus sampling mass")
    top_k: int = library_field(CaptionConfig, "top_k", "top-k sampling width")
    temperature: float = library_field(CaptionConfig, "temperature", "sampling temperature")
    num_beams: int = library_field(CaptionConfig, "num_beams", "beams of beam search")
    seed: int = library_field(CaptionConfig, "seed", "generation seed (per batch: seed + n)")
    ranker_model: str | None = library_field(
        CaptionConfig, "ranker_model", "CLIP model ranking the captions; None: the scoring model")
    ranker_pretrained: str | None = library_field(CaptionConfig, "ranker_pretrained",
                                                  "weights of ranker_model")
    device: str = library_field(ClipModelSpec, "device", "auto: CUDA if available, else CPU")
    precision: str = library_field(ClipModelSpec, "precision",
                                   "auto: fp16 on CUDA, fp32 on CPU")
    batch_size: int = library_field(CaptionConfig, "batch_size", "images per generation batch")
    cache_dir: str | None = library_field(ClipModelSpec, "cache_dir",
                                          "where remote weights are copied")

    def config(self) -> CaptionConfig:
        return CaptionConfig(**library_values(self, CaptionConfig))

    def captioner(self) -> Captioner:
        return _load_captioner_once(self.config(), self.device, self.precision, self.cache_dir)

    def ranker(self) -> ClipScorer | None:
        """The ranking model when one is named; None: rank with the scoring model."""
        if self.ranker_model is None:
            return None
        return _load_once(ClipModelSpec(model=self.ranker_model, pretrained=self.ranker_pretrained,
                                        device=self.device, precision=self.precision,
                                        cache_dir=self.cache_dir))


@cache
def _load_captioner_once(config: CaptionConfig, device: str, precision: str,
                         cache_dir: str | None) -> Captioner:
    return load_captioner(config, device=device, precision=precision, cache_dir=cache_dir)
