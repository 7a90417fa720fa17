"""The safety stage's batch lookups: fetch results by url_key, embedding rows by pair id."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.pipeline.formats.embeddings import Embeddings
from laion_assets.pipeline.formats.webdataset import url_key
from laion_assets.pipeline.safety.shard_inputs import EmbeddingRows, FetchResults


def _results(tmp_path, urls: list[str], keys: list[str] | None = None) -> pq.ParquetFile:
    keys = keys or [url_key(u) for u in urls]
    table = pa.table({"url": urls, "url_key": keys,
                      "status": ["ok"] * len(urls), "bytes": list(range(len(urls)))})
    pq.write_table(table, tmp_path / "results.parquet", row_group_size=2)  # 3+ row groups
    return pq.ParquetFile(tmp_path / "results.parquet")


def test_results_are_gathered_across_row_groups_in_the_pairs_order(tmp_path):
    urls = [f"http://img.example/{i}.jpg" for i in range(7)]
    fetch = FetchResults.open(_results(tmp_path, urls))
    wanted = [urls[5], "http://img.example/missing.jpg", urls[0], urls[6], urls[5]]
    rows = fetch.rows(wanted)
    assert rows.tolist() == [5, -1, 0, 6, 5]
    got = fetch.gather(rows)
    assert got.column_names == ["url_key", "status", "bytes"]  # the stage's columns present
    assert got.column("bytes").to_pylist() == [5, None, 0, 6, 5]
    assert fetch.gather(np.full(2, -1)).column("status").to_pylist() == [None, None]


def test_the_last_result_of_a_key_wins_as_a_dict_would(tmp_path):
    urls = ["http://a.example/x.jpg", "http://b.example/y.jpg", "http://a.example/x.jpg"]
    fetch = FetchResults.open(_results(tmp_path, urls))
    assert fetch.rows([urls[0]]).tolist() == [2]


def test_a_malformed_url_key_is_refused_with_the_file(tmp_path):
    file = _results(tmp_path, ["http://a.example/x.jpg"], keys=["NOT-A-KEY"])
    with pytest.raises(ValueError, match="results.parquet: url_key 'NOT-A-KEY'"):
        FetchResults.open(file)


def test_embedding_rows_by_pair_id_with_similarity_nan_where_not_scored():
    ids = pa.table({"pair_id": pa.array([40, -7, 12], pa.int64()),
                    "similarity": pa.array([0.3, 0.1, 0.2], pa.float32())})
    embedded = EmbeddingRows.of(Embeddings(ids, np.zeros((3, 2)), np.zeros((3, 2))))
    rows = embedded.rows(np.array([12, 99, 40, -7]))
    assert rows.tolist() == [2, -1, 0, 1]
    np.testing.assert_array_equal(embedded.similarities(rows),
                                  np.array([0.2, np.nan, 0.3, 0.1], np.float32))
