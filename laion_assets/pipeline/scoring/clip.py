"""CLIP scoring of image-text pairs with open_clip: L2-normalised embeddings and cosine similarity.

`load_clip(spec)` loads a model once; `ClipScorer.score(items)` turns `(pair_id, image bytes,
text)` items into `ScoredBatch`es, in the order of the items. Images are decoded and
preprocessed by `torch.utils.data.DataLoader` workers while the model runs the previous batch:
the source is read once, by a thread in this process that queues chunks of `batch_size` items
for the workers (the workers never iterate the source themselves, so a generator over an open
file or an S3 stream is safe), and the batches are put back in source order. Each distinct text
of a batch is tokenised and encoded once. Image bytes that fail to decode do not stop the run:
the pair gets zero embeddings and a NaN similarity, `ok` is False, and `scorer.failed` counts it.

No threshold is applied here: filtering on similarity is a later stage's decision.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import posixpath
import queue
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import fsspec
import numpy as np
import open_clip
import open_clip.pretrained
import open_clip.transformer
import torch
import torch.nn.functional as F
from fsspec.implementations.local import LocalFileSystem
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset

from laion_assets.pipeline.core.files import atomic_local_file

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "laion_assets" / "clip"
_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
_POLL_SECONDS = 0.1

Item = tuple[int, bytes, str]


@dataclass(frozen=True)
class ClipModelSpec:
    """Which CLIP model to load, where, and how to feed it."""

    model: str = "ViT-B-32"
    # an open_clip tag (LAION's ViT-B/32 weights by default), a local file, an fsspec URI
    # (s3://...) copied into cache_dir first, or None for seeded random weights ("untrained")
    pretrained: str | None = "laion2b_s34b_b79k"
    device: str = "auto"  # "auto": cuda if available, else cpu
    precision: str = "auto"  # "auto": fp16 on CUDA, fp32 on CPU; "fp16"/"bf16" need CUDA
    batch_size: int = 256
    seed: int = 0  # random weights when pretrained is None
    # DataLoader workers decoding images; 0 = in this process; None: 1 on CPU, up to 12 on
    # CUDA (one worker prepares ~300 images/s, a GPU scores thousands)
    num_workers: int | None = None
    cache_dir: str | None = None  # remote weights (and open_clip downloads)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: expected one of {PRECISIONS}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {self.batch_size}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be 0 or more, not {self.num_workers}")
        if self.model.startswith(("hf-hub:", "local-dir:")):
            raise ValueError(f"model {self.model!r}: give a model name and `pretrained`; "
                             "schema models (hf-hub:, local-dir:) load weights we cannot identify")

    def decode_workers(self, device_type: str) -> int:
        """`num_workers`, or for None: 1 on CPU, one per core up to 12 on CUDA."""
        if self.num_workers is not None:
            return self.num_workers
        return min(os.cpu_count() or 1, 12) if device_type == "cuda" else 1


@dataclass(frozen=True)
class ModelIdentity:
    """What produced a set of embeddings; recorded with every output."""

    model: str
    pretrained: str  # the tag, path or URI asked for; "none" when untrained
    weights_sha256: str  # of the weights file loaded; "untrained" when none
    embed_dim: int
    precision: str
    device: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ScoredBatch:
    """Scores of one batch of pairs, in input order."""

    pair_ids: np.ndarray  # int64 [n]
    image_embeddings: np.ndarray  # float16 [n, d], L2-normalised (zeros where not ok)
    text_embeddings: np.ndarray  # float16 [n, d], L2-normalised (zeros where not ok)
    similarity: np.ndarray  # float32 [n], cosine from the fp32 embeddings (NaN where not ok)
    ok: np.ndarray  # bool [n]: False where the image bytes did not decode

    def __len__(self) -> int:
        return len(self.pair_ids)


# -- device, precision and weights ----------------------------------------------------------


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_precision(precision: str, device: str) -> str:
    """The precision to run at; fp16/bf16 autocast is only offered on CUDA."""
    on_cuda = device.startswith("cuda")
    if precision == "auto":
        return "fp16" if on_cuda else "fp32"
    if precision in _AUTOCAST_DTYPES and not on_cuda:
        raise ValueError(f"precision {precision!r} needs a CUDA device, not {device!r}; use fp32")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
    return precision


@dataclass(frozen=True)
class ResolvedWeights:
    """What to pass to open_clip as `pretrained`, and how to name it in the identity."""

    argument: str | None  # open_clip's `pretrained`: a tag, a local path, or None
    label: str
    sha256: str


def resolve_weights(spec: ClipModelSpec) -> ResolvedWeights:
    """Find (copying or downloading if needed) the weights file of a spec, and hash it."""
    source = spec.pretrained
    if source is None:
        return ResolvedWeights(None, "none", "untrained")
    if "://" in source:
        path = fetch_remote(source, spec.cache_dir)
        return ResolvedWeights(str(path), source, file_sha256(path))
    tag_cfg = open_clip.get_pretrained_cfg(spec.model, source)
    if tag_cfg:
        return ResolvedWeights(source, source, file_sha256(_tag_file(tag_cfg, spec.cache_dir)))
    if Path(source).is_file():
        return ResolvedWeights(source, source, file_sha256(source))
    raise ValueError(f"pretrained {source!r}: neither an open_clip tag of {spec.model!r} "
                     f"({open_clip.list_pretrained_tags_by_model(spec.model)}) nor a file")


def _tag_file(tag_cfg: dict, cache_dir: str | None) -> str:
    """The local file open_clip loads for a pretrained tag.

    open_clip's `create_model` resolves a tag with `open_clip.pretrained.download_pretrained(cfg,
    cache_dir=cache_dir)` (a URL download or `hf_hub_download`, both cached on disk). We call the
    same function with the same `cache_dir` first: it downloads the file (or finds it cached) and
    returns its path, and `create_model` then finds the same cached file.
    """
    path = open_clip.pretrained.download_pretrained(tag_cfg, cache_dir=cache_dir)
    if not path or not Path(path).is_file():
        raise RuntimeError(f"open_clip resolved no weights file for {tag_cfg}")
    return path


def fetch_remote(uri: str, cache_dir: str | None) -> Path:
    """A local copy of a weights file at an fsspec URI (cached, keyed by URI and version)."""
    fs, path = fsspec.core.url_to_fs(uri)
    if isinstance(fs, LocalFileSystem):
        return Path(path)
    key = hashlib.sha256(f"{uri}\n{fs.ukey(path)}".encode()).hexdigest()[:16]
    target = Path(cache_dir or DEFAULT_CACHE_DIR) / f"{key}-{posixpath.basename(path)}"
    if not target.is_file():
        with fs.open(path, "rb") as source, atomic_local_file(target) as out:
            shutil.copyfileobj(source, out, 16 << 20)
    return target


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


# -- loading --------------------------------------------------------------------------------


def load_clip(spec: ClipModelSpec) -> ClipScorer:
    """Load the model of a spec (slow: do it once per process and reuse the scorer)."""
    device = resolve_device(spec.device)
    precision = resolve_precision(spec.precision, device)
    weights = resolve_weights(spec)
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the global RNG
        torch.manual_seed(spec.seed)
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.model, pretrained=weights.argument, device=device, cache_dir=spec.cache_dir)
        if weights.argument is None:
            _init_left_out_parameters(model)
    _require_finite(model, spec.model)
    model.eval()
    embed_dim = open_clip.get_model_config(spec.model)["embed_dim"]
    identity = ModelIdentity(model=spec.model, pretrained=weights.label,
                             weights_sha256=weights.sha256, embed_dim=embed_dim,
                             precision=precision, device=device)
    return ClipScorer(model, preprocess, open_clip.get_tokenizer(spec.model), identity, spec)


def _init_left_out_parameters(model: torch.nn.Module) -> None:
    """Initialise what open_clip creates with `torch.empty` and never initialises.

    CoCa's text decoder (`MultimodalTransformer`, open_clip 3.3) never runs its own
    `init_parameters` (it would fail: it reads a `transformer` attribute the class lacks), so
    with random weights its `text_projection` holds whatever memory held: zeros in a fresh
    process, NaN or huge values in a long-lived one. It gets the std that method intends.
    """
    for module in model.modules():
        if isinstance(module, open_clip.transformer.MultimodalTransformer):
            torch.nn.init.normal_(module.text_projection, std=module.width ** -0.5)


def _require_finite(model: torch.nn.Module, name: str) -> None:
    """Refuse weights holding NaN or infinity (they give NaN embeddings, silently)."""
    bad = [key for key, value in model.named_parameters() if not torch.isfinite(value).all()]
    if bad:
        raise ValueError(f"model {name!r}: parameters {bad[:5]} hold NaN or infinite values")


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


# -- scoring --------------------------------------------------------------------------------


class ClipScorer:
    """A loaded CLIP model that scores batches of image-text pairs (one `score` at a time)."""

    def __init__(self, model: torch.nn.Module, preprocess: Callable, tokenizer: Callable,
                 identity: ModelIdentity, spec: ClipModelSpec) -> None:
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.identity, self.spec = identity, spec
        self.device = _model_device(model)
        self.failed = 0  # pairs whose image did not decode, over all `score` calls

    def score(self, items: Iterable[Item]) -> Iterator[ScoredBatch]:
        """Score `(pair_id, image bytes, text)` items, one `ScoredBatch` per `batch_size`."""
        on_cuda = self.device.type == "cuda"
        batches = prepared_batches(items, self.preprocess, self.tokenizer, self.spec.batch_size,
                                   self.spec.decode_workers(self.device.type), pin_memory=on_cuda)
        for batch in batches:
            yield self._score(batch)

    def encode(self, images: torch.Tensor, tokens: torch.Tensor,
               text_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 L2-normalised embeddings on the CPU: images, and texts `tokens[text_index]`."""
        with torch.inference_mode():
            with self._autocast():
                image = self.model.encode_image(images.to(self.device, non_blocking=True))
                text = self.model.encode_text(tokens.to(self.device, non_blocking=True))
            image = F.normalize(image.float(), dim=-1)
            text = F.normalize(text.float(), dim=-1)[text_index.to(self.device)]
            return image.cpu(), text.cpu()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """fp32 L2-normalised text embeddings [len(texts), dim] (e.g. concept prompts)."""
        if not texts:
            return np.zeros((0, self.identity.embed_dim), np.float32)
        with torch.inference_mode(), self._autocast():
            text = self.model.encode_text(self.tokenizer(texts).to(self.device))
        return F.normalize(text.float(), dim=-1).cpu().numpy()

    def encode_images(self, images: torch.Tensor) -> np.ndarray:
        """fp32 L2-normalised image embeddings [n, dim] of preprocessed images."""
        with torch.inference_mode(), self._autocast():
            image = self.model.encode_image(images.to(self.device))
        return F.normalize(image.float(), dim=-1).cpu().numpy()

    def _autocast(self) -> AbstractContextManager:
        dtype = _AUTOCAST_DTYPES.get(self.identity.precision)
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _score(self, batch: PreparedBatch) -> ScoredBatch:
        ok = batch.ok.numpy()
        count, dim = len(ok), self.identity.embed_dim
        image_emb = np.zeros((count, dim), dtype=np.float16)
        text_emb = np.zeros((count, dim), dtype=np.float16)
        similarity = np.full(count, np.nan, dtype=np.float32)
        if ok.any():
            image, text = self.encode(batch.images, batch.tokens, batch.text_index)
            similarity[ok] = (image * text).sum(dim=-1).numpy()
            image_emb[ok] = image.half().numpy()
            text_emb[ok] = text.half().numpy()
        self.failed += int(count - ok.sum())
        return ScoredBatch(batch.pair_ids.numpy().astype(np.int64, copy=False), image_emb,
                           text_emb, similarity, ok)


# -- data loading ---------------------------------------------------------------------------


class PreparedBatch(NamedTuple):
    """A batch ready for the model, as the DataLoader's collate function builds it."""

    chunk: int  # position of the batch in the source
    pair_ids: torch.Tensor  # int64 [n]
    ok: torch.Tensor  # bool [n]
    images: torch.Tensor  # float [k, 3, H, W]: the k images that decoded
    tokens: torch.Tensor  # int64 [u, context]: the distinct texts of those k pairs
    text_index: torch.Tensor  # int64 [k]: row of `tokens` for each decoded image


def prepared_batches(items: Iterable[Item], preprocess: Callable, tokenizer: Callable,
                     batch_size: int, num_workers: int,
                     pin_memory: bool = False) -> Iterator[PreparedBatch]:
    """Decode, preprocess and tokenise items in DataLoader workers; batches in source order."""
    collate = _Collate(tokenizer)
    if num_workers == 0:
        dataset = PairDataset(preprocess, chunks=enumerate(chunked(items, batch_size)))
        yield from DataLoader(dataset, batch_size=batch_size, collate_fn=collate,
                              pin_memory=pin_memory)
        return
    context = multiprocessing.get_context()
    feeder = _Feeder(items, batch_size, num_workers, context)
    dataset = PairDataset(preprocess, chunk_queue=feeder.queue, stop=feeder.stop)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate,
                        num_workers=num_workers, multiprocessing_context=context,
                        pin_memory=pin_memory, in_order=False)
    batches = iter(loader)  # starts the workers before the feeder thread exists
    feeder.start()
    try:
        yield from in_chunk_order(batches)
    finally:
        feeder.close()
        del batches  # shuts the workers down
    if feeder.error is not None:
        raise feeder.error


class PairDataset(IterableDataset):
    """`(chunk, pair_id, image tensor or None, text)` for the items of source chunks.

    The chunks come from an iterator (no workers) or from a queue that a `_Feeder` fills (each
    worker takes whole chunks, so that each of its DataLoader batches is exactly one chunk).
    """

    def __init__(self, preprocess: Callable, chunks: Iterator[tuple[int, list[Item]]] | None = None,
                 chunk_queue: Any = None, stop: Any = None) -> None:
        self.preprocess, self.chunks = preprocess, chunks
        self.chunk_queue, self.stop = chunk_queue, stop

    def __iter__(self) -> Iterator[tuple[int, int, torch.Tensor | None, str]]:
        chunks = self.chunks if self.chunk_queue is None else self._queued_chunks()
        for chunk, items in chunks:
            for pair_id, data, text in items:
                yield chunk, int(pair_id), decode_image(data, self.preprocess), text

    def _queued_chunks(self) -> Iterator[tuple[int, list[Item]]]:
        while True:
            try:
                entry = self.chunk_queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if entry is None:
                return
            yield entry


def decode_image(data: bytes, preprocess: Callable) -> torch.Tensor | None:
    """The model input for image bytes, or None if they do not decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return preprocess(image)
    except Exception:  # any undecodable or odd image: the pair is marked failed, not the run
        return None


class _Collate:
    """Stack the decoded images of a batch and tokenise each of its distinct texts once."""

    def __init__(self, tokenizer: Callable) -> None:
        self.tokenizer = tokenizer

    def __call__(self, rows: list[tuple[int, int, torch.Tensor | None, str]]) -> PreparedBatch:
        chunks = {row[0] for row in rows}
        if len(chunks) != 1:
            raise RuntimeError(f"a batch spans source chunks {sorted(chunks)}")
        good = [row for row in rows if row[2] is not None]
        texts = [row[3] for row in good]
        unique = list(dict.fromkeys(texts))
        position = {text: i for i, text in enumerate(unique)}
        return PreparedBatch(
            chunk=rows[0][0],
            pair_ids=torch.tensor([row[1] for row in rows], dtype=torch.int64),
            ok=torch.tensor([row[2] is not None for row in rows], dtype=torch.bool),
            images=torch.stack([row[2] for row in good]) if good else torch.empty(0),
            tokens=self.tokenizer(unique) if unique else torch.empty(0, dtype=torch.long),
            text_index=torch.tensor([position[text] for text in texts], dtype=torch.int64),
        )


class _Feeder:
    """A thread that reads the source in this process and queues its chunks for the workers."""

    def __init__(self, items: Iterable[Item], batch_size: int, workers: int, context: Any) -> None:
        self.items, self.batch_size, self.workers = items, batch_size, workers
        self.queue = context.Queue(maxsize=2 * workers)
        self.stop = context.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="clip-feeder", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        self.queue.cancel_join_thread()  # unread chunks must not block interpreter exit
        self.queue.close()

    def _run(self) -> None:
        try:
            for entry in enumerate(chunked(self.items, self.batch_size)):
                if not self._put(entry):
                    return
        except BaseException as exc:  # re-raised by the consumer once the workers drain
            self.error = exc
        for _ in range(self.workers):
            self._put(None)

    def _put(self, entry: tuple[int, list[Item]] | None) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False


def chunked(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Lists of `size` items (the last may be shorter), with plain int/bytes/str values."""
    chunk: list[Item] = []
    for pair_id, data, text in items:
        chunk.append((int(pair_id), data, text))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def in_chunk_order(batches: Iterable[PreparedBatch]) -> Iterator[PreparedBatch]:
    """Batches sorted back into source order (workers finish them out of order)."""
    pending: dict[int, PreparedBatch] = {}
    expected = 0
    for batch in batches:
        pending[batch.chunk] = batch
        while expected in pending:
            yield pending.pop(expected)
            expected += 1
    if pending:
        raise RuntimeError(f"source chunks {sorted(pending)} arrived, chunk {expected} never did")
