"""Provenance traces on the real chain: the sample drop through every stage and two releases."""

import json
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey

from laion_assets.cli import main
from laion_assets.defs.headless import cut_release
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.formats.urls import domain_of
from laion_assets.pipeline.release.provenance import (
    ProvenanceError,
    Where,
    html_around_image,
    read_where,
    read_where_groups,
    scan_where,
    trace,
)
from laion_assets.pipeline.release.publish import read_manifest
from laion_assets.pipeline.safety.takedowns import append, new_takedown
from laion_assets.provenance_cli import RUN_COLUMNS
from laion_assets_tests import chains
from laion_assets_tests.chains import materialize_sample_shards

NAME = "laion-assets"
SHARDS = ("CC-MAIN-SAMPLE/00000", "CC-MAIN-SAMPLE/00001")
STAGES = ("extracted_pairs", "downloaded_images", "clip_scored_pairs", "safety_filtered_pairs")


instance = chains.module_instance


@pytest.fixture(scope="module")
def chain(tmp_path_factory, sample_drop_template, instance):
    """Two shards of the sample drop through the safety stage, and release v1 of them."""
    defs = materialize_sample_shards(tmp_path_factory.mktemp("provenance"), sample_drop_template,
                                     instance)
    assert cut_release(defs, instance, {"name": NAME})[0]
    return defs, defs.resources["dataset_store"].store()


def _released(store, version: int = 1) -> list[dict]:
    manifest = read_manifest(store, NAME, version)
    data = store.read_parquet(f"{manifest['folder']}/data/part-00000.parquet")
    provenance = store.read_parquet(f"{manifest['folder']}/provenance/part-00000.parquet")
    return [{**p, **d} for d, p in zip(data.to_pylist(), provenance.to_pylist(), strict=True)]


def _pairs(store, shard: str) -> dict[int, dict]:
    table = store.read_parquet(store.current("extracted_pairs", shard)["file"])
    return {row["pair_id"]: row for row in table.to_pylist()}


def _exclusions(store, shard: str) -> list[dict]:
    manifest = store.current("safety_filtered_pairs", shard)
    return store.read_parquet(manifest["files"]["exclusions.parquet"]).to_pylist()


def _one(records: list[dict], pid: int, shard: str) -> dict:
    found = [r for r in records if r["hash"] == pid and r["shard"] == shard]
    assert len(found) == 1, [(r["hash"], r["shard"]) for r in records]
    return found[0]


def test_a_released_url_is_traced_through_every_stage(chain):
    _, store = chain
    row = _released(store)[0]
    records = trace(store, url=row["URL"])
    record = _one(records, row["hash"], row["shard"])
    manifest = read_manifest(store, NAME, 1)
    assert record["releases"] == [{
        "name": NAME, "version": 1, "run_id": manifest["run_id"],
        "created_at": manifest["created_at"], "status": "holds", "part": 0, "row": 0,
        "from_shard": row["shard"],
        "runs": {k: row[k] for k in ("extracted_run_id", "downloaded_run_id", "scored_run_id",
                                     "safety_run_id")}}]
    assert record["decision"] == "passed" and record["exclusions"] == [] and not record["rules"]
    assert record["scores"]["similarity"] == pytest.approx(row["similarity"])
    assert record["text"] == row["TEXT"] and record["released_row"]["WIDTH"] == row["WIDTH"]
    assert record["fetch"]["status"] == "ok" and record["fetch"]["sha256"] == row["sha256"]
    pair = _pairs(store, row["shard"])[row["hash"]]
    assert record["warc"]["warc_file"] == pair["warc_file"] == row["warc_file"]
    assert record["warc"]["warc_record_offset"] == pair["warc_record_offset"]
    assert record["warc"]["warc_record_id"] == pair["warc_record_id"]
    assert record["warc"]["page_url"] == pair["page_url"]
    assert record["warc"]["capture_time"] == pair["capture_time"].isoformat()
    for stage in STAGES:
        committed = store.current(stage, row["shard"])
        assert record["runs"][stage]["run_id"] == committed["run_id"]
        assert record["runs"][stage]["data_version"] == committed["data_version"]
    assert record["model"] == store.current("clip_scored_pairs", row["shard"])["model"]
    assert record["model"]["pretrained"] == "none"
    assert record["missing"] == []
    json.dumps(records)  # plain JSON values only


