"""LAION's watermark detector: `pwatermark` in 0..1 from the image itself.

LAION-5B-WatermarkDetection used timm's `efficientnet_b3a` (now the same network under the
name `efficientnet_b3`) with a head Linear(1536, 625)-ReLU-Dropout(0.3)-Linear(625, 256)-ReLU-
Linear(256, 2), on 256×256 images normalised with ImageNet's mean and std; `pwatermark` is
the softmax probability of class 0. The weights file is a state dict of that whole network.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import numpy as np
import timm
import torch
from PIL import Image
from torch import nn

from laion_assets.pipeline.download.images import to_rgb
from laion_assets.pipeline.safety.weights import ModelFile, load_into

INPUT_SIZE = 256
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def watermark_network() -> nn.Module:
    """The untrained network in LAION's layout."""
    model = timm.create_model("efficientnet_b3", pretrained=False, num_classes=2)
    model.classifier = nn.Sequential(nn.Linear(1536, 625), nn.ReLU(), nn.Dropout(p=0.3),
                                     nn.Linear(625, 256), nn.ReLU(), nn.Linear(256, 2))
    return model


def preprocess(image_bytes: bytes) -> torch.Tensor | None:
    """[3, 256, 256] float tensor, or None when the bytes do not decode."""
    try:
        with Image.open(io.BytesIO(image_bytes)) as im:
            rgb = to_rgb(im).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    array = np.asarray(rgb, np.float32) / 255.0
    array = (array - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


class WatermarkModel:
    """A loaded watermark detector."""

    def __init__(self, model_file: ModelFile, device: str = "cpu") -> None:
        network = load_into(watermark_network(), model_file, "LAION's watermark network")
        self.network = network.to(device)
        self.device, self.source, self.sha256 = device, model_file.source, model_file.sha256

    def identity(self) -> dict:
        return {"source": self.source, "sha256": self.sha256, "layout": "laion-efficientnet_b3"}

    def pwatermark(self, images: Iterable[tuple[int, bytes]], batch_size: int = 32
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(keys, pwatermark) per batch of (key, image bytes); NaN where an image fails."""
        batch: list[tuple[int, torch.Tensor | None]] = []
        for key, data in images:
            batch.append((key, preprocess(data)))
            if len(batch) == batch_size:
                yield self._run(batch)
                batch = []
        if batch:
            yield self._run(batch)

    def _run(self, batch: list[tuple[int, torch.Tensor | None]]) -> tuple[np.ndarray, np.ndarray]:
        keys = np.array([k for k, _ in batch], np.int64)
        out = np.full(len(batch), np.nan, np.float32)
        ok = [i for i, (_, t) in enumerate(batch) if t is not None]
        if ok:
            tensor = torch.stack([batch[i][1] for i in ok]).to(self.device)
            with torch.inference_mode():
                probs = torch.softmax(self.network(tensor).float(), dim=-1)[:, 0]
            out[ok] = probs.cpu().numpy()
        return keys, out
