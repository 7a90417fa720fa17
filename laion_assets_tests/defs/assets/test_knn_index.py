"""`knn_index` on the real chain: the sample drop through safety, release v1, then its index."""

import numpy as np
import pytest
from dagster import AssetKey, materialize

from laion_assets.defs.assets.knn_index import knn_index
from laion_assets.defs.headless import cut_release
from laion_assets.pipeline.release.knn import load_index
from laion_assets.pipeline.release.publish import read_release
from laion_assets_tests import chains
from laion_assets_tests.chains import materialize_sample_shards

NAME = "laion-assets"

instance = chains.module_instance


@pytest.fixture(scope="module")
def chain(tmp_path_factory, sample_drop_template, instance):
    defs = materialize_sample_shards(tmp_path_factory.mktemp("knn"), sample_drop_template,
                                     instance, files=1)
    assert cut_release(defs, instance, {"name": NAME})[0]
    return defs, defs.resources["dataset_store"].store()


def test_knn_index_indexes_the_latest_version_row_for_row(chain, instance):
    defs, store = chain
    result = materialize([knn_index], instance=instance,
                         resources={"dataset_store": defs.resources["dataset_store"]})
    assert result.success
    meta = instance.get_latest_materialization_event(
        AssetKey("knn_index")).asset_materialization.metadata
    release = read_release(store, NAME, 1)
    assert meta["version"].value == 1 and meta["dagster/row_count"].value == release.rows > 0
    index = load_index(store, NAME, 1)
    image = np.load(store.path(f"{release.folder}/img_emb/part-00000.npy"))
    hashes = store.read_parquet(f"{release.folder}/data/part-00000.parquet",
                                columns=["hash"]).column("hash").to_pylist()
    for row in range(len(image)):
        hits = index.search(image[row], k=5)  # one image may hold several alt texts (rows)
        assert hits[0].similarity == pytest.approx(1.0, abs=1e-3)
        assert hashes[row] in {h.hash for h in hits if h.similarity > 0.999}
    assert sorted(store.listdir(release.folder)) == sorted(release_files(release))
    assert defs.resolve_assets_def(AssetKey("knn_index")) is not None


def release_files(release) -> set[str]:
    """Top-level names the version's manifest lists (the index adds nothing there)."""
    return {path.split("/")[0] for path in release.files} | {"manifest.json", "_CLAIM.json"}
