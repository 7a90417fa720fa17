"""LAION's heads shipped in the package: converted NSFW detectors against TensorFlow's outputs,
aesthetic and violence heads against plain re-implementations on the original files."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from laion_assets.pipeline.scoring.heads import ClipHeads, matching_head, shipped_heads
from laion_assets.pipeline.scoring.heads.files import WEIGHTS, Head, read_head_file
from laion_assets_tests.pipeline.scoring.reference_inputs import decode_keys, reference_embeddings

LAION = Path(__file__).resolve().parents[3].parent / "shared" / "models" / "laion"
REFERENCE = Path(__file__).resolve().parents[2] / "data" / "laion_heads"
# max |torch head - TensorFlow| measured on the 1,000 reference embeddings (2026-11-28):
# nsfw_vit_b_32 3.3e-06, nsfw_vit_l_14 3.0e-07; the bound is 1e-5
TOLERANCE = 1e-5
NSFW = (("nsfw_vit_b_32", "ViT-B-32", 512, "clip_autokeras_nsfw_b32.zip"),
        ("nsfw_vit_l_14", "ViT-L-14", 768, "clip_autokeras_binary_nsfw.zip"))


def _embeddings(n: int, dim: int, seed: int = 7) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _reference_inputs(head: Head) -> np.ndarray:
    categorical = head.module[0]
    vocabularies = {c: decode_keys(getattr(categorical, f"keys_{c}").numpy())
                    for c in categorical.columns}
    return reference_embeddings(head.file.dim, vocabularies)


@pytest.mark.parametrize(("name", "model", "dim", "_zip"), NSFW)
def test_nsfw_head_matches_tensorflow_reference_outputs(name, model, dim, _zip):
    head = ClipHeads.for_model(model, dim).nsfw
    assert head is not None and head.file.name == name
    x = _reference_inputs(head)
    assert x.shape == (1_000, dim)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    expected = np.load(REFERENCE / f"{name}_tensorflow.npy")
    got = head(x)
    assert float(np.abs(got - expected).max()) < TOLERANCE
    assert expected.min() < 0.01 and expected.max() > 0.5  # the references are not saturated


@pytest.mark.parametrize(("name", "model", "dim", "_zip"), NSFW)
def test_the_vocabulary_lookup_is_needed_to_match(name, model, dim, _zip):
    """In the half of the references that hits the vocabularies, treating the categorical
    columns as plain numbers (the old port's layout) gives different scores."""
    head = ClipHeads.for_model(model, dim).nsfw
    x = _reference_inputs(head)
    expected = np.load(REFERENCE / f"{name}_tensorflow.npy")
    plain = nn.Sequential(*list(head.module)[1:])
    with torch.inference_mode():
        got = plain(torch.from_numpy(x)).reshape(-1).numpy()
    assert float(np.abs(got[500:] - expected[500:]).max()) > 1e-3


@pytest.mark.parametrize(("name", "model", "dim", "zip_name"), NSFW)
def test_nsfw_head_matches_tensorflow_directly(name, model, dim, zip_name, tmp_path):
    tf = pytest.importorskip("tensorflow")
    with zipfile.ZipFile(LAION / "nsfw-detector" / zip_name) as archive:
        archive.extractall(tmp_path)
    model_dir = next(tmp_path.glob("*/saved_model.pb")).parent
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    head = ClipHeads.for_model(model, dim).nsfw
    x = _reference_inputs(head)
    (expected,) = serve(input_1=tf.constant(x.astype(np.float64))).values()
    assert float(np.abs(head(x) - expected.numpy().reshape(-1)).max()) < TOLERANCE


@pytest.mark.parametrize(("model", "dim", "source"), [
    ("ViT-B-32", 512, "sa_0_4_vit_b_32_linear.pth"),
    ("ViT-B-16", 512, "sa_0_4_vit_b_16_linear.pth"),
])
def test_aesthetic_v1_matches_a_plain_linear_layer(model, dim, source):
    plain = nn.Linear(dim, 1)
    plain.load_state_dict(torch.load(LAION / "aesthetic-predictor" / source, weights_only=True,
                                     map_location="cpu"))
    x = _embeddings(256, dim)
    with torch.inference_mode():
        expected = plain(torch.from_numpy(x)).reshape(-1).numpy()
    head = ClipHeads.for_model(model, dim).aesthetic
    assert head.file.version == "LAION-Aesthetics v1"
    np.testing.assert_allclose(head(x), expected, rtol=0, atol=1e-5)


def test_aesthetic_v1_l14_is_shipped_and_matches_its_linear_layer():
    plain = nn.Linear(768, 1)
    plain.load_state_dict(torch.load(LAION / "aesthetic-predictor" / "sa_0_4_vit_l_14_linear.pth",
                                     weights_only=True, map_location="cpu"))
    x = _embeddings(64, 768)
    with torch.inference_mode():
        expected = plain(torch.from_numpy(x)).reshape(-1).numpy()
    head = Head(read_head_file(WEIGHTS / "aesthetic_v1_vit_l_14.safetensors"))
    np.testing.assert_allclose(head(x), expected, rtol=0, atol=1e-5)


class ImprovedAestheticMlp(nn.Module):
    """improved-aesthetic-predictor's MLP, as its repository defines it."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(768, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def test_aesthetic_v2_matches_the_improved_predictor_mlp():
    plain = ImprovedAestheticMlp()
    plain.load_state_dict(torch.load(
        LAION / "improved-aesthetic-predictor" / "sac+logos+ava1-l14-linearMSE.pth",
        weights_only=True, map_location="cpu"))
    x = _embeddings(256, 768)
    with torch.inference_mode():
        expected = plain.eval()(torch.from_numpy(x)).reshape(-1).numpy()
    head = ClipHeads.for_model("ViT-L-14", 768).aesthetic
    assert head.file.name == "aesthetic_v2_vit_l_14"
    assert head.file.version == "LAION-Aesthetics v2" and head.file.licence == "Apache-2.0"
    np.testing.assert_allclose(head(x), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize(("model", "dim", "source"), [
    ("ViT-B-32", 512, "violence_detection_vit_b_32.npy"),
    ("ViT-L-14", 768, "violence_detection_vit_l_14.npy"),
])
def test_violence_agrees_with_clip_retrievals_get_violent_items(model, dim, source):
    prompts = np.load(LAION / "nsfw-detector" / source)
    x = _embeddings(2_000, dim, seed=3)
    # clip-retrieval: argmax of the dot products with the two prompts; violent where it is 1
    violent = np.flatnonzero(np.argmax(np.einsum("ij,kj->ik", x, prompts), axis=1) == 1)
    pviolence = ClipHeads.for_model(model, dim).violence(x)
    assert 0 < len(violent) < len(x)
    assert set(np.flatnonzero(pviolence > 0.5)) == set(violent)
    logits = 100.0 * x.astype(np.float64) @ prompts.T.astype(np.float64)
    softmax = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    np.testing.assert_allclose(pviolence, softmax, atol=1e-4)


def test_heads_are_chosen_by_model_name_and_embedding_size():
    b32 = ClipHeads.for_model("ViT-B-32", 512)
    assert [b32.nsfw.file.name, b32.aesthetic.file.name, b32.violence.file.name] == [
        "nsfw_vit_b_32", "aesthetic_v1_vit_b_32", "violence_vit_b_32"]
    l14 = ClipHeads.for_model("ViT-L-14-quickgelu", 768)
    assert [l14.nsfw.file.name, l14.aesthetic.file.name] == ["nsfw_vit_l_14",
                                                             "aesthetic_v2_vit_l_14"]
    assert matching_head("nsfw", "ViT-B-32", 768) is None  # name fits, size does not
    assert matching_head("nsfw", "ViT-B-16", 512) is None  # size fits, model does not
    none = ClipHeads.for_model("ViT-H-14", 1024)
    assert none.identity() == {"nsfw": None, "aesthetic": None, "violence": None}
    assert none.score(_embeddings(3, 1024)) == {}


def test_identity_names_the_file_by_sha256_and_its_source():
    heads = ClipHeads.for_model("ViT-B-32", 512)
    identity = heads.identity()
    for kind in ("nsfw", "aesthetic", "violence"):
        path = WEIGHTS / f"{identity[kind]['head']}.safetensors"
        assert identity[kind]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert identity["nsfw"]["source"].endswith("clip_autokeras_nsfw_b32.zip")
    assert identity["nsfw"]["source_sha256"] == (
        "78715ab9d64485167e8c9ade3b8e6761a17a16c24d114bd47431ac1dab46462b")
    scores = heads.score(_embeddings(5, 512))
    assert sorted(scores) == ["aesthetic", "punsafe", "pviolence"]
    assert all(v.dtype == np.float32 and v.shape == (5,) for v in scores.values())
    assert ((scores["punsafe"] >= 0) & (scores["punsafe"] <= 1)).all()


def test_weights_and_licences_are_small_and_shipped_together():
    files = {p.name: p.stat().st_size for p in WEIGHTS.iterdir()}
    assert sum(files.values()) < 6_000_000
    assert {"LICENSE-CLIP-based-NSFW-Detector.md", "LICENSE-aesthetic-predictor",
            "LICENSE-improved-aesthetic-predictor", "SOURCES.md"} <= files.keys()
    assert {h.licence for h in shipped_heads()} == {"MIT", "Apache-2.0"}


def test_a_file_that_is_not_a_head_is_refused_by_name(tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="broken.safetensors: not a safetensors head file"):
        read_head_file(bad)
    from safetensors.numpy import save_file
    bare = tmp_path / "bare.safetensors"
    save_file({"0.weight": np.zeros((1, 4), np.float32)}, str(bare), metadata={"kind": "nsfw"})
    with pytest.raises(ValueError, match="bare.safetensors: head file metadata lacks"):
        read_head_file(bare)
