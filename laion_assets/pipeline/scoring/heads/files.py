"""Head files: LAION's converted heads shipped in `weights/`, loaded as torch modules."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from laion_assets.pipeline.scoring.heads.layers import build

WEIGHTS = Path(__file__).resolve().parent / "weights"
KINDS = ("nsfw", "aesthetic", "violence")


@dataclass(frozen=True)
class HeadFile:
    """A head file's metadata: what it scores and on which CLIP model's embeddings."""

    name: str
    path: Path
    kind: str  # nsfw, aesthetic or violence
    output: str  # the column it fills: punsafe, aesthetic, pviolence
    clip_models: tuple[str, ...]  # open_clip model names (without -quickgelu)
    dim: int
    layers: list[dict]
    source: str  # repository@commit:file it was converted from
    source_sha256: str
    licence: str
    version: str  # e.g. "LAION-Aesthetics v2"; "" when the head has one version

    def matches(self, model: str, dim: int) -> bool:
        return dim == self.dim and model.removesuffix("-quickgelu") in self.clip_models


def read_head_file(path: str | Path) -> HeadFile:
    """A head file's metadata; errors name the file and what is missing."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except (OSError, SafetensorError) as exc:
        raise ValueError(f"{path}: not a safetensors head file ({exc})") from exc
    missing = {"kind", "output", "layers", "clip_models", "dim", "source"} - meta.keys()
    if missing:
        raise ValueError(f"{path}: head file metadata lacks {sorted(missing)}")
    if meta["kind"] not in KINDS:
        raise ValueError(f"{path}: kind {meta['kind']!r}, expected one of {KINDS}")
    return HeadFile(
        name=path.name.removesuffix(".safetensors"), path=path, kind=meta["kind"],
        output=meta["output"], clip_models=tuple(json.loads(meta["clip_models"])),
        dim=int(meta["dim"]), layers=json.loads(meta["layers"]), source=meta["source"],
        source_sha256=meta.get("source_sha256", ""), licence=meta.get("licence", ""),
        version=meta.get("version", ""))


class Head:
    """A loaded head: L2-normalised float embeddings [n, dim] in, one float32 score each."""

    def __init__(self, head_file: HeadFile, device: str = "cpu") -> None:
        tensors = load_file(str(head_file.path))
        module = build(head_file.layers, {k: tuple(v.shape) for k, v in tensors.items()})
        try:
            module.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{head_file.path}: tensors do not fit its layers: {exc}") from exc
        self.file, self.device = head_file, device
        self.module = module.eval().to(device)
        self.sha256 = hashlib.sha256(head_file.path.read_bytes()).hexdigest()

    def identity(self) -> dict:
        """Which head scored: recorded with every output."""
        f = self.file
        return {"head": f.name, "sha256": self.sha256, "source": f.source,
                "source_sha256": f.source_sha256, "licence": f.licence,
                "clip_models": list(f.clip_models), **({"version": f.version} if f.version else {})}

    def __call__(self, embeddings: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
        """float32 [n], computed in fp32."""
        out = np.empty(len(embeddings), np.float32)
        with torch.inference_mode():
            for start in range(0, len(embeddings), batch_size):
                chunk = torch.from_numpy(np.asarray(embeddings[start:start + batch_size],
                                                    np.float32))
                scores = self.module(chunk.to(self.device)).reshape(-1)
                out[start:start + len(chunk)] = scores.cpu().numpy()
        return out


@cache
def shipped_heads() -> tuple[HeadFile, ...]:
    """Every head file in the package, by name."""
    return tuple(read_head_file(p) for p in sorted(WEIGHTS.glob("*.safetensors")))


@cache
def load_shipped(name: str, device: str = "cpu") -> Head:
    """A shipped head by name (loaded once per process and device)."""
    for head_file in shipped_heads():
        if head_file.name == name:
            return Head(head_file, device)
    raise ValueError(f"no shipped head {name!r}: have {[h.name for h in shipped_heads()]}")
