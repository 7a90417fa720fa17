"""Zero-shot concept scores with a seeded random CLIP model, against numpy."""

import numpy as np
import open_clip
import pytest
import torch

from laion_assets.pipeline.safety.concepts import (
    DEFAULT_MINOR_CONCEPTS,
    DEFAULT_NSFW_CONCEPTS,
    DEFAULT_WATERMARK_CONCEPTS,
    SHARPNESS,
    Concept,
    score_concepts,
)
from laion_assets.pipeline.scoring.clip import ClipModelSpec, ClipScorer, load_clip

SPEC = ClipModelSpec(model="ViT-B-32", pretrained=None, device="cpu", num_workers=0)
ALL_DEFAULTS = DEFAULT_NSFW_CONCEPTS + DEFAULT_MINOR_CONCEPTS + DEFAULT_WATERMARK_CONCEPTS
PROMPTS = [c.prompt for c in ALL_DEFAULTS]


@pytest.fixture(scope="module")
def scorer() -> ClipScorer:
    return load_clip(SPEC)


@pytest.fixture(scope="module")
def concept_embeddings(scorer) -> np.ndarray:
    return scorer.encode_texts(PROMPTS)


def _images(concept_embeddings: np.ndarray, n: int = 24, seed: int = 0) -> np.ndarray:
    """L2-normalised image embeddings: random ones and ones near concepts (high cosines)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, concept_embeddings.shape[1])).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    near = rng.integers(0, len(concept_embeddings), n // 2)
    x[: n // 2] = concept_embeddings[near] + rng.uniform(0.01, 0.08, (n // 2, 1)) * x[: n // 2]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)  # as stored


def _expected(images: np.ndarray, concepts_emb: np.ndarray, concepts) -> dict[str, np.ndarray]:
    cosine = images.astype(np.float64) @ concepts_emb.astype(np.float64).T
    margins = cosine - np.array([c.threshold for c in concepts])
    sigmoid = 1.0 / (1.0 + np.exp(-SHARPNESS * margins))
    return {"probability": sigmoid.max(axis=1), "best": margins.argmax(axis=1),
            "margin": margins.max(axis=1), "fired": (margins >= 0).any(axis=1)}


def test_concept_prompts_encode_deterministically(scorer, concept_embeddings):
    assert concept_embeddings.shape == (len(PROMPTS), scorer.identity.embed_dim)
    assert concept_embeddings.dtype == np.float32
    np.testing.assert_array_equal(scorer.encode_texts(PROMPTS), concept_embeddings)
    again = load_clip(SPEC)  # a freshly loaded model with the same seed
    np.testing.assert_array_equal(again.encode_texts(PROMPTS), concept_embeddings)
    # one prompt alone encodes as it does among the others
    np.testing.assert_allclose(scorer.encode_texts(PROMPTS[2:3])[0], concept_embeddings[2],
                               rtol=0, atol=1e-6)
    assert scorer.encode_texts([]).shape == (0, scorer.identity.embed_dim)


def test_encode_texts_is_open_clips_encode_text_normalised(scorer, concept_embeddings):
    norms = np.linalg.norm(concept_embeddings, axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=0, atol=1e-5)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        direct = scorer.model.encode_text(tokenizer(PROMPTS)).float().numpy()
    direct /= np.linalg.norm(direct, axis=1, keepdims=True)
    np.testing.assert_allclose(concept_embeddings, direct, rtol=0, atol=1e-6)
    # distinct prompts give distinct embeddings (the test would pass on a constant otherwise)
    assert np.abs(concept_embeddings[0] - concept_embeddings[1]).max() > 1e-3


@pytest.mark.parametrize("concepts", [DEFAULT_NSFW_CONCEPTS, DEFAULT_MINOR_CONCEPTS,
                                      DEFAULT_WATERMARK_CONCEPTS, ALL_DEFAULTS])
def test_score_concepts_equals_numpy(scorer, concept_embeddings, concepts):
    rows = [PROMPTS.index(c.prompt) for c in concepts]
    embeddings = concept_embeddings[rows]
    images = _images(concept_embeddings)
    scores = score_concepts(images, embeddings, concepts)
    expected = _expected(images, embeddings, concepts)
    assert scores.probability.dtype == np.float32 and scores.margin.dtype == np.float32
    np.testing.assert_allclose(scores.probability, expected["probability"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(scores.margin, expected["margin"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(scores.best, expected["best"])
    np.testing.assert_array_equal(scores.fired, expected["fired"])
    # images near a concept fire at the default thresholds, random ones do not
    assert scores.fired[:12].any() and not scores.fired[12:].any()
    # the probability is 0.5 exactly where the margin is 0, above 0.5 exactly where fired
    np.testing.assert_array_equal(scores.probability > 0.5, scores.margin > 0)


def test_thresholds_are_applied_as_configured(concept_embeddings):
    images = _images(concept_embeddings)[:4].astype(np.float32)
    emb = concept_embeddings[:2]
    cosine = images @ emb.T  # as score_concepts computes it (same arrays, same float32 product)
    image, concept = 1, 0
    at = float(cosine[image, concept])
    other = Concept("other", 2.0)  # never fires: cosines are at most 1

    def scored(threshold: float):
        concepts = (Concept("c", threshold), other)
        return score_concepts(images, emb, concepts)

    exactly = scored(at)
    assert exactly.fired[image] and exactly.probability[image] == 0.5
    assert exactly.margin[image] == 0.0 and exactly.best[image] == concept
    below = scored(at - 1e-4)  # threshold just below the cosine: fires
    assert below.fired[image] and 0.5 < below.probability[image] < 0.51
    above = scored(at + 1e-4)  # just above: does not
    assert not above.fired[image] and 0.49 < above.probability[image] < 0.5
    ulp_above = scored(float(np.nextafter(np.float32(at), np.float32(2))))
    assert not ulp_above.fired[image] and ulp_above.probability[image] < 0.5
    # the other images are judged against the same threshold
    for threshold, result in ((at, exactly), (at - 1e-4, below), (at + 1e-4, above)):
        np.testing.assert_array_equal(result.fired,
                                      cosine[:, concept] >= np.float32(threshold))


def test_no_concepts_score_zero(concept_embeddings):
    images = _images(concept_embeddings)
    scores = score_concepts(images, np.zeros((0, images.shape[1]), np.float32), ())
    assert (scores.probability == 0).all() and not scores.fired.any()
    assert len(scores.best) == len(images) and np.isneginf(scores.margin).all()
    empty = score_concepts(images[:0], concept_embeddings[:1], (Concept("c", 0.2),))
    assert len(empty.probability) == 0 and len(empty.fired) == 0
