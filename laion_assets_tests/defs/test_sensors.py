import json
import shutil

from laion_assets.defs.partitions import SHARDS
from laion_assets_tests.chains import tick_crawl_sensor
from laion_assets_tests.conftest import SHARED_WARCS


def test_new_drop_yields_shards_and_run_requests(instance, defs):
    result = tick_crawl_sensor(instance, defs, None)
    keys = [f"CC-MAIN-SAMPLE/{i:05d}" for i in range(4)]
    assert [r.partition_key for r in result.run_requests] == keys
    assert [r.run_key for r in result.run_requests] == keys
    assert sorted(instance.get_dynamic_partitions(SHARDS)) == keys
    assert list(json.loads(result.cursor)) == [str(defs.resources["crawl_drops"].location)
                                                + "/CC-MAIN-SAMPLE"]


def test_same_drop_again_yields_nothing(instance, defs):
    first = tick_crawl_sensor(instance, defs, None)
    again = tick_crawl_sensor(instance, defs, first.cursor)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []
    # even with the cursor lost, the registry keeps shards from being added twice
    fresh = tick_crawl_sensor(instance, defs, None)
    assert fresh.run_requests == []


def test_one_added_file_yields_one_new_shard(instance, defs, drops_dir):
    first = tick_crawl_sensor(instance, defs, None)
    drop = drops_dir / "CC-MAIN-SAMPLE"
    shutil.copy(SHARED_WARCS / "wget-2024-sample.warc.gz", drop / "extra.warc.gz")
    with open(drop / "warc.paths.gz", "rb") as handle:
        import gzip

        listing = gzip.decompress(handle.read()).decode()
    (drop / "warc.paths.gz").write_bytes(gzip.compress((listing + "extra.warc.gz\n").encode()))
    second = tick_crawl_sensor(instance, defs, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["CC-MAIN-SAMPLE/00004"]
    assert len(instance.get_dynamic_partitions(SHARDS)) == 5


def test_a_second_drop_is_its_own_crawl(instance, defs, drops_dir):
    first = tick_crawl_sensor(instance, defs, None)
    other = drops_dir / "CC-MAIN-OTHER"
    other.mkdir()
    shutil.copy(SHARED_WARCS / "wikipedia-2012-homepage.warc.gz", other / "w.warc.gz")
    second = tick_crawl_sensor(instance, defs, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["CC-MAIN-OTHER/00000"]
