"""The synthetic captions stage: LAION-COCO-style captions for every fetched image of a shard.

Images are read once, tar by tar, from the download stage's resized images; each is
preprocessed for the captioning model and for the ranking model. The output holds one row per
fetched image (`url_key`): the best caption, the kept captions and their similarities, and the
fingerprint of what made them (`caption_identity`: both models and the generation config).
A re-run carries over every row whose identity is unchanged and captions only the rest.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from laion_assets.pipeline.captions.generate import Captioner, RankedCaptions, rank_captions
from laion_assets.pipeline.core.fingerprint import fingerprint
from laion_assets.pipeline.formats.webdataset import iter_tar_images
from laion_assets.pipeline.scoring.clip import ClipScorer

CAPTIONS_FILE = "captions.parquet"
CAPTIONS_SCHEMA = pa.schema([
    pa.field("url_key", pa.string(), nullable=False),
    pa.field("top_caption", pa.string(), nullable=False),
    pa.field("all_captions", pa.list_(pa.string()), nullable=False),
    pa.field("all_similarities", pa.list_(pa.float32()), nullable=False),
    pa.field("caption_identity", pa.string(), nullable=False),
])


@dataclass
class CaptionSummary:
    """What the committed captions file holds, and what this run added."""

    rows: int  # images with captions in the output
    captioned: int  # of which captioned by this run
    carried_over: int  # of which kept from the previous output (same identity)
    failed_decodes: int  # fetched images that did not decode (no caption)


def caption_identity(captioner: Captioner, ranker: ClipScorer) -> str:
    """Fingerprint of the captioning model, the ranking model and the generation config."""
    return fingerprint(captioner.identity.to_dict(), ranker.identity.to_dict(),
                       captioner.config.to_dict())


def caption_shard(
    captioner: Captioner, ranker: ClipScorer, results: pa.Table,
    open_tar: Callable[[str], BinaryIO], sink: BinaryIO, previous: pa.Table | None = None,
    log: Callable[[str], None] | None = None, log_every: int = 10,
) -> CaptionSummary:
    """Caption every fetched image in `results` (the download stage's table) into `sink`."""
    identity = caption_identity(captioner, ranker)
    ok = results.filter(pa.compute.equal(results.column("status"), "ok"))
    wanted = dict(zip(ok.column("url_key").to_pylist(), ok.column("tar").to_pylist(),
                      strict=True))
    kept = _reusable(previous, identity, set(wanted))
    todo = {key: tar for key, tar in wanted.items() if key not in kept.keys_}
    captioned = failed = 0
    with pq.ParquetWriter(sink, CAPTIONS_SCHEMA, compression="zstd") as writer:
        if kept.table.num_rows:
            writer.write_table(kept.table)
        batches = _image_batches(todo, open_tar, captioner, ranker,
                                 captioner.config.batch_size)
        for number, (keys, coca_in, rank_in, bad) in enumerate(batches):
            failed += bad
            if not keys:
                continue
            ranked = rank_captions(ranker, ranker.encode_images(rank_in),
                                   captioner.candidates(coca_in, number), captioner.config.keep)
            writer.write_table(_rows(keys, ranked, identity))
            captioned += len(keys)
            if log is not None and (number + 1) % log_every == 0:
                log(f"{captioned}/{len(todo)} images captioned")
    return CaptionSummary(kept.table.num_rows + captioned, captioned, kept.table.num_rows,
                          failed)


@dataclass
class _Kept:
    table: pa.Table
    keys_: set[str]


def _reusable(previous: pa.Table | None, identity: str, wanted: set[str]) -> _Kept:
    """Previous rows made by the same models and config, for images still fetched."""
    if previous is None or previous.num_rows == 0:
        return _Kept(CAPTIONS_SCHEMA.empty_table(), set())
    same = previous.filter(pa.compute.equal(previous.column("caption_identity"), identity))
    keys = same.column("url_key").to_pylist()
    mask = pa.array([k in wanted for k in keys], pa.bool_())
    table = same.filter(mask).cast(CAPTIONS_SCHEMA)
    return _Kept(table, set(table.column("url_key").to_pylist()))


def _image_batches(todo: dict[str, str], open_tar: Callable[[str], BinaryIO],
                   captioner: Captioner, ranker: ClipScorer, batch_size: int
                   ) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor, int]]:
    """(keys, CoCa inputs, ranking inputs, undecodable count) per batch, tar by tar."""
    keys, coca_in, rank_in, bad = [], [], [], 0
    by_tar: dict[str, set[str]] = {}
    for key, tar in todo.items():
        by_tar.setdefault(tar, set()).add(key)
    for tar in sorted(by_tar):
        with open_tar(tar) as handle:
            for key, data, _ in iter_tar_images(handle):
                if key not in by_tar[tar]:
                    continue
                image = _decode(data)
                if image is None:
                    bad += 1
                    continue
                keys.append(key)
                coca_in.append(captioner.preprocess(image))
                rank_in.append(ranker.preprocess(image))
                if len(keys) == batch_size:
                    yield keys, torch.stack(coca_in), torch.stack(rank_in), bad
                    keys, coca_in, rank_in, bad = [], [], [], 0
    if keys or bad:
        empty = torch.zeros(0)
        yield (keys, torch.stack(coca_in) if keys else empty,
               torch.stack(rank_in) if keys else empty, bad)


def _decode(data: bytes) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _rows(keys: list[str], ranked: list[RankedCaptions], identity: str) -> pa.Table:
    return pa.Table.from_pydict({
        "url_key": keys,
        "top_caption": [r.top for r in ranked],
        "all_captions": [r.captions for r in ranked],
        "all_similarities": [r.similarities for r in ranked],
        "caption_identity": [identity] * len(keys),
    }, schema=CAPTIONS_SCHEMA)
