import pyarrow.parquet as pq
import pytest

from laion_assets.cli import main
from laion_assets.pipeline.extract.pairs import EXTRACTED_PAIRS_SCHEMA
from laion_assets_tests.conftest import SHARED_WARCS


def test_extract_writes_the_same_columns(tmp_path, capsys):
    out = tmp_path / "pairs.parquet"
    assert main(["extract", str(SHARED_WARCS / "wikipedia-2012-homepage.warc.gz"),
                 "--out", str(out)]) == 0
    table = pq.read_table(out, use_threads=False, pre_buffer=False)
    assert table.schema.names == EXTRACTED_PAIRS_SCHEMA.names
    assert table.num_rows == 17
    assert "17 pairs from 1 pages" in capsys.readouterr().out


def test_extract_failure_names_the_file_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "pairs.parquet"
    missing = tmp_path / "missing.warc.gz"
    assert main(["extract", str(missing), "--out", str(out)]) == 2
    assert f"{missing}: cannot open" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_sample_drop_command(tmp_path, capsys):
    assert main(["sample-drop", str(tmp_path / "CC-X"), "--files", "2"]) == 0
    assert "crawl CC-X, 2 WARC files" in capsys.readouterr().out


def test_materialize_rejects_a_folder_that_is_not_a_drop(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("LAION_ASSETS_VAR", str(tmp_path / "var"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        main(["materialize"])
    assert main(["materialize", "--drop", str(tmp_path / "empty")]) == 2
    assert "not a crawl drop" in capsys.readouterr().err
