"""The CLIP scorer against open_clip's own one-pair-at-a-time computation (random weights)."""

import dataclasses
import hashlib
import io
import json
import multiprocessing

import fsspec
import numpy as np
import open_clip
import open_clip.factory
import open_clip.pretrained
import pytest
import torch
from PIL import Image

from laion_assets.pipeline.scoring.clip import (
    ClipModelSpec,
    ClipScorer,
    load_clip,
    prepared_batches,
)

MODEL = "ViT-B-32"
TINY = "laion-assets-test-tiny"
BROKEN = 3
TEXTS = ["a red bicycle", "a cat on a sofa", "a red bicycle", "a broken picture",
         "a cat on a sofa", "sunset over the sea", "a red bicycle", "a cat on a sofa",
         "sunset over the sea", ""]


def _image_bytes(index: int) -> bytes:
    """Varied images: JPEG and PNG, RGB, grey and RGBA, square and not."""
    rng = np.random.default_rng(index)
    height, width = (256, 256) if index % 3 else (200, 320)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * (index + 1)) % 256, (y * 3) % 256, (x + y) % 256], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    out = io.BytesIO()
    if index % 4 == 1:
        image.putalpha(128)
        image.save(out, "PNG")
    elif index % 4 == 2:
        image.convert("L").save(out, "JPEG", quality=85)
    else:
        image.save(out, "JPEG", quality=90)
    return out.getvalue()


ITEMS = [(1000 + i, b"\x89PNG\r\n\x1a\nnot really" if i == BROKEN else _image_bytes(i), text)
         for i, text in enumerate(TEXTS)]


def _spec(**changes) -> ClipModelSpec:
    return dataclasses.replace(ClipModelSpec(model=MODEL, pretrained=None, device="cpu",
                                             batch_size=4), **changes)


def _with_workers(scorer: ClipScorer, num_workers: int) -> ClipScorer:
    spec = dataclasses.replace(scorer.spec, num_workers=num_workers)
    return ClipScorer(scorer.model, scorer.preprocess, scorer.tokenizer, scorer.identity, spec)


def _concat(batches) -> dict[str, np.ndarray]:
    batches = list(batches)
    return {field: np.concatenate([getattr(b, field) for b in batches])
            for field in ("pair_ids", "image_embeddings", "text_embeddings", "similarity", "ok")}


def _sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def scorer() -> ClipScorer:
    return load_clip(_spec(num_workers=2))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A tiny CLIP config (same tokenizer) for the weight-loading tests: small checkpoints."""
    config = {"embed_dim": 32,
              "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1,
                           "layers": 2}}
    path = tmp_path_factory.mktemp("configs") / f"{TINY}.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return TINY


@pytest.fixture(scope="module")
def seed1_scorer(tiny_model) -> ClipScorer:
    return load_clip(_spec(model=tiny_model, seed=1, num_workers=0))


@pytest.fixture(scope="module")
def checkpoint(seed1_scorer, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "tiny-seed1.pt"
    torch.save(seed1_scorer.model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def seed1_scores(seed1_scorer) -> dict[str, np.ndarray]:
    return _concat(seed1_scorer.score(ITEMS[:3]))


def _reference(model, preprocess, tokenizer, data: bytes, text: str):
    """open_clip's own computation for one pair: fp32, normalised, cosine."""
    with torch.inference_mode():
        image = model.encode_image(preprocess(Image.open(io.BytesIO(data))).unsqueeze(0))
        text_emb = model.encode_text(tokenizer([text]))
    image = image / image.norm(dim=-1, keepdim=True)
    text_emb = text_emb / text_emb.norm(dim=-1, keepdim=True)
    return image[0].numpy(), text_emb[0].numpy(), float((image * text_emb).sum())


# -- numerics -----------------------------------------------------------------------------


def test_batched_scores_match_open_clip_one_pair_at_a_time(scorer):
    batches = list(scorer.score(ITEMS))
    assert [len(b) for b in batches] == [4, 4, 2]
    got = _concat(batches)
    assert got["pair_ids"].dtype == np.int64
    assert got["pair_ids"].tolist() == [pair_id for pair_id, _, _ in ITEMS]
    assert got["image_embeddings"].dtype == got["text_embeddings"].dtype == np.float16
    assert got["similarity"].dtype == np.float32
    assert got["ok"].tolist() == [i != BROKEN for i in range(len(ITEMS))]

    torch.manual_seed(0)  # open_clip on its own, seeded as the spec says
    model, _, preprocess = open_clip.create_model_and_transforms(MODEL)
    model.eval()
    tokenizer = open_clip.get_tokenizer(MODEL)
    for row, (_, data, text) in enumerate(ITEMS):
        if row == BROKEN:
            continue
        image, text_emb, cosine = _reference(model, preprocess, tokenizer, data, text)
        assert abs(got["similarity"][row] - cosine) < 1e-5
        for name, expected in (("image_embeddings", image), ("text_embeddings", text_emb)):
            np.testing.assert_allclose(got[name][row].astype(np.float32), expected,
                                       rtol=1e-3, atol=1e-5)  # float16 rounding

    assert np.isnan(got["similarity"][BROKEN])
    assert not got["image_embeddings"][BROKEN].any() and not got["text_embeddings"][BROKEN].any()
    assert scorer.failed == 1
    norms = np.linalg.norm(got["image_embeddings"][got["ok"]].astype(np.float32), axis=1)
    np.testing.assert_allclose(norms, 1, atol=2e-3)


