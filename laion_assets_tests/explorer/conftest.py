"""The release the explorer tests share: the sample drop's first WARC file through safety with
one of its images on a hash list (md5, as a partner list would carry it), release v1 cut,
its kNN index built. Built once for the package (about a minute on 2 cores)."""

import hashlib
from dataclasses import dataclass

import pytest
from dagster import Definitions, instance_for_test

from laion_assets.defs.headless import cut_release
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.release.knn import build_index
from laion_assets.sample.drop import captured_body
from laion_assets_tests.chains import materialize_sample_shards

NAME = "laion-assets"
TOKEN = "s3cret-operator"
PLANTED_URL = "https://cdn.example.net/stock/sunset-beach.jpg"  # a JPEG of the first file
PLANTED_LIST = "safety/hash_lists/md5/planted.txt"


@dataclass
class SampleRelease:
    store: DatasetStore
    defs: Definitions
    planted: bytes  # the hash-listed image's bytes as the crawler captured them


@pytest.fixture(scope="package")
def explorer_instance():
    with instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="package")
def sample_release(tmp_path_factory, sample_drop_template, explorer_instance) -> SampleRelease:
    tmp = tmp_path_factory.mktemp("explorer")
    planted = captured_body(sample_drop_template, PLANTED_URL)
    hash_list = tmp / "store" / PLANTED_LIST
    hash_list.parent.mkdir(parents=True)
    hash_list.write_text(f"# planted by the explorer tests\n{hashlib.md5(planted).hexdigest()}\n")
    defs = materialize_sample_shards(tmp, sample_drop_template, explorer_instance, files=1)
    assert cut_release(defs, explorer_instance, {"name": NAME})[0]
    store = defs.resources["dataset_store"].store()
    build_index(store, NAME, 1)
    return SampleRelease(store, defs, planted)
