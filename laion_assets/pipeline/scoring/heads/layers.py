"""Torch layers of LAION's heads, built from the layer list stored in each head file.

A head file is a safetensors file: float32 tensors named as the state dict of an
`nn.Sequential` of these layers, and a `layers` metadata entry (JSON) listing them in order.
"""

from __future__ import annotations

import torch
from torch import nn


class CategoricalColumns(nn.Module):
    """autokeras' MultiCategoryEncoding: NaN → 0, and in each categorical column the value's
    index in a vocabulary (0 when unknown). TensorFlow looks up the value formatted as `%f`;
    the stored keys are that string as `2 * round(|v| * 1e6) + sign bit`, which this layer
    computes exactly from float32 (|v| * 1e6 is exact in float64; rounding is half-even,
    as printf rounds an exact binary value)."""

    def __init__(self, dim: int, columns: list[int], sizes: list[int], oov_index: int) -> None:
        super().__init__()
        self.columns, self.oov_index = list(columns), float(oov_index)
        for column, size in zip(columns, sizes, strict=True):
            self.register_buffer(f"keys_{column}", torch.zeros(size, dtype=torch.int64))
            self.register_buffer(f"index_{column}", torch.zeros(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(torch.isnan(x), torch.zeros_like(x), x)
        for column in self.columns:
            keys, index = getattr(self, f"keys_{column}"), getattr(self, f"index_{column}")
            value = x[:, column]
            key = 2 * torch.round(value.double().abs() * 1e6).long() + torch.signbit(value).long()
            at = torch.searchsorted(keys, key).clamp(max=len(keys) - 1)
            found = keys[at] == key
            x[:, column] = torch.where(found, index[at], torch.full_like(value, self.oov_index))
        return x


class Normalization(nn.Module):
    """Keras' Normalization layer: (x - mean) / max(sqrt(variance), epsilon)."""

    def __init__(self, dim: int, epsilon: float) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("variance", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / torch.clamp(self.variance.sqrt(), min=self.epsilon)


class TwoPrompts(nn.Module):
    """clip-retrieval's violence detector as a probability: softmax over the image's cosines
    with two prompt embeddings at CLIP's logit scale, the `positive` row's share. Above 0.5
    exactly when clip-retrieval's argmax picks the positive row."""

    def __init__(self, dim: int, logit_scale: float, positive: int) -> None:
        super().__init__()
        self.logit_scale, self.positive = logit_scale, positive
        self.register_buffer("prompts", torch.zeros(2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logit_scale * x @ self.prompts.T, dim=-1)[:, self.positive:
                                                                              self.positive + 1]


def build_layer(op: dict, tensor_shapes: dict[str, tuple[int, ...]], index: int) -> nn.Module:
    """One layer from its entry in the head file's layer list."""
    kind = op["op"]
    if kind == "categorical":
        sizes = [tensor_shapes[f"{index}.keys_{c}"][0] for c in op["columns"]]
        return CategoricalColumns(op["dim"], op["columns"], sizes, op["oov_index"])
    if kind == "normalize":
        return Normalization(op["dim"], op["epsilon"])
    if kind == "linear":
        return nn.Linear(op["in"], op["out"])
    if kind == "two_prompts":
        return TwoPrompts(op["dim"], op["logit_scale"], op["positive"])
    simple = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "dropout": nn.Identity}
    if kind not in simple:
        raise ValueError(f"layer {index}: unknown op {kind!r}")
    return simple[kind]()


def build(layers: list[dict], tensor_shapes: dict[str, tuple[int, ...]]) -> nn.Sequential:
    """The head as an `nn.Sequential` (dropout is inference-time identity)."""
    return nn.Sequential(*(build_layer(op, tensor_shapes, i) for i, op in enumerate(layers)))