def test_without_workers_the_scores_are_the_same(scorer):
    with_workers = _concat(scorer.score(ITEMS[:6]))
    in_process = _concat(_with_workers(scorer, 0).score(ITEMS[:6]))
    for name, values in with_workers.items():
        np.testing.assert_array_equal(in_process[name], values)


def test_each_distinct_text_of_a_batch_is_encoded_once(scorer, monkeypatch):
    encoded: list[int] = []
    encode_text = scorer.model.encode_text

    def counting(tokens, *args, **kwargs):
        encoded.append(len(tokens))
        return encode_text(tokens, *args, **kwargs)

    monkeypatch.setattr(scorer.model, "encode_text", counting)
    batches = list(_with_workers(scorer, 0).score(ITEMS))
    # batch 1 has 2 distinct texts (and a broken image: its text is not encoded), batch 2 has 3
    assert encoded == [2, 3, 2]
    first = batches[0]
    np.testing.assert_array_equal(first.text_embeddings[0], first.text_embeddings[2])


def test_a_batch_of_broken_images_never_reaches_the_model(scorer):
    scorer = _with_workers(scorer, 0)
    items = [(1, b"", "empty"), (2, b"garbage", "garbage"), (3, ITEMS[0][1][:100], "truncated")]
    (batch,) = scorer.score(items)
    assert not batch.ok.any() and np.isnan(batch.similarity).all()
    assert scorer.failed == 3
    assert batch.image_embeddings.shape == (3, 512)


# -- weights and identity -----------------------------------------------------------------


def test_untrained_identity_and_same_seed_same_weights(scorer):
    assert scorer.identity.to_dict() == {
        "model": MODEL, "pretrained": "none", "weights_sha256": "untrained", "embed_dim": 512,
        "precision": "fp32", "device": "cpu"}
    json.dumps(scorer.identity.to_dict())
    torch.manual_seed(0)
    direct, _, _ = open_clip.create_model_and_transforms(MODEL)
    ours = scorer.model.state_dict()
    assert all(torch.equal(ours[name], value) for name, value in direct.state_dict().items())


def test_the_same_seed_gives_the_same_embeddings_and_another_seed_does_not(seed1_scores):
    again = load_clip(_spec(model=TINY, seed=1, num_workers=0))
    for name, values in _concat(again.score(ITEMS[:3])).items():
        np.testing.assert_array_equal(values, seed1_scores[name])
    seed0 = _concat(load_clip(_spec(model=TINY, seed=0, num_workers=0)).score(ITEMS[:3]))
    assert not np.array_equal(seed0["image_embeddings"], seed1_scores["image_embeddings"])
    assert not np.array_equal(seed0["text_embeddings"], seed1_scores["text_embeddings"])
    assert not np.allclose(seed0["similarity"], seed1_scores["similarity"])


def test_a_checkpoint_file_loads_by_path(checkpoint, seed1_scores):
    torch.manual_seed(1234)
    expected_rng = torch.rand(3)
    torch.manual_seed(1234)
    loaded = load_clip(_spec(model=TINY, pretrained=str(checkpoint), seed=0, num_workers=0))
    assert torch.equal(torch.rand(3), expected_rng)  # loading left the global RNG alone
    assert loaded.identity.pretrained == str(checkpoint)
    assert loaded.identity.weights_sha256 == _sha256(checkpoint)
    assert loaded.identity.embed_dim == 32
    got = _concat(loaded.score(ITEMS[:3]))
    for name, values in seed1_scores.items():
        np.testing.assert_array_equal(got[name], values)


def test_a_checkpoint_at_an_fsspec_uri_is_copied_to_the_cache(checkpoint, seed1_scores, tmp_path):
    uri = "memory://clip-weights/tiny-seed1.pt"
    with fsspec.open(uri, "wb") as out:
        out.write(checkpoint.read_bytes())
    spec = _spec(model=TINY, pretrained=uri, cache_dir=str(tmp_path), num_workers=0)
    loaded = load_clip(spec)
    assert loaded.identity.pretrained == uri
    assert loaded.identity.weights_sha256 == _sha256(checkpoint)
    (cached,) = tmp_path.iterdir()
    assert cached.name.endswith("-tiny-seed1.pt") and _sha256(cached) == _sha256(checkpoint)
    copied_at = cached.stat().st_mtime_ns
    np.testing.assert_array_equal(_concat(loaded.score(ITEMS[:3]))["similarity"],
                                  seed1_scores["similarity"])
    assert load_clip(spec).identity == loaded.identity
    assert cached.stat().st_mtime_ns == copied_at  # the second load used the cached copy


