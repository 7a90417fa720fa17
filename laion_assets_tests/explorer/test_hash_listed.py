"""A hash-listed image (conftest plants one of the sample's JPEGs on an md5 list): excluded by
the `hash_list` rule, never listed nor served by the explorer, and its bytes not kept in the
store."""

import os

import pytest
from starlette.testclient import TestClient

from laion_assets.explorer.app import Explorer, build_app
from laion_assets.pipeline.download.images import process_image
from laion_assets.pipeline.formats.webdataset import url_key
from laion_assets_tests.explorer.conftest import NAME, PLANTED_LIST, PLANTED_URL


@pytest.fixture(scope="module")
def explorer(sample_release):
    return Explorer(sample_release.store, NAME)


def test_the_planted_image_is_excluded_by_the_hash_list_rule(explorer):
    listed = [e for e in explorer.exclusions if e["rule"] == "hash_list"]
    assert [e["url"] for e in listed] == [PLANTED_URL]
    assert listed[0]["detail"] == f"md5 in {PLANTED_LIST}"
    assert PLANTED_URL not in {explorer.row(r)["URL"] for r in range(len(explorer.index))}


def test_the_explorer_never_lists_nor_serves_it(explorer):
    client = TestClient(build_app(explorer))
    shard = explorer.exclusions[0]["shard"]
    key = url_key(PLANTED_URL)
    assert (shard, key) in explorer.hidden_keys
    assert client.get(f"/image/{shard.replace('/', '~')}/{key}").status_code == 404
    audit = client.get("/audit").text
    assert "hash_list (1)" in audit and key not in audit and PLANTED_URL not in audit


def _files_holding(root: str, needles: dict[str, bytes]) -> list[str]:
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                data = handle.read()
            found += [f"{os.path.relpath(path, root)} ({what})"
                      for what, needle in needles.items() if needle in data]
    return found


def test_its_bytes_are_not_kept_in_the_store(sample_release):
    """Neither the captured bytes nor their resized re-encoding (what the download stage would
    store) is in any file under the store."""
    policy = sample_release.defs.resources["image_fetcher"].download_config().policy
    resized = process_image(sample_release.planted, policy).resized
    needles = {"captured bytes": sample_release.planted, "resized image": resized}
    assert _files_holding(sample_release.store.root, needles) == []
