"""LAION's NSFW MLP heads against a hand-written torch computation of the same weights."""

import numpy as np
import pytest
import torch

from laion_assets.pipeline.safety.nsfw_head import (
    AUTOKERAS_WIDTHS,
    H14NsfwHead,
    NsfwHead,
    nsfw_head,
)
from laion_assets.pipeline.safety.weights import load_model_file
from laion_assets.pipeline.scoring.heads import matching_head


def _embeddings(n: int, dim: int, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _random_head(dim: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of `nsfw_head(dim)` with seeded weights and non-trivial norm buffers."""
    torch.manual_seed(seed)
    head = nsfw_head(dim)
    state = {k: v.clone() for k, v in head.state_dict().items()}
    if "norm.mean" in state:
        g = torch.Generator().manual_seed(seed + 1)
        state["norm.mean"] = torch.randn(dim, generator=g) * 0.02
        # about the variance of L2-normalised embeddings; one zero variance (keras' epsilon)
        state["norm.variance"] = (torch.rand(dim, generator=g) + 0.5) / dim
        state["norm.variance"][0] = 0.0
        return state
    # H14: no hidden biases (the output is all signal, no cancellation) and a wide output
    # (about 0.5 +- 0.25) so that the clamp to 0..1 matters on both sides
    for name in ("layers.0", "layers.3", "layers.6", "layers.9", "layers.12", "layers.15"):
        state[f"{name}.bias"] = torch.zeros_like(state[f"{name}.bias"])
    head.load_state_dict(state)
    with torch.no_grad():
        raw = head.eval().layers(torch.from_numpy(_embeddings(256, dim, seed=seed + 1)))
    spread = (raw - state["layers.16.bias"]).std()
    state["layers.16.weight"] = state["layers.16.weight"] / spread * 0.25
    state["layers.16.bias"] = torch.tensor([0.5])
    return state


# fp32 against float64: the autokeras head stays within 1e-7; the H14 head (6 layers of up to
# 2048 inputs, its output stretched to span the clamps) drifts up to ~1e-6
TOLERANCE = {512: 1e-6, 768: 1e-6, 1024: 2e-6}


def _save(state: dict, path) -> str:
    torch.save(state, path)
    return str(path)


def _dense(x: torch.Tensor, state: dict, name: str) -> torch.Tensor:
    return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]


def _reference(x: np.ndarray, state: dict, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(punsafe, output before clamping or sigmoid), by hand, in float64."""
    x = torch.from_numpy(x).double()
    state = {k: v.double() for k, v in state.items()}
    with torch.no_grad():
        if dim == 1024:
            for name in ("layers.0", "layers.3", "layers.6", "layers.9", "layers.12"):
                x = torch.relu(_dense(x, state, name))
            raw = _dense(_dense(x, state, "layers.15"), state, "layers.16")[:, 0]
            return raw.clamp(0, 1).numpy(), raw.numpy()
        std = torch.sqrt(state["norm.variance"])
        epsilon = torch.tensor(1e-7, dtype=torch.float64)
        x = (x - state["norm.mean"]) / torch.where(std > 1e-7, std, epsilon)
        depth = len(AUTOKERAS_WIDTHS[dim]) + 1  # hidden Dense layers, then the output
        for k in range(1, depth):
            x = torch.relu(_dense(x, state, f"linear_{k}"))
        raw = _dense(x, state, f"linear_{depth}")[:, 0]
        return torch.sigmoid(raw).numpy(), raw.numpy()


@pytest.mark.parametrize("dim", [512, 768, 1024])
def test_punsafe_equals_a_direct_computation(tmp_path, dim):
    state = _random_head(dim)
    path = _save(state, tmp_path / f"head{dim}.pt")
    head = NsfwHead(load_model_file(path), dim)
    x = _embeddings(256, dim)
    if dim != 1024:  # the zero-variance input equals its mean: 0/epsilon, not 0/0
        x[:, 0] = state["norm.mean"][0].item()
    expected, raw = _reference(x, state, dim)
    got = head.punsafe(x)
    assert got.dtype == np.float32 and got.shape == (256,)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[dim])
    assert ((got >= 0) & (got <= 1)).all()
    assert got.std() > 1e-3  # the weights make a difference between inputs
    if dim == 1024:  # both clamps were exercised
        assert (raw < 0).any() and (raw > 1).any() and ((raw > 0) & (raw < 1)).any()
        assert head.module.layout == "laion-h14" and isinstance(head.module, H14NsfwHead)
    else:
        assert head.module.layout == "laion-autokeras"
    # batching does not change results, and fp16 embeddings are scored in fp32
    np.testing.assert_allclose(head.punsafe(x, batch_size=7), got, rtol=0, atol=TOLERANCE[dim])
    np.testing.assert_allclose(head.punsafe(x.astype(np.float16)),
                               _reference(x.astype(np.float16).astype(np.float32), state, dim)[0],
                               rtol=0, atol=TOLERANCE[dim])
    assert head.punsafe(np.zeros((0, dim), np.float32)).shape == (0,)


def test_identity_names_the_file(tmp_path):
    path = _save(_random_head(512), tmp_path / "head.pt")
    identity = NsfwHead(load_model_file(path), 512).identity()
    assert identity["source"] == path
    assert identity["layout"] == "laion-autokeras"
    assert len(identity["sha256"]) == 64


@pytest.mark.parametrize(("saved", "loaded"), [(512, 768), (768, 512), (1024, 768), (768, 1024)])
def test_weights_for_another_width_are_refused(tmp_path, saved, loaded):
    path = _save(_random_head(saved), tmp_path / f"head{saved}.pt")
    with pytest.raises(ValueError, match=f"head{saved}.pt") as info:
        NsfwHead(load_model_file(path), loaded)
    assert f"width {loaded}" in str(info.value)


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "head.pt"
    path.write_bytes(b"this is not a torch checkpoint\n" * 10)
    with pytest.raises(ValueError, match="head.pt"):
        load_model_file(str(path))
    with pytest.raises(ValueError, match="missing.pt"):
        load_model_file(str(tmp_path / "missing.pt"))
    not_tensors = _save({"linear_1.weight": [1.0, 2.0]}, tmp_path / "lists.pt")
    with pytest.raises(ValueError, match="lists.pt"):
        load_model_file(not_tensors)


def test_a_state_dict_nested_under_state_dict_loads(tmp_path):
    state = _random_head(768, seed=3)
    path = _save({"state_dict": state, "epoch": 7}, tmp_path / "nested.pt")
    head = NsfwHead(load_model_file(path), 768)
    x = _embeddings(16, 768, seed=4)
    np.testing.assert_allclose(head.punsafe(x), _reference(x, state, 768)[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize(("dim", "model"), [(512, "ViT-B-32"), (768, "ViT-L-14")])
def test_the_autokeras_layout_is_the_one_in_laions_detector(dim, model):
    """ViT-B/32's detector is Dense 32-32 (not the ViT-L/14 layout): the state dict layout
    here has the same Dense shapes, in order, as the head converted from LAION's file."""
    shipped = matching_head("nsfw", model, dim)
    linear = [(op["out"], op["in"]) for op in shipped.layers if op["op"] == "linear"]
    ours = [tuple(v.shape) for k, v in nsfw_head(dim).state_dict().items()
            if k.startswith("linear_") and k.endswith(".weight")]
    assert ours == linear
    assert [op["op"] for op in shipped.layers][-1] == "sigmoid"
