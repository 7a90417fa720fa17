"""LAION's own heads on CLIP image embeddings, shipped in `weights/` and chosen by model.

- NSFW (`punsafe`): LAION's autokeras detectors for ViT-B/32 and ViT-L/14;
- violence (`pviolence`): clip-retrieval's two prompt embeddings per model;
- aesthetic (`aesthetic`): LAION-Aesthetics v2 (ViT-L/14) or v1 (ViT-B/32, B/16, L/14).

A head is used only when the CLIP model's name and embedding size are the ones it was
trained on; otherwise there is no head for that score (NSFW falls back to zero-shot
concepts in the safety stage). Every head's identity (file sha256, source) is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from laion_assets.pipeline.scoring.heads.files import Head, HeadFile, load_shipped, shipped_heads

# preference when several heads fit one model: LAION-Aesthetics v2 before v1
PREFERENCE = ("aesthetic_v2", "aesthetic_v1", "nsfw", "violence")


def matching_head(kind: str, model: str, dim: int) -> HeadFile | None:
    """The shipped head of `kind` for a CLIP model (open_clip name, embedding size)."""
    fits = [h for h in shipped_heads() if h.kind == kind and h.matches(model, dim)]
    fits.sort(key=lambda h: next((i for i, p in enumerate(PREFERENCE) if h.name.startswith(p)),
                                 len(PREFERENCE)))
    return fits[0] if fits else None


@dataclass
class ClipHeads:
    """The heads that fit one CLIP model (None where none does)."""

    nsfw: Head | None = None
    aesthetic: Head | None = None
    violence: Head | None = None

    @classmethod
    def for_model(cls, model: str, dim: int, device: str = "cpu",
                  kinds: tuple[str, ...] = ("nsfw", "aesthetic", "violence")) -> ClipHeads:
        heads = {}
        for kind in kinds:
            found = matching_head(kind, model, dim)
            heads[kind] = load_shipped(found.name, device) if found else None
        return cls(**heads)

    def identity(self) -> dict:
        return {kind: head.identity() if head else None for kind, head in (
            ("nsfw", self.nsfw), ("aesthetic", self.aesthetic), ("violence", self.violence))}

    def score(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Each fitting head's output column (punsafe, aesthetic, pviolence) → float32 [n]."""
        return {head.file.output: head(embeddings)
                for head in (self.nsfw, self.aesthetic, self.violence) if head is not None}


__all__ = ["ClipHeads", "Head", "HeadFile", "matching_head", "shipped_heads"]
