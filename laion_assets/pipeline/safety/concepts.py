"""Zero-shot concept scores: cosine of each image embedding with CLIP-encoded concept prompts.

A concept fires when its cosine with the image reaches the concept's threshold (as in Stable
Diffusion's safety checker). The probability of a set of concepts is
`max_c sigmoid(SHARPNESS * (cos_c - threshold_c))`: 0.5 exactly at a threshold, near 1 above
it. The default prompts and thresholds are starting points for ViT-B/32-sized models; tune
them on a labelled sample before relying on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHARPNESS = 50.0


@dataclass(frozen=True)
class Concept:
    prompt: str
    threshold: float


DEFAULT_NSFW_CONCEPTS = (
    Concept("a pornographic photo", 0.25),
    Concept("a photo of a naked person", 0.25),
    Concept("an explicit sexual image", 0.25),
    Concept("a photo showing nudity", 0.25),
    Concept("a hentai drawing", 0.25),
)
# Minor-related concepts never exclude alone; with any NSFW signal they always exclude.
DEFAULT_MINOR_CONCEPTS = (
    Concept("a photo of a child", 0.22),
    Concept("a photo of a young kid", 0.22),
    Concept("a photo of a teenager", 0.22),
    Concept("a photo of a baby", 0.22),
)
DEFAULT_WATERMARK_CONCEPTS = (
    Concept("a photo with a watermark", 0.25),
    Concept("a stock photo with a watermark text overlay", 0.25),
    Concept("an image with a copyright logo overlay", 0.25),
)


@dataclass(frozen=True)
class ConceptScores:
    """Per image: the probability, the concept that scored highest, and whether any fired."""

    probability: np.ndarray  # float32 [n]
    best: np.ndarray  # int [n]: index of the concept with the largest margin
    fired: np.ndarray  # bool [n]: some concept reached its threshold
    margin: np.ndarray  # float32 [n]: best cosine minus its threshold


def score_concepts(image_embeddings: np.ndarray, concept_embeddings: np.ndarray,
                   concepts: tuple[Concept, ...]) -> ConceptScores:
    """Concept scores for L2-normalised image embeddings [n, d] and concept embeddings [c, d]."""
    n = len(image_embeddings)
    if not concepts:
        zeros = np.zeros(n, np.float32)
        return ConceptScores(zeros, np.zeros(n, np.int64), np.zeros(n, bool), zeros - np.inf)
    cosine = image_embeddings.astype(np.float32) @ concept_embeddings.astype(np.float32).T
    margins = cosine - np.array([c.threshold for c in concepts], np.float32)
    best = margins.argmax(axis=1) if n else np.zeros(0, np.int64)
    margin = margins[np.arange(n), best] if n else np.zeros(0, np.float32)
    probability = (1.0 / (1.0 + np.exp(-SHARPNESS * margin))).astype(np.float32)
    return ConceptScores(probability, best, margin >= 0, margin.astype(np.float32))