def test_an_excluded_pair_shows_the_rule_that_excluded_it(chain):
    _, store = chain
    shard = SHARDS[0]
    hit = next(e for e in _exclusions(store, shard) if e["rule"] == "aspect_ratio")
    pair = _pairs(store, shard)[hit["pair_id"]]
    record = _one(trace(store, url=pair["url"]), hit["pair_id"], shard)
    assert record["decision"] == "excluded" and "aspect_ratio" in record["rules"]
    assert {"rule": "aspect_ratio", "detail": hit["detail"], "value": hit["value"]} in record[
        "exclusions"]
    assert [(e["version"], e["status"]) for e in record["releases"]] == [(1, "absent")]
    assert record["fetch"]["status"] == "ok"


def test_a_pair_that_was_not_fetched_shows_the_fetch_reason(chain):
    _, store = chain
    shard = SHARDS[1]
    results = store.read_parquet(store.current("downloaded_images", shard)["results_file"])
    failed = next(r for r in results.to_pylist() if r["reason"] == "not_captured")
    records = trace(store, url=failed["url"])
    record = next(r for r in records if r["shard"] == shard)
    assert record["fetch"]["status"] == "failed"
    assert record["fetch"]["reason"] == "not_captured"
    assert record["decision"] == "excluded"
    assert any(e["rule"] == "not_fetched" and e["detail"] == "not_captured"
               for e in record["exclusions"])
    assert record["scores"]["similarity"] is None  # NaN in the scores file: not scored


def test_show_html_reads_the_page_back_from_its_warc_record(chain):
    _, store = chain
    row = _released(store)[0]
    record = _one(trace(store, url=row["URL"], show_html=True), row["hash"], row["shard"])
    html = record["html"]
    assert html["found"] and html["http_status"] == 200
    assert html["offset"] == row["warc_record_offset"]
    assert html["tag"].lower().startswith("<img") and row["URL"] in html["tag"]
    assert "resolves to the URL" in html["match"]
    lines = dict(html["lines"])
    assert html["tag"] in lines[html["line"]]
    assert len(lines) <= 41 and min(lines) >= 1


def test_html_falls_back_to_the_last_path_segment_and_says_when_nothing_matches():
    page = "<html><body>\n<p>x</p>\n<img data-x='1' src=\"/cdn/photo.jpg?w=300\">\n</body>"
    html = html_around_image(page, "https://site.example/a/", "https://img.example/photo.jpg")
    assert html["found"] and html["line"] == 3 and "photo.jpg" in html["match"]
    direct = html_around_image(page, "https://site.example/a/",
                               "https://site.example/cdn/photo.jpg?w=300")
    assert direct["found"] and "src resolves" in direct["match"]
    missing = html_around_image(page, "https://site.example/", "https://x.example/other.png")
    assert not missing["found"] and "1" in missing["detail"]
    long_line = "<p>" + "word " * 2000 + '<img src="a.jpg" alt="x">' + " tail" * 2000
    cut = html_around_image(long_line, "https://s.example/", "https://s.example/a.jpg")
    assert cut["found"] and len(cut["lines"][0][1]) < 700 and '<img src="a.jpg"' in cut[
        "lines"][0][1]


def test_hash_sha256_and_domain_questions(chain):
    _, store = chain
    row = _released(store)[0]
    by_hash = trace(store, hash=str(row["hash"]))
    assert {r["hash"] for r in by_hash} == {row["hash"]}
    assert {r["shard"] for r in by_hash} >= {row["shard"]}
    by_sha = trace(store, sha256=row["sha256"].upper())
    assert row["hash"] in {r["hash"] for r in by_sha}
    assert all(r["fetch"]["sha256"] == row["sha256"] for r in by_sha)
    host = domain_of(row["URL"])
    by_domain = trace(store, domain=host)
    expected = {(pid, shard) for shard in SHARDS for pid, p in _pairs(store, shard).items()
                if domain_of(p["url"]) == host}
    assert {(r["hash"], r["shard"]) for r in by_domain} == expected
    assert len(trace(store, domain=host, limit=1)) == 1


