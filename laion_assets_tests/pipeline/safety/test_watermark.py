"""The watermark model against the same network fed by an independent preprocessing."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from laion_assets.pipeline.safety.watermark import WatermarkModel, watermark_network
from laion_assets.pipeline.safety.weights import load_model_file

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
GARBAGE = b"\xff\xd8\xff\xe0 not a JPEG at all"


def _pixels(seed: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * (seed + 2)) % 256, (y * 3) % 256, (x + 2 * y) % 256], axis=-1)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def _rgba_png() -> bytes:
    """Alpha is 0 or 255 only, so compositing onto white is exact whatever the arithmetic."""
    rgba = np.dstack([_pixels(7, 180, 300), np.full((180, 300), 255, np.uint8)])
    rgba[40:120, 50:200, 3] = 0
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


IMAGES = [  # (key, bytes): JPEG, garbage, PNG (grey), RGBA PNG
    (11, _encode(Image.fromarray(_pixels(1, 300, 400)), "JPEG")),
    (12, GARBAGE),
    (13, _encode(Image.fromarray(_pixels(2, 128, 96)).convert("L"), "PNG")),
    (14, _rgba_png()),
]


def _reference_input(data: bytes) -> torch.Tensor:
    """[3, 256, 256]: RGB (transparent pixels white), bilinear 256x256, /255, ImageNet norm."""
    image = Image.open(io.BytesIO(data))
    if image.mode == "RGBA":
        rgba = np.asarray(image)
        rgb = np.where(rgba[..., 3:] == 255, rgba[..., :3], 255).astype(np.uint8)
        image = Image.fromarray(rgb, "RGB")
    image = image.convert("RGB").resize((256, 256), Image.Resampling.BILINEAR)
    array = (np.asarray(image, np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _seeded_state() -> dict[str, torch.Tensor]:
    """Seeded weights whose outputs depend on the image: timm's init with untouched batch-norm
    statistics gives the same output for every input (and batch-norm statistics from other
    inputs blow the activations up), so set them from the test images, and widen the last
    layer so that the probabilities spread without reaching 0 or 1."""
    torch.manual_seed(0)
    network = watermark_network()
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batch
    images = torch.stack([_reference_input(data) for _, data in IMAGES if data != GARBAGE])
    network.train()
    with torch.no_grad():
        network(images)
        network.classifier[-1].weight *= 30
        network.classifier[-1].bias.zero_()
    return {k: v.clone() for k, v in network.state_dict().items()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("watermark") / "watermark.pt"
    torch.save(_seeded_state(), path)
    return str(path)


@pytest.fixture(scope="module")
def model(weights) -> WatermarkModel:
    return WatermarkModel(load_model_file(weights))


def test_pwatermark_equals_a_direct_computation(weights, model):
    batches = list(model.pwatermark(iter(IMAGES), batch_size=3))
    assert [len(keys) for keys, _ in batches] == [3, 1]  # a batch boundary inside the images
    for keys, scores in batches:
        assert keys.dtype == np.int64 and scores.dtype == np.float32 and len(keys) == len(scores)
    keys = np.concatenate([k for k, _ in batches])
    scores = np.concatenate([s for _, s in batches])
    assert keys.tolist() == [key for key, _ in IMAGES]
    assert np.isnan(scores[1]) and np.isfinite(np.delete(scores, 1)).all()

    network = watermark_network()
    network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    network.eval()
    decodable = [data for _, data in IMAGES if data != GARBAGE]
    with torch.no_grad():
        logits = network(torch.stack([_reference_input(data) for data in decodable]))
    expected = torch.softmax(logits, dim=-1)[:, 0].numpy()
    np.testing.assert_allclose(np.delete(scores, 1), expected, rtol=0, atol=1e-5)
    # the scores differ between images and are not saturated: the comparison means something
    assert np.ptp(expected) > 1e-3 and ((expected > 0.01) & (expected < 0.99)).all()


def test_failed_images_only_and_empty_input(model):
    assert list(model.pwatermark(iter([]))) == []
    (keys, scores), = model.pwatermark([(5, GARBAGE), (6, b"")], batch_size=8)
    assert keys.tolist() == [5, 6] and np.isnan(scores).all()


def test_identity_and_a_wrong_weights_file(weights, model, tmp_path):
    identity = model.identity()
    assert identity["source"] == weights and identity["layout"] == "laion-efficientnet_b3"
    wrong = tmp_path / "not_watermark.pt"
    torch.save({"linear_1.weight": torch.zeros(64, 512)}, wrong)
    with pytest.raises(ValueError, match="not_watermark.pt"):
        WatermarkModel(load_model_file(str(wrong)))
