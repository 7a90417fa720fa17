"""Publishing streams each shard a batch at a time: the batch size changes memory, never the
release. From the sample chain's real shard outputs (pairs repeated across shards, so the
cross-shard dedup is exercised), a first version and a takedown version of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.release.publish import (
    BATCH_ROWS,
    CARD_FILE,
    PublishContext,
    ReleaseConfig,
    publish_release,
    read_parts,
    verify_files,
)
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.takedowns import append, new_takedown, read_ledger
from laion_assets_tests import chains
from laion_assets_tests.chains import materialize_sample_shards

instance = chains.module_instance

NAME = "batches"
ROWS_PER_PART = 7  # parts and row groups end inside batches, batches inside parts
TINY = 2


@pytest.fixture(scope="module")
def source(tmp_path_factory, sample_drop_template, instance) -> Path:
    """A local store with two sample shards through safety_filtered_pairs."""
    tmp = tmp_path_factory.mktemp("batches")
    materialize_sample_shards(tmp, sample_drop_template, instance)
    return tmp / "store"


def _publish(store: DatasetStore, batch_rows: int, **config) -> dict:
    ctx = PublishContext(load_lists(store), read_ledger(store), SafetyPolicy(), run_id="test",
                         log=lambda _: None, batch_rows=batch_rows)
    return publish_release(store, ReleaseConfig(name=NAME, rows_per_part=ROWS_PER_PART,
                                                **config), ctx)


def _comparable(manifest: dict) -> dict:
    """The manifest less its creation time, and its files less the card (which shows it)."""
    files = {k: v for k, v in manifest["files"].items() if k != CARD_FILE}
    return {**{k: v for k, v in manifest.items() if k != "created_at"}, "files": files}


def test_a_tiny_batch_size_publishes_the_same_release_as_the_default(source, tmp_path):
    stores = {}
    for batch_rows in (BATCH_ROWS, TINY):
        shutil.copytree(source, tmp_path / str(batch_rows))
        stores[batch_rows] = DatasetStore(str(tmp_path / str(batch_rows)))
    first = {b: _publish(s, b, dedup_by_sha256=True) for b, s in stores.items()}
    assert _comparable(first[TINY]) == _comparable(first[BATCH_ROWS])
    assert first[TINY]["withheld"].get("duplicate_pair", 0) > 0  # repeated across shards
    assert first[TINY]["parts"] > 2

    (_, part), = read_parts(stores[TINY], first[TINY]["folder"], 1)
    victim = part.column("URL")[3].as_py()
    ledger = append(stores[TINY], [new_takedown("url", victim, "court order")])
    (tmp_path / str(BATCH_ROWS) / ledger).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / str(TINY) / ledger, tmp_path / str(BATCH_ROWS) / ledger)
    second = {b: _publish(s, b, parent_version=1) for b, s in stores.items()}
    assert _comparable(second[TINY]) == _comparable(second[BATCH_ROWS])
    assert second[TINY]["withheld"] == {"takedown": 1}
    assert second[TINY]["rows"] == first[TINY]["rows"] - 1
    assert second[TINY]["files"]["removed.parquet"]["rows"] == 1
    for store, manifest in [(s, m[b]) for b, s in stores.items() for m in (first, second)]:
        assert verify_files(store, manifest) == []