def test_nothing_found_names_what_was_searched(chain):
    _, store = chain
    with pytest.raises(ProvenanceError, match=r"no such url 'https://nowhere.example/x.jpg' in "
                       r"any release or shard: 1 release version searched \(laion-assets\); "
                       r"2 shards registered \(CC-MAIN-SAMPLE\), the 2 with "
                       r"extracted_pairs scanned$"):
        trace(store, url="https://nowhere.example/x.jpg")
    shard = SHARDS[0]
    hit = next(e for e in _exclusions(store, shard) if e["rule"] == "aspect_ratio")
    url = _pairs(store, shard)[hit["pair_id"]]["url"]
    with pytest.raises(ProvenanceError, match="shards not scanned"):
        trace(store, url=url, scan_shards=False)
    with pytest.raises(ProvenanceError, match="exactly one"):
        trace(store, url=url, hash=1)
    with pytest.raises(ProvenanceError, match="not registered"):
        trace(store, url=url, shards=["CC-MAIN-OTHER/00000"])
    with pytest.raises(ProvenanceError, match="expected 64 hex digits"):
        trace(store, sha256="abc")


def test_cli_prints_a_block_per_pair_and_json_on_request(chain, capsys, monkeypatch):
    _, store = chain
    row = _released(store)[0]
    assert main(["provenance", "--url", row["URL"], "--store", store.root]) == 0
    text = capsys.readouterr().out
    assert f"pair {row['hash']}" in text and "laion-assets v0001 ✓ holds it" in text
    for heading in ("decision  passed", "scores    similarity", "fetch     ok via replay",
                    "WARC      ", "runs", "safety_filtered_pairs  run "):
        assert heading in text
    monkeypatch.setenv("LAION_ASSETS_STORE", store.root)  # the default store
    assert main(["provenance", "--hash", str(row["hash"]), "--json", "--show-html"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["hash"] for r in records} == {row["hash"]} and records[0]["html"]["found"]
    assert main(["provenance", "--url", row["URL"], "--show-html"]) == 0
    assert "<img" in capsys.readouterr().out
    assert main(["provenance", "--url", "https://nowhere.example/x.jpg"]) == 2
    assert "laion-assets provenance: error: no such url" in capsys.readouterr().err


def test_the_installed_command_runs(chain):
    _, store = chain
    row = _released(store)[0]
    done = subprocess.run([sys.executable, "-m", "laion_assets.cli", "provenance", "--hash",
                           str(row["hash"]), "--store", store.root, "--json"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["hash"] == row["hash"]


@pytest.fixture(scope="module")
def with_takedown(chain, instance):
    """v2: cut after a takedown of v1's first row's URL (comes last: it changes the store)."""
    defs, store = chain
    row = _released(store)[0]
    entry = new_takedown("url", row["URL"], "privacy request")
    append(store, [entry])
    assert cut_release(defs, instance, {"name": NAME})[0]
    return store, row, entry


def test_a_takedown_shows_which_version_removed_the_row_and_why(with_takedown, capsys):
    store, row, entry = with_takedown
    record = _one(trace(store, url=row["URL"]), row["hash"], row["shard"])
    v1, v2 = record["releases"]
    assert (v1["version"], v1["status"]) == (1, "holds")
    assert (v2["version"], v2["status"], v2["rule"]) == (2, "removed", "takedown")
    assert entry.id in v2["reason"] and "privacy request" in v2["reason"]
    assert v2["run_id"] == read_manifest(store, NAME, 2)["run_id"] != v1["run_id"]
    kept = _released(store, 2)[0]
    assert [e["status"] for e in _one(trace(store, hash=kept["hash"]), kept["hash"],
                                      kept["shard"])["releases"]] == ["holds", "holds"]
    assert main(["provenance", "--url", row["URL"], "--store", store.root]) == 0
    text = capsys.readouterr().out
    assert "laion-assets v0001 ✓ holds it" in text
    assert f"laion-assets v0002 ✗ removed: takedown {entry.id} (url): privacy request" in text


def test_without_the_shards_outputs_the_release_still_answers(chain, tmp_path):
    _, store = chain
    row = _released(store)[0]
    copy = tmp_path / "store"
    shutil.copytree(store.root, copy)
    for stage in STAGES:  # as if the shard's outputs had been deleted since the release
        (copy / stage / row["shard"] / "_CURRENT.json").unlink()
    from laion_assets.pipeline.core.store import DatasetStore

    record = _one(trace(DatasetStore(str(copy)), url=row["URL"]), row["hash"], row["shard"])
    assert record["releases"][0]["status"] == "holds"
    assert record["warc"]["warc_file"] == row["warc_file"]
    assert record["warc"]["warc_record_offset"] == row["warc_record_offset"]
    assert record["warc"]["page_url"] == row["page_url"]
    assert record["text"] == row["TEXT"] and record["fetch"] is None
    assert record["decision"].startswith("not filtered")
    assert record["model"] == json.loads(row["model"])
    assert f"extracted_pairs: nothing committed for shard {row['shard']}" in record["missing"]


def test_text_names_the_runs_recorded_in_the_release_after_a_rerun(with_takedown, chain,
                                                                   instance, capsys):
    """After a stage is re-run for the shard, the text output still names, for a released
    row, the runs its releases recorded; today's runs are listed apart."""
    defs, _ = chain
    store, _, _ = with_takedown
    kept = _released(store, 2)[0]
    rerun = defs.resolve_job_def("shard_pipeline").execute_in_process(
        partition_key=kept["shard"], instance=instance,
        asset_selection=[AssetKey("safety_filtered_pairs")])
    assert rerun.success
    now = store.require_current("safety_filtered_pairs", kept["shard"])["run_id"]
    assert now == rerun.run_id != kept["safety_run_id"]
    assert main(["provenance", "--hash", str(kept["hash"]), "--store", store.root]) == 0
    text = capsys.readouterr().out
    made, today = text.split("  runs now", 1)
    made = made.split("  runs that made the row", 1)[1]
    assert "laion-assets v0001, v0002" in made
    for column, stage in RUN_COLUMNS:
        assert f"{stage:22s} run {kept[column]}" in made
    assert f"release v0002          run {read_manifest(store, NAME, 2)['run_id']}" in made
    assert now not in made and f"safety_filtered_pairs  run {now}" in today


@pytest.mark.parametrize("where", [
    Where("url", "eq", "https://b.example.com/1.jpg"), Where("pair_id", "eq", 70_001),
    Where("pair_id", "in", [3, 70_002, 99]), Where("url", "in", []),
    Where("url", "regex", r"^https?://b\.example\.com(:[0-9]+)?(/|$)"),
    Where("sha256", "eq", "x")])  # a column the file lacks: no rows
def test_a_local_polars_scan_and_a_row_group_read_find_the_same_rows(tmp_path, where):
    ids = list(range(100_000))
    hosts = ["a.example.com", "b.example.com", "c.example.com:8080"]
    table = pa.table({"pair_id": pa.array(ids, pa.int64()),
                      "url": [f"https://{hosts[i % 3]}/{i}.jpg" for i in ids],
                      "text": [None if i % 7 == 0 else f"text {i}" for i in ids]})
    pq.write_table(table, tmp_path / "pairs.parquet", row_group_size=8_192)
    store = DatasetStore(str(tmp_path))
    for columns in (None, ["text", "pair_id"]):
        scanned = scan_where(str(tmp_path / "pairs.parquet"), where, columns)
        grouped = read_where_groups(store, "pairs.parquet", where, columns)
        assert scanned.column_names == grouped.column_names
        assert scanned.to_pylist() == grouped.to_pylist()
        assert read_where(store, "pairs.parquet", where, columns).to_pylist() == \
            grouped.to_pylist()
    expected = {"eq": 1, "in": 3, "regex": len(ids) // 3}[where.op]
    if where.column == "sha256" or where.value == []:
        expected = 0
    assert grouped.num_rows == expected
