"""LAION's NSFW detector layouts for weights files given by path: an MLP on CLIP image
embeddings that gives `punsafe` in 0..1.

LAION's own detectors for ViT-B/32 and ViT-L/14 ship converted in
`laion_assets.pipeline.scoring.heads` and are used by default; this module loads a torch
state dict named in the policy instead. Layouts, chosen by the embedding size:
- 1024 (ViT-H/14): LAION's `H14_NSFW_Detector`, Linear 1024-2048-1024-256-128-16-1 with ReLU
  and dropout; its output is a regression onto 0/1 labels, clamped to 0..1 here;
- 512 (ViT-B/32): the autokeras detector's layers (from its Keras metadata): normalisation,
  Dense 32-32 with ReLU, dropout, a sigmoid output;
- any other size (768 for ViT-L/14): the autokeras detector's Dense 64-512-256 with ReLU.
The autokeras detectors also look a few columns up in a vocabulary first (see the shipped
heads); a state dict in this layout has no vocabulary and scores those columns as numbers.
The weights are a torch state dict with this module's parameter names.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from laion_assets.pipeline.safety.weights import ModelFile, load_into

KERAS_EPSILON = 1e-7


class Normalization(nn.Module):
    """Keras' Normalization layer: (x - mean) / max(sqrt(variance), epsilon)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("variance", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / torch.clamp(self.variance.sqrt(), min=KERAS_EPSILON)


# hidden Dense widths of LAION's autokeras detectors, by embedding size (keras_metadata.pb)
AUTOKERAS_WIDTHS = {512: (32, 32), 768: (64, 512, 256)}


class AutokerasNsfwHead(nn.Module):
    """LAION's autokeras NSFW detector layout: normalisation, Dense+ReLU layers
    (`linear_1`...), a Dense 1 output (the last `linear_k`) and a sigmoid."""

    layout = "laion-autokeras"

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = Normalization(dim)
        widths = (dim, *AUTOKERAS_WIDTHS.get(dim, AUTOKERAS_WIDTHS[768]), 1)
        self.depth = len(widths) - 1
        for k, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True), 1):
            setattr(self, f"linear_{k}", nn.Linear(a, b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        for k in range(1, self.depth):
            x = torch.relu(getattr(self, f"linear_{k}")(x))
        return torch.sigmoid(getattr(self, f"linear_{self.depth}")(x)).squeeze(-1)


class H14NsfwHead(nn.Module):
    """LAION's H14_NSFW_Detector layout (ViT-H/14: 1024 inputs)."""

    layout = "laion-h14"

    def __init__(self, dim: int = 1024) -> None:
        super().__init__()
        widths = (dim, 1024, 2048, 1024, 256, 128)
        hidden: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            hidden += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(0.2)]
        self.layers = nn.Sequential(*hidden, nn.Linear(128, 16), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1).clamp(0.0, 1.0)


def nsfw_head(dim: int) -> nn.Module:
    """An untrained head in LAION's layout for `dim`-wide embeddings."""
    return H14NsfwHead(dim) if dim == 1024 else AutokerasNsfwHead(dim)


class NsfwHead:
    """A loaded head that scores L2-normalised image embeddings."""

    def __init__(self, model_file: ModelFile, dim: int, device: str = "cpu") -> None:
        module = nsfw_head(dim)
        self.module = load_into(module, model_file, f"{module.layout} NSFW head of width {dim}")
        self.module.to(device)
        self.device, self.source, self.sha256 = device, model_file.source, model_file.sha256

    def identity(self) -> dict:
        return {"source": self.source, "sha256": self.sha256, "layout": self.module.layout}

    def punsafe(self, image_embeddings: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
        """float32 [n] in 0..1, computed in fp32."""
        out = np.empty(len(image_embeddings), np.float32)
        with torch.inference_mode():
            for start in range(0, len(image_embeddings), batch_size):
                chunk = torch.from_numpy(
                    np.asarray(image_embeddings[start:start + batch_size], np.float32))
                out[start:start + len(chunk)] = self.module(chunk.to(self.device)).cpu().numpy()
        return out