def test_an_open_clip_tag_records_the_file_open_clip_loads(checkpoint, seed1_scores,
                                                           monkeypatch):
    """No network here: a tag is registered for the tiny model, its download is the file."""
    tag_cfg = {"hf_hub": "example/tiny-clip/", "quick_gelu": False}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY, {"test_tag": tag_cfg})
    asked = []

    def download(cfg, prefer_hf_hub=True, cache_dir=None):
        asked.append(cfg)
        return str(checkpoint)

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", download)
    monkeypatch.setattr(open_clip.factory, "download_pretrained", download)
    loaded = load_clip(_spec(model=TINY, pretrained="test_tag", num_workers=0))
    assert loaded.identity.pretrained == "test_tag"
    assert loaded.identity.weights_sha256 == _sha256(checkpoint)
    assert len(asked) == 2 and asked[0] == asked[1]  # ours, then open_clip's: the same file
    np.testing.assert_array_equal(_concat(loaded.score(ITEMS[:3]))["similarity"],
                                  seed1_scores["similarity"])


def test_unknown_weights_are_refused():
    with pytest.raises(ValueError, match="neither an open_clip tag"):
        load_clip(_spec(pretrained="no-such-tag-or-file"))


def test_a_checkpoint_holding_nan_is_refused_by_name(seed1_scorer, tiny_model, tmp_path):
    state = seed1_scorer.model.state_dict()
    state["text_projection"] = torch.full_like(state["text_projection"], float("nan"))
    path = tmp_path / "nan.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match="text_projection.*NaN or infinite"):
        load_clip(_spec(model=tiny_model, pretrained=str(path), num_workers=0))


# -- precision and spec checks ------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_cpu_is_refused(precision):
    with pytest.raises(ValueError, match="needs a CUDA device"):
        load_clip(_spec(precision=precision))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs a CUDA device"):
            load_clip(_spec(device="auto", precision=precision))


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="precision"):
        ClipModelSpec(precision="fp8")
    with pytest.raises(ValueError, match="batch_size"):
        ClipModelSpec(batch_size=0)
    with pytest.raises(ValueError, match="schema"):
        ClipModelSpec(model="hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_on_cuda_matches_fp32():
    fp32 = _concat(load_clip(_spec(device="cuda", precision="fp32")).score(ITEMS))
    fp16_scorer = load_clip(_spec(device="cuda", precision="auto"))
    assert fp16_scorer.identity.precision == "fp16"
    fp16 = _concat(fp16_scorer.score(ITEMS))
    ok = fp32["ok"]
    np.testing.assert_array_equal(fp16["ok"], ok)
    assert np.abs(fp16["similarity"][ok] - fp32["similarity"][ok]).max() < 2e-2
    for name in ("image_embeddings", "text_embeddings"):
        a, b = fp16[name][ok].astype(np.float32), fp32[name][ok].astype(np.float32)
        cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cosine.min() > 1 - 2e-2


# -- the data loading on its own (no model) -----------------------------------------------


def _tiny_preprocess(image: Image.Image) -> torch.Tensor:
    return torch.tensor([float(image.width)])


def _tiny_tokenizer(texts: list[str]) -> torch.Tensor:
    return torch.tensor([[len(text)] for text in texts])


def _tiny_items(count: int, fail_at: int | None = None):
    png = io.BytesIO()
    Image.new("RGB", (5, 3)).save(png, "PNG")
    for i in range(count):
        if i == fail_at:
            raise OSError("the source broke")
        yield i, b"bad" if i % 7 == 3 else png.getvalue(), f"text {i % 5}"


@pytest.mark.parametrize("num_workers", [0, 1, 2])
def test_batches_come_back_in_source_order(num_workers):
    batches = list(prepared_batches(_tiny_items(50), _tiny_preprocess, _tiny_tokenizer,
                                    batch_size=3, num_workers=num_workers))
    assert [b.chunk for b in batches] == list(range(17))
    assert np.concatenate([b.pair_ids.numpy() for b in batches]).tolist() == list(range(50))
    ok = np.concatenate([b.ok.numpy() for b in batches])
    assert ok.tolist() == [i % 7 != 3 for i in range(50)]
    for batch in batches:
        assert len(batch.images) == len(batch.text_index) == int(batch.ok.sum())
        assert len(batch.tokens) == len(set(batch.text_index.tolist()))
    assert multiprocessing.active_children() == []


def test_a_source_error_reaches_the_caller_and_the_workers_stop():
    batches = prepared_batches(_tiny_items(50, fail_at=20), _tiny_preprocess, _tiny_tokenizer,
                               batch_size=4, num_workers=2)
    seen = []
    with pytest.raises(OSError, match="the source broke"):
        for batch in batches:
            seen.extend(batch.pair_ids.tolist())
    assert seen == list(range(20))
    assert multiprocessing.active_children() == []


def test_stopping_early_stops_the_workers():
    batches = prepared_batches(_tiny_items(10_000), _tiny_preprocess, _tiny_tokenizer,
                               batch_size=4, num_workers=2)
    assert next(batches).pair_ids.tolist() == [0, 1, 2, 3]
    batches.close()
    assert multiprocessing.active_children() == []
