"""Configuration of the safety stage: every rule's switches and thresholds.

The hash-list, URL-list and takedown-ledger rules have no switch: a pair that matches one
never passes, whatever else is configured (see `rules.MANDATORY_RULES`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from laion_assets.pipeline.safety.concepts import (
    DEFAULT_MINOR_CONCEPTS,
    DEFAULT_NSFW_CONCEPTS,
    DEFAULT_WATERMARK_CONCEPTS,
    Concept,
)
from laion_assets.pipeline.safety.text_rules import DEFAULT_MINOR_KEYWORDS, DEFAULT_NSFW_KEYWORDS

SIMILARITY_MODES = ("threshold", "top_fraction", "off")
PERSONAL_DATA_ACTIONS = ("drop", "redact", "off")


@dataclass(frozen=True)
class QualityRules:
    """CLIP similarity, image size and shape, caption length."""

    similarity_mode: str = "threshold"
    # LAION-5B: 0.28 for English (ViT-B/32), 0.26 for the multilingual part
    similarity_thresholds: dict[str, float] = field(default_factory=lambda: {"en": 0.28})
    default_similarity_threshold: float = 0.26
    top_fraction: float = 0.3  # DataComp keeps the top 30 % by CLIP score (per shard here)
    min_side: int = 0  # pixels, of the original image
    min_bytes: int = 5_000  # LAION: images under 5 KB dropped
    max_aspect_ratio: float = 3.0  # longer side / shorter side (DataComp's basic filter)
    min_text_chars: int = 5  # LAION: alt text of at least 5 characters
    max_text_chars: int = 1_000

    def similarity_threshold(self, language: str) -> float:
        return self.similarity_thresholds.get(language, self.default_similarity_threshold)


@dataclass(frozen=True)
class NsfwRules:
    """`punsafe` from an MLP head (if a weights file is set) or zero-shot concepts; keywords."""

    head: str | None = None  # torch weights file (local path or fsspec URI) of LAION's MLP
    # without a file: LAION's detector shipped for the CLIP model (ViT-B/32, ViT-L/14), when
    # one fits; zero-shot concepts otherwise or when this is off
    laion_head: bool = True
    threshold: float = 0.45  # Re-LAION "research-safe"
    concepts: tuple[Concept, ...] = DEFAULT_NSFW_CONCEPTS
    minor_concepts: tuple[Concept, ...] = DEFAULT_MINOR_CONCEPTS
    keywords: tuple[str, ...] = DEFAULT_NSFW_KEYWORDS
    minor_keywords: tuple[str, ...] = DEFAULT_MINOR_KEYWORDS
    use_keywords: bool = True


@dataclass(frozen=True)
class WatermarkRules:
    """`pwatermark` from LAION's watermark model (if a file is set) or zero-shot concepts."""

    model: str | None = None  # torch weights file of the efficientnet_b3a watermark model
    threshold: float = 0.8  # LAION's suggestion
    concepts: tuple[Concept, ...] = DEFAULT_WATERMARK_CONCEPTS
    enabled: bool = True
    batch_size: int = 32


@dataclass(frozen=True)
class AestheticRules:
    """`aesthetic` from LAION-Aesthetics (v2 on ViT-L/14, v1 on ViT-B/32 and B/16) where a head
    fits the CLIP model; an optional floor (LAION-Aesthetics subsets: 5, 6, 6.5)."""

    enabled: bool = True
    min_score: float | None = None  # exclude pairs scoring below it; None: score only


@dataclass(frozen=True)
class ViolenceRules:
    """`pviolence` from clip-retrieval's violence detector (two prompt embeddings per model):
    above 0.5 exactly when clip-retrieval flags the image. Excluding is optional."""

    enabled: bool = True
    exclude: bool = False
    threshold: float = 0.5  # clip-retrieval's argmax


@dataclass(frozen=True)
class SafetyPolicy:
    quality: QualityRules = field(default_factory=QualityRules)
    nsfw: NsfwRules = field(default_factory=NsfwRules)
    watermark: WatermarkRules = field(default_factory=WatermarkRules)
    aesthetic: AestheticRules = field(default_factory=AestheticRules)
    violence: ViolenceRules = field(default_factory=ViolenceRules)
    personal_data: str = "drop"  # e-mail addresses and phone numbers in captions
    pdq_max_distance: int = 31
    pdq_min_quality: int = 50
    device: str = "cpu"  # where the NSFW head and the watermark model run

    def __post_init__(self) -> None:
        if self.quality.similarity_mode not in SIMILARITY_MODES:
            raise ValueError(f"similarity_mode {self.quality.similarity_mode!r}: "
                             f"expected one of {SIMILARITY_MODES}")
        if self.personal_data not in PERSONAL_DATA_ACTIONS:
            raise ValueError(f"personal_data {self.personal_data!r}: "
                             f"expected one of {PERSONAL_DATA_ACTIONS}")
        if not 0 < self.quality.top_fraction <= 1:
            raise ValueError(f"top_fraction {self.quality.top_fraction}: expected (0, 1]")
        if not 0 <= self.pdq_min_quality <= 100:  # PDQ quality is 0..100: >100 matches nothing
            raise ValueError(f"pdq_min_quality {self.pdq_min_quality}: expected 0..100")
        if not 0 <= self.pdq_max_distance <= 128:
            raise ValueError(f"pdq_max_distance {self.pdq_max_distance}: expected 0..128")
        if not 0 < self.violence.threshold < 1:
            raise ValueError(f"violence threshold {self.violence.threshold}: expected (0, 1)")

    def head_kinds(self) -> tuple[str, ...]:
        """Which of LAION's shipped heads the policy asks for (where one fits the model)."""
        wanted = (("nsfw", self.nsfw.laion_head and not self.nsfw.head),
                  ("aesthetic", self.aesthetic.enabled), ("violence", self.violence.enabled))
        return tuple(kind for kind, on in wanted if on)

    def to_dict(self) -> dict:
        """The thresholds in force, for manifests and the UI."""
        return asdict(self)

    def thresholds(self) -> dict:
        """The thresholds in force, without the long prompt and keyword lists (for the UI)."""
        quality, nsfw, watermark = self.quality, self.nsfw, self.watermark
        similarity = ({**quality.similarity_thresholds,
                       "other languages": quality.default_similarity_threshold}
                      if quality.similarity_mode == "threshold"
                      else {quality.similarity_mode: quality.top_fraction})
        return {
            "similarity": similarity, "punsafe": nsfw.threshold,
            "nsfw": "head" if nsfw.head else (
                "LAION's detector where it fits the model, else zero-shot" if nsfw.laion_head
                else "zero-shot"),
            "aesthetic": _score_rule(self.aesthetic.enabled, self.aesthetic.min_score, ">="),
            "pviolence": _score_rule(self.violence.enabled,
                                     self.violence.threshold if self.violence.exclude else None,
                                     "<="),
            "pwatermark": watermark.threshold if watermark.enabled else "off",
            "min_side": quality.min_side, "min_bytes": quality.min_bytes,
            "max_aspect_ratio": quality.max_aspect_ratio,
            "text_chars": [quality.min_text_chars, quality.max_text_chars],
            "personal_data": self.personal_data,
            "pdq": {"max_distance": self.pdq_max_distance, "min_quality": self.pdq_min_quality},
        }


def _score_rule(enabled: bool, bound: float | None, keep: str) -> str:
    if not enabled:
        return "off"
    return "score only" if bound is None else f"keep {keep} {bound:g}"
