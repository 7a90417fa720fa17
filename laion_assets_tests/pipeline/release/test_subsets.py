"""LAION-style subsets as release config: the rule on small tables, and a release of the sample
chain cut as `en` + `aesthetic ≥ 5` + research-safe, its manifest, card and counts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from laion_assets.pipeline.core.manifests import SafetyFilteredPairsManifest, require_current
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.release.publish import (
    PublishContext,
    ReleaseConfig,
    ReleaseError,
    publish_release,
    read_release,
)
from laion_assets.pipeline.release.subsets import (
    ANY_LANGUAGE,
    LAION_SIMILARITY,
    SimilarityThreshold,
    SubsetRule,
    describe_subset,
    subset_from_dict,
)
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.takedowns import read_ledger
from laion_assets.pipeline.shards.drops import registered_shards
from laion_assets_tests import chains
from laion_assets_tests.chains import materialize_sample_shards

instance = chains.module_instance
RESEARCH_SAFE = 0.45


def _rows(**columns) -> pa.Table:
    return pa.table({name: pa.array(values) for name, values in columns.items()})


ROWS = _rows(language=["en", "de", "und", "en", "fr", "en"],
             similarity=[0.30, 0.27, 0.25, 0.20, 0.25, 0.31],
             punsafe=[0.1, 0.2, 0.1, 0.1, 0.1, 0.9],
             pwatermark=[0.1, 0.1, 0.1, 0.95, 0.1, 0.1],
             aesthetic=[5.5, 6.1, 4.0, 7.0, 5.0, float("nan")])


def test_language_subsets_follow_laions_split():
    assert list(SubsetRule(language="en").select(ROWS)) == [
        None, "language not en", "language not en", None, "language not en", None]
    assert [r is None for r in SubsetRule(language="multi").select(ROWS)] == [
        False, True, False, False, True, False]
    assert [r is None for r in SubsetRule(language="nolang").select(ROWS)] == [
        False, False, True, False, False, False]


def test_scores_and_the_similarity_table_each_name_the_first_failing_condition():
    rule = SubsetRule(min_aesthetic=5, max_punsafe=RESEARCH_SAFE, max_pwatermark=0.8,
                      similarity=(SimilarityThreshold("en", 0.28),
                                  SimilarityThreshold(ANY_LANGUAGE, 0.26)))
    assert list(rule.select(ROWS)) == [
        None, None, "aesthetic < 5", "pwatermark >= 0.8", "similarity below its language's "
        "minimum", "aesthetic < 5"]  # NaN (not scored) fails the aesthetic floor
    # a table without `*` leaves other languages unconstrained
    only_en = SubsetRule(similarity=(SimilarityThreshold("en", 0.28),))
    assert [r is None for r in only_en.select(ROWS)] == [True, True, True, False, True, True]


def test_rules_are_validated_and_stated_in_words():
    with pytest.raises(ValueError, match="subset language 'english'"):
        SubsetRule(language="english")
    with pytest.raises(ValueError, match="max_punsafe 45"):
        SubsetRule(max_punsafe=45)
    with pytest.raises(ValueError, match="lists a language twice"):
        SubsetRule(similarity=(SimilarityThreshold("en", 0.28), SimilarityThreshold("en", 0.3)))
    laion = SubsetRule(name="laion-multi", language="multi", similarity=LAION_SIMILARITY)
    with pytest.raises(ValueError, match="'\\*' is for xlm-roberta-base-ViT-B-32, but shard "
                                         "S/1 was scored with ViT-B-32"):
        laion.check_model("ViT-B-32", "S/1")
    text = describe_subset(SubsetRule(name="en-aesthetic5", language="en", min_aesthetic=5,
                                      max_punsafe=RESEARCH_SAFE))
    assert text == ("Subset `en-aesthetic5`: only pairs with English captions (as "
                    "LAION-2B-en); LAION-Aesthetics score (`aesthetic`) of at least 5; "
                    "`punsafe` below 0.45 (Re-LAION's research-safe threshold).")
    assert describe_subset(None).startswith("Not a subset")
    assert subset_from_dict({"language": "multi", "similarity": [
        {"language": "*", "minimum": 0.26, "model": None}]}).similarity[0].minimum == 0.26


@pytest.fixture(scope="module")
def store(tmp_path_factory, sample_drop_template, instance) -> DatasetStore:
    """Two sample shards through the safety stage (untrained ViT-B-32: LAION's B/32 heads)."""
    tmp = tmp_path_factory.mktemp("subsets")
    materialize_sample_shards(tmp, sample_drop_template, instance)
    return DatasetStore(str(tmp / "store"))


def _passing(store: DatasetStore) -> pa.Table:
    shards = [s.key for crawl in store.listdir("shards", ".json")
              for s in registered_shards(store, crawl.removesuffix(".json"))]
    return pa.concat_tables(
        store.read_parquet(require_current(store, SafetyFilteredPairsManifest, s).pairs_file)
        for s in shards)


def _publish(store: DatasetStore, name: str, rule: SubsetRule):
    ctx = PublishContext(load_lists(store), read_ledger(store), SafetyPolicy(), log=lambda _: None)
    manifest = publish_release(store, ReleaseConfig(name=name, subset=rule), ctx)
    return read_release(store, name, manifest["version"])


def _card(store: DatasetStore, release) -> str:
    with store.open(f"{release.folder}/README.md") as handle:
        return handle.read().decode()


def _expected(passing: pa.Table, minimum: float) -> set[int]:
    language = np.asarray(passing.column("language").to_pylist(), dtype=object)
    aesthetic = passing.column("aesthetic").to_numpy(zero_copy_only=False)
    punsafe = passing.column("punsafe").to_numpy(zero_copy_only=False)
    ids = passing.column("pair_id").to_numpy()
    return set(ids[(language == "en") & (aesthetic >= minimum) & (punsafe < RESEARCH_SAFE)])


@pytest.mark.parametrize("minimum", [5.0, None])  # None: the en pairs' median aesthetic
def test_a_release_cut_as_en_aesthetic_and_research_safe(store, minimum):
    passing = _passing(store)
    en = pc.equal(passing.column("language"), "en")
    assert passing.num_rows and pc.sum(en).as_py() > 2
    if minimum is None:  # untrained CLIP scores low: also cut at the median to keep some rows
        minimum = float(np.median(passing.filter(en).column("aesthetic").to_numpy()))
    rule = SubsetRule(name=f"en-aesthetic{minimum:g}-research-safe", language="en",
                      min_aesthetic=minimum, max_punsafe=RESEARCH_SAFE)
    release = _publish(store, rule.name, rule)
    data = pa.concat_tables(store.read_parquet(f"{release.folder}/data/part-{p:05d}.parquet")
                            for p in range(release.parts))
    expected = _expected(passing, minimum)
    assert set(data.column("hash").to_pylist()) == expected
    assert release.rows == len(expected) == data.num_rows
    # counts: every passing pair is released, withheld, or outside the subset
    assert release.counts["safe"] == passing.num_rows
    outside = sum(release.subset_excluded.values())
    assert release.rows + sum(release.withheld.values()) + outside == passing.num_rows
    assert release.subset_excluded.get("language not en", 0) == passing.num_rows - pc.sum(
        en).as_py()
    if len(expected):
        assert set(data.column("LANGUAGE").to_pylist()) == {"en"}
        assert pc.min(data.column("AESTHETIC_SCORE")).as_py() >= minimum
    # the manifest records the rule; the card states it in words, with the counts
    assert subset_from_dict(release.config["subset"]) == rule
    card = _card(store, release)
    assert f"Subset `{rule.name}`: only pairs with English captions (as LAION-2B-en); " \
           f"LAION-Aesthetics score (`aesthetic`) of at least {minimum:g}; `punsafe` below " \
           "0.45 (Re-LAION's research-safe threshold)." in card
    assert f"- left out as outside the subset: {release.subset_excluded['language not en']:,} " \
           "(language not en)" in card


def test_aesthetic_scores_reach_the_release(store):
    release = _publish(store, "everything", SubsetRule())
    passing = _passing(store)
    data = pa.concat_tables(store.read_parquet(f"{release.folder}/data/part-{p:05d}.parquet")
                            for p in range(release.parts))
    by_id = dict(zip(passing.column("pair_id").to_pylist(),
                     passing.column("aesthetic").to_pylist(), strict=True))
    got = dict(zip(data.column("hash").to_pylist(), data.column("AESTHETIC_SCORE").to_pylist(),
                   strict=True))
    assert got and all(abs(got[h] - by_id[h]) < 1e-6 for h in got)
    assert release.subset_excluded == {}
    assert "Not a subset" in _card(store, release)


def test_a_similarity_table_for_another_model_is_refused(store):
    rule = SubsetRule(name="laion-multi", language="multi", similarity=LAION_SIMILARITY)
    with pytest.raises(ReleaseError, match="is for xlm-roberta-base-ViT-B-32, but shard"):
        _publish(store, "multi", rule)


def test_the_release_run_config_carries_the_subset():
    from laion_assets.defs.assets.release import ReleaseRunConfig

    config = ReleaseRunConfig(subset_name="en-5", subset_language="en", min_aesthetic=5,
                              max_punsafe=RESEARCH_SAFE, similarity_minimums={"en": 0.28},
                              similarity_model="ViT-B-32").release_config()
    assert config.subset == SubsetRule(name="en-5", language="en", min_aesthetic=5,
                                       max_punsafe=RESEARCH_SAFE, similarity=(
                                           SimilarityThreshold("en", 0.28, "ViT-B-32"),))
    assert not ReleaseRunConfig().release_config().subset.active
