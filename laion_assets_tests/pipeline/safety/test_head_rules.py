"""LAION's heads in the safety stage: punsafe from LAION's detector by default, aesthetic and
pviolence per scored pair, and the optional rules on them recorded as exclusions."""

import dataclasses

import numpy as np
import pytest
import torch

from laion_assets.pipeline.safety.nsfw_head import NsfwHead, nsfw_head
from laion_assets.pipeline.safety.policy import (
    AestheticRules,
    NsfwRules,
    SafetyPolicy,
    ViolenceRules,
)
from laion_assets.pipeline.safety.rules import RuleContext, evaluate
from laion_assets.pipeline.safety.stage import SafetyModels, model_scores
from laion_assets.pipeline.safety.weights import load_model_file
from laion_assets.pipeline.scoring.clip import ClipModelSpec, load_clip
from laion_assets.pipeline.scoring.heads import ClipHeads
from laion_assets_tests.pipeline.safety.test_rules import _evaluate, _hits, _lists, _row, _shard

B32 = {"model": "ViT-B-32", "embed_dim": 512}


@pytest.fixture(scope="module")
def clip():
    """open_clip's ViT-B-32 with seeded random weights (offline): its text encoder serves the
    zero-shot concepts."""
    return load_clip(ClipModelSpec(model="ViT-B-32", pretrained=None, device="cpu"))


def _scored(rows, aesthetic=None, pviolence=None):
    candidates, scores = _shard(rows)
    return candidates, dataclasses.replace(
        scores, aesthetic=None if aesthetic is None else np.array(aesthetic, np.float32),
        pviolence=None if pviolence is None else np.array(pviolence, np.float32),
        head_detail={"aesthetic": "aesthetic_v1_vit_b_32", "pviolence": "violence_vit_b_32"})


def _decide(rows, policy, **scores):
    candidates, model_scores_ = _scored(rows, **scores)
    return evaluate(RuleContext(candidates, policy, _lists(), [], model_scores_))


def test_an_aesthetic_floor_excludes_lower_scores_with_the_head_named():
    rows = [_row(i) for i in range(4)]
    aesthetic = [3.9, 4.0, 6.2, np.nan]
    decisions = _decide(rows, SafetyPolicy(aesthetic=AestheticRules(min_score=4.0)),
                        aesthetic=aesthetic, pviolence=[0.1] * 4)
    hits = _hits(decisions)
    assert hits == {0: {"aesthetic": [("aesthetic < 4 (aesthetic_v1_vit_b_32)", "3.900")]}}
    assert decisions.passed.tolist() == [False, True, True, True]
    # without a floor the score is kept, never used
    assert _hits(_decide(rows, SafetyPolicy(), aesthetic=aesthetic)) == {}


def test_the_violence_rule_is_optional_and_follows_clip_retrieval():
    rows = [_row(i) for i in range(3)]
    pviolence = [0.2, 0.5, 0.93]
    assert _hits(_decide(rows, SafetyPolicy(), pviolence=pviolence)) == {}
    hits = _hits(_decide(rows, SafetyPolicy(violence=ViolenceRules(exclude=True)),
                         pviolence=pviolence))
    assert hits == {2: {"violence": [("pviolence > 0.5 (violence_vit_b_32)", "0.9300")]}}


def test_no_head_means_no_head_rule():
    rows = [_row(i) for i in range(2)]
    policy = SafetyPolicy(aesthetic=AestheticRules(min_score=9.0),
                          violence=ViolenceRules(exclude=True))
    assert _evaluate(rows, policy).passed.all()


def test_the_policy_asks_for_heads_and_states_its_thresholds():
    assert SafetyPolicy().head_kinds() == ("nsfw", "aesthetic", "violence")
    assert SafetyPolicy(nsfw=NsfwRules(head="/weights/h14.pt")).head_kinds() == (
        "aesthetic", "violence")
    off = SafetyPolicy(nsfw=NsfwRules(laion_head=False), aesthetic=AestheticRules(enabled=False),
                       violence=ViolenceRules(enabled=False))
    assert off.head_kinds() == ()
    assert off.thresholds()["aesthetic"] == "off" and off.thresholds()["nsfw"] == "zero-shot"
    strict = SafetyPolicy(aesthetic=AestheticRules(min_score=5),
                          violence=ViolenceRules(exclude=True))
    assert strict.thresholds()["aesthetic"] == "keep >= 5"
    assert strict.thresholds()["pviolence"] == "keep <= 0.5"
    assert SafetyPolicy().thresholds()["pviolence"] == "score only"
    with pytest.raises(ValueError, match="violence threshold 1.5"):
        SafetyPolicy(violence=ViolenceRules(threshold=1.5))


