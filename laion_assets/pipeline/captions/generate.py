"""Candidate captions from an open_clip CoCa model, ranked by a CLIP model (LAION-COCO's recipe).

LAION-COCO generated many candidate captions per image with a captioning model, ranked them
by CLIP similarity to the image, and kept the best few with their similarities. Here
`Captioner.candidates` generates `candidates` captions per image in batches (sampling with
`top_p`/`top_k`, each image repeated; or one beam search caption per image), and
`rank_captions` scores them with a CLIP model's image and text towers.

Generation is seeded per batch (`seed` + batch number) in a forked RNG, so the same images in
the same batches give the same captions, whatever ran before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import open_clip
import torch

from laion_assets.pipeline.scoring.clip import ClipModelSpec, ClipScorer, ModelIdentity, load_clip

GENERATION_TYPES = ("beam_search", "top_p", "top_k")


@dataclass(frozen=True)
class CaptionConfig:
    """Which CoCa model writes captions, how they are generated and how many are kept."""

    model: str = "coca_ViT-L-14"  # open_clip CoCa model name
    # an open_clip tag, a local file, an s3:// URI, or None for seeded random weights
    pretrained: str | None = "mscoco_finetuned_laion2b_s13b_b90k"
    generation: str = "top_p"  # "top_p", "top_k" (sampling) or "beam_search" (one per image)
    candidates: int = 5  # candidates per image (beam search gives one)
    keep: int = 3  # best candidates kept, by CLIP similarity
    max_tokens: int = 30  # generated sequence length, start token included
    top_p: float = 0.9
    top_k: int = 50
    temperature: float = 1.0
    num_beams: int = 6
    seed: int = 0  # batch n is generated with seed + n
    batch_size: int = 16  # images per generation batch (with the seed, decides the captions)
    ranker_model: str | None = None  # CLIP model ranking the captions; None: the scoring model
    ranker_pretrained: str | None = None  # its weights (tag, file, s3:// URI; None: untrained)

    def __post_init__(self) -> None:
        if self.generation not in GENERATION_TYPES:
            raise ValueError(f"generation {self.generation!r}: expected one of {GENERATION_TYPES}")
        if self.candidates < 1 or self.keep < 1:
            raise ValueError("candidates and keep must be at least 1")
        if self.max_tokens < 6:
            raise ValueError(f"max_tokens must be at least 6, not {self.max_tokens}")

    def to_dict(self) -> dict:
        return asdict(self)


class Captioner:
    """A loaded CoCa model that writes captions for batches of preprocessed images."""

    def __init__(self, coca: ClipScorer, config: CaptionConfig) -> None:
        if not hasattr(coca.model, "generate"):
            raise ValueError(f"model {coca.identity.model!r} is not a CoCa model: it cannot "
                             "generate captions (use coca_ViT-B-32 or coca_ViT-L-14)")
        self.coca, self.config = coca, config
        self.identity: ModelIdentity = coca.identity
        self.preprocess = coca.preprocess

    def candidates(self, images: torch.Tensor, batch_number: int = 0) -> list[list[str]]:
        """Candidate captions per image (distinct, in generation order)."""
        cfg = self.config
        repeat = 1 if cfg.generation == "beam_search" else cfg.candidates
        batch = images.repeat_interleave(repeat, dim=0).to(self.coca.device)
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(cfg.seed + batch_number)
            tokens = self.coca.model.generate(batch, **self._generate_args())
        texts = [_clean(open_clip.decode(row)) for row in tokens.cpu()]
        return [_distinct(texts[i * repeat:(i + 1) * repeat]) for i in range(len(images))]

    def _generate_args(self) -> dict:
        cfg = self.config
        args = {"generation_type": cfg.generation, "seq_len": cfg.max_tokens,
                "temperature": cfg.temperature}
        if cfg.generation == "top_p":
            args["top_p"] = cfg.top_p
        elif cfg.generation == "top_k":
            args["top_k"] = cfg.top_k
        else:
            args["num_beams"] = cfg.num_beams
            args["num_beam_groups"] = _beam_groups(cfg.num_beams)
        return args


def _beam_groups(beams: int) -> int:
    """open_clip's diverse beam search needs beams divisible by the group count."""
    return next(g for g in (3, 2, 1) if beams % g == 0)


def _clean(text: str) -> str:
    """Caption text without CoCa's special tokens."""
    for token in ("<start_of_text>", "<end_of_text>"):
        text = text.replace(token, " ")
    return " ".join(text.split())


def _distinct(texts: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(t for t in texts if t)) or [""]


@dataclass
class RankedCaptions:
    """Kept captions of one image, best first, with their CLIP similarities."""

    captions: list[str]
    similarities: list[float]

    @property
    def top(self) -> str:
        return self.captions[0]


def rank_captions(ranker: ClipScorer, image_embeddings: np.ndarray,
                  candidates: list[list[str]], keep: int) -> list[RankedCaptions]:
    """Each image's candidates sorted by cosine similarity to its image, the best `keep`."""
    texts = sorted({t for group in candidates for t in group})
    index = {t: i for i, t in enumerate(texts)}
    text_embeddings = ranker.encode_texts(texts)
    ranked = []
    for image, group in zip(image_embeddings, candidates, strict=True):
        sims = text_embeddings[[index[t] for t in group]] @ image
        order = np.argsort(-sims, kind="stable")[:keep]
        ranked.append(RankedCaptions([group[i] for i in order],
                                     [float(sims[i]) for i in order]))
    return ranked


def load_captioner(config: CaptionConfig, device: str = "auto", precision: str = "auto",
                   seed: int = 0, cache_dir: str | None = None) -> Captioner:
    """Load the config's CoCa model (slow: once per process)."""
    spec = ClipModelSpec(model=config.model, pretrained=config.pretrained, device=device,
                         precision=precision, seed=seed, num_workers=0, cache_dir=cache_dir)
    return Captioner(load_clip(spec), config)
