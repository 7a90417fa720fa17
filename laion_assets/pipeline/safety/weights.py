"""Weights files of the safety models: a local path or an fsspec URI (`s3://...`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from laion_assets.pipeline.scoring.clip import fetch_remote, file_sha256


@dataclass(frozen=True)
class ModelFile:
    """A loaded state dict and where it came from (recorded with every output)."""

    source: str
    sha256: str
    state_dict: dict[str, torch.Tensor]


def load_model_file(source: str, cache_dir: str | None = None) -> ModelFile:
    """Load a torch state dict (tensors only: `weights_only`); errors name the file."""
    path = fetch_remote(source, cache_dir) if "://" in source else source
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ValueError(f"{source}: model file not found") from exc
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise ValueError(f"{source}: not a torch weights file ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{source}: expected a state dict of tensors")
    return ModelFile(source, file_sha256(path), state)


def load_into(module: torch.nn.Module, model_file: ModelFile, what: str) -> torch.nn.Module:
    """Load weights strictly; a mismatch names the file and the differing keys or shapes."""
    try:
        module.load_state_dict(model_file.state_dict, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{model_file.source}: does not fit {what}: {exc}") from exc
    return module.eval()