def _embeddings(n: int, seed: int = 5) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 512)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _model_scores(models: SafetyModels, policy: SafetyPolicy, n: int = 6):
    candidates, _ = _shard([_row(i) for i in range(n)])
    rows = np.arange(n) - 1  # the first candidate was not scored
    image = _embeddings(n)
    policy = dataclasses.replace(policy, watermark=dataclasses.replace(policy.watermark,
                                                                       enabled=False))
    models = models.with_heads(B32, policy)
    return models, image[rows[1:]], model_scores(candidates, rows, image, policy, models,
                                                 images=lambda: iter(()))


def test_punsafe_comes_from_laions_detector_when_it_fits(clip):
    models, scored, scores = _model_scores(SafetyModels(clip.encode_texts), SafetyPolicy())
    heads = ClipHeads.for_model("ViT-B-32", 512)
    assert np.isnan(scores.punsafe[0]) and np.isnan(scores.aesthetic[0])
    np.testing.assert_array_equal(scores.punsafe[1:], heads.nsfw(scored))
    np.testing.assert_array_equal(scores.aesthetic[1:], heads.aesthetic(scored))
    np.testing.assert_array_equal(scores.pviolence[1:], heads.violence(scored))
    assert scores.punsafe_detail[1] == "LAION NSFW detector nsfw_vit_b_32"
    identity = models.identity()
    assert identity["nsfw"]["head"] == "nsfw_vit_b_32" and len(identity["nsfw"]["sha256"]) == 64
    assert identity["aesthetic"]["head"] == "aesthetic_v1_vit_b_32"
    assert identity["violence"]["head"] == "violence_vit_b_32"


def test_zero_shot_when_laions_detector_is_off_or_does_not_fit(clip):
    off = SafetyPolicy(nsfw=NsfwRules(laion_head=False))
    models, _, scores = _model_scores(SafetyModels(clip.encode_texts), off)
    assert scores.punsafe_detail[1].startswith("zero-shot")
    assert models.identity()["nsfw"] == "zero-shot concepts"
    assert scores.aesthetic is not None  # the other heads still score
    h14 = SafetyModels(clip.encode_texts).with_heads({"model": "ViT-H-14", "embed_dim": 1024},
                                                     SafetyPolicy())
    assert h14.identity()["nsfw"] == "zero-shot concepts" and h14.identity()["aesthetic"] is None


def test_a_configured_head_file_wins_over_laions_detector(clip, tmp_path):
    path = tmp_path / "custom.pt"
    torch.save(nsfw_head(512).state_dict(), path)
    custom = NsfwHead(load_model_file(str(path)), 512)
    policy = SafetyPolicy(nsfw=NsfwRules(head=str(path)))
    models, scored, scores = _model_scores(SafetyModels(clip.encode_texts, head=custom), policy)
    np.testing.assert_array_equal(scores.punsafe[1:], custom.punsafe(scored))
    assert scores.punsafe_detail[1] == "NSFW head"
    assert models.identity()["nsfw"]["source"] == str(path)


def test_heads_scored_in_chunks_give_the_scores_of_one_pass():
    """The stage scores LAION's heads a few thousand embeddings at a time (memory): each
    candidate gets the score one pass over all embeddings gives (to float32 rounding: the
    matrix kernels block by batch size, as the stage's batches always did), NaN elsewhere."""
    from laion_assets.pipeline.safety.stage import _laion_heads

    heads = ClipHeads.for_model("ViT-B-32", 512)
    embeddings = np.random.default_rng(3).standard_normal((10, 512)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    scored = np.array([0, 2, 3, 5, 6, 7, 9, 11, 12, 13])
    models = SafetyModels(lambda prompts: np.zeros((len(prompts), 512)), heads=heads)
    chunked = _laion_heads(14, scored, embeddings, models, chunk=3)
    whole = heads.score(embeddings)
    assert set(chunked) == set(whole) == {"punsafe", "aesthetic", "pviolence"}
    for column, values in whole.items():
        np.testing.assert_allclose(chunked[column][scored], values, rtol=1e-5, atol=1e-9)
        assert np.isnan(np.delete(chunked[column], scored)).all()
    none = _laion_heads(2, np.zeros(0, np.int64), embeddings[:0], models, chunk=3)
    assert set(none) == set(whole) and all(np.isnan(v).all() for v in none.values())
