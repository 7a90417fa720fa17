"""Synthetic captions with seeded random weights: a tiny CoCa config keeps generation quick.

Numbers are checked against open_clip's own computation, not against caption quality (the
weights are untrained: the captions are word salad).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import open_clip
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from laion_assets.pipeline.captions.generate import CaptionConfig, Captioner, load_captioner
from laion_assets.pipeline.captions.stage import CAPTIONS_SCHEMA, caption_shard
from laion_assets.pipeline.formats.webdataset import ImageTarWriter, iter_tar_images, url_key
from laion_assets.pipeline.scoring.clip import ClipModelSpec, load_clip

TINY = "coca_tiny"
open_clip.add_model_config(Path(__file__).with_name("coca_tiny.json"))
open_clip.add_model_config(Path(__file__).with_name("clip_tiny.json"))
CONFIG = CaptionConfig(model=TINY, pretrained=None, generation="top_p", candidates=4, keep=2,
                       max_tokens=8, seed=3, batch_size=2)


def _spec(seed: int = 0) -> ClipModelSpec:
    return ClipModelSpec(model=TINY, pretrained=None, seed=seed, num_workers=0)


@pytest.fixture(scope="module")
def models():
    return load_captioner(CONFIG), load_clip(_spec(seed=1))


def _png(seed: int, broken: bool = False) -> bytes:
    if broken:
        return b"not an image"
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def shard(tmp_path):
    """A download stage's results table and one tar of 3 images (+1 broken, +1 failed fetch)."""
    urls = [f"https://img.example/{i}.png" for i in range(5)]
    with open(tmp_path / "00000.tar", "wb") as handle, ImageTarWriter(handle) as tar:
        for i, url in enumerate(urls[:4]):
            tar.add(url_key(url), _png(i, broken=i == 3), {"url": url}, ext="png")
    results = pa.table({
        "url_key": [url_key(u) for u in urls],
        "status": ["ok"] * 4 + ["failed"],
        "tar": ["00000.tar"] * 4 + [None],
    })
    return results, lambda name: open(tmp_path / name, "rb")


def _run(models, shard, previous=None, config=None):
    captioner, ranker = models
    if config is not None:
        captioner = type(captioner)(captioner.coca, config)
    results, open_tar = shard
    sink = io.BytesIO()
    summary = caption_shard(captioner, ranker, results, open_tar, sink, previous=previous)
    return summary, pq.read_table(io.BytesIO(sink.getvalue()))


def test_shapes_and_counts(models, shard):
    summary, table = _run(models, shard)
    assert table.schema.equals(CAPTIONS_SCHEMA)
    assert (summary.rows, summary.captioned, summary.carried_over) == (3, 3, 0)
    assert summary.failed_decodes == 1
    assert table.num_rows == 3
    for row in table.to_pylist():
        assert 1 <= len(row["all_captions"]) <= CONFIG.keep
        assert len(row["all_similarities"]) == len(row["all_captions"])
        assert row["top_caption"] == row["all_captions"][0]
        assert "<start_of_text>" not in row["top_caption"]


def test_deterministic_under_a_fixed_seed(models, shard):
    assert _run(models, shard)[1].equals(_run(models, shard)[1])
    other = _run(models, shard, config=CaptionConfig(**{**CONFIG.to_dict(), "seed": 4}))[1]
    assert other.column("all_captions") != _run(models, shard)[1].column("all_captions")


def test_ranking_is_sorted_clip_similarity(models, shard):
    """Kept captions are the candidates with the highest cosine, by open_clip's own towers."""
    _, ranker = models
    _, table = _run(models, shard)
    _, open_tar = shard
    images = {}
    with open_tar("00000.tar") as handle:
        for key, data, _ in iter_tar_images(handle):
            images[key] = data
    tokenizer = open_clip.get_tokenizer(TINY)
    for row in table.to_pylist():
        image = ranker.preprocess(Image.open(io.BytesIO(images[row["url_key"]])).convert("RGB"))
        with torch.no_grad():
            img = F.normalize(ranker.model.encode_image(image[None]), dim=-1)
            txt = F.normalize(ranker.model.encode_text(tokenizer(row["all_captions"])), dim=-1)
        expected = (txt @ img.T).squeeze(1).numpy()
        np.testing.assert_allclose(row["all_similarities"], expected, atol=1e-5)
        assert row["all_similarities"] == sorted(row["all_similarities"], reverse=True)


def test_rerun_captions_nothing_new(models, shard):
    _, first = _run(models, shard)
    summary, second = _run(models, shard, previous=first)
    assert (summary.captioned, summary.carried_over, summary.rows) == (0, 3, 3)
    assert second.equals(first)


def test_changed_config_recaptions(models, shard):
    _, first = _run(models, shard)
    changed = CaptionConfig(**{**CONFIG.to_dict(), "keep": 1})
    summary, second = _run(models, shard, previous=first, config=changed)
    assert (summary.captioned, summary.carried_over) == (3, 0)
    assert all(len(c) == 1 for c in second.column("all_captions").to_pylist())


def test_beam_search_gives_one_candidate(models, shard):
    beam = CaptionConfig(model=TINY, pretrained=None, generation="beam_search", num_beams=3,
                         keep=2, max_tokens=8, batch_size=2)
    _, table = _run(models, shard, config=beam)
    assert all(len(c) == 1 for c in table.column("all_captions").to_pylist())


def test_a_clip_model_without_a_decoder_is_refused():
    clip = load_clip(ClipModelSpec(model="clip_tiny", pretrained=None, num_workers=0))
    with pytest.raises(ValueError, match="not a CoCa model"):
        Captioner(clip, CONFIG)



def test_the_decoder_projection_is_initialised_whatever_memory_held():
    """open_clip leaves CoCa's `text_decoder.text_projection` as `torch.empty`: in a long test
    run it held NaN from freed tensors and every caption failed. It is seeded now."""
    for _ in range(3):
        garbage = [torch.full((1000, 1000), float("nan")) for _ in range(30)]
        del garbage
        captioner = load_captioner(CONFIG)
        projection = captioner.coca.model.text_decoder.text_projection
        assert torch.isfinite(projection).all()
        torch.testing.assert_close(projection, load_captioner(CONFIG).coca.model
                                   .text_decoder.text_projection)
