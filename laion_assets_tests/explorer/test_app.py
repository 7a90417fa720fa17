"""The explorer's HTTP API on a real release (conftest's `sample_release`: the sample drop
through safety, release v1 and its kNN index), served by Starlette's TestClient."""

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from dagster import AssetKey, AssetRecordsFilter, UrlMetadataValue
from starlette.testclient import TestClient

from laion_assets.explorer.app import Explorer, build_app, parse_release
from laion_assets.pipeline.safety.takedowns import read_ledger
from laion_assets_tests.explorer.conftest import NAME, TOKEN


@pytest.fixture(scope="module")
def store(sample_release):
    return sample_release.store


@pytest.fixture(scope="module")
def explorer(store):
    return Explorer(store, NAME, operator_token=TOKEN)


@pytest.fixture(scope="module")
def client(explorer):
    return TestClient(build_app(explorer))


def _embedding(explorer, row: int) -> list[float]:
    folder = explorer.release.folder
    image = np.load(explorer.store.path(f"{folder}/img_emb/part-00000.npy"))
    return image[row].astype(float).tolist()


def test_release_names_parse():
    assert parse_release("laion-assets@v3") == ("laion-assets", 3)
    assert parse_release("x@2") == ("x", 2) and parse_release("x") == ("x", None)
    with pytest.raises(ValueError):
        parse_release("x@latest")


def test_text_search_returns_rows_and_says_the_model_is_untrained(client, explorer):
    body = client.get("/api/search", params={"q": "a photo of a dog", "safe": "0"}).json()
    assert body["untrained"] is True and body["model"]["pretrained"] == "none"
    assert 0 < len(body["results"]) <= min(24, explorer.release.rows)
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    page = client.get("/").text
    assert "untrained CLIP model" in page and "not meaningful" in page
    assert explorer.model["model"] in page


def test_safe_mode_is_on_by_default_and_hides_rows_above_the_threshold(client, explorer):
    unsafe = client.get("/api/search", params={"q": "x", "safe": "0", "k": 200}).json()
    default = client.get("/api/search", params={"q": "x", "k": 200}).json()
    assert default["safe"] is True
    assert all(r["punsafe"] is None or r["punsafe"] <= explorer.punsafe_threshold
               for r in default["results"])
    above = [r for r in unsafe["results"] if not explorer.safe(r)]
    assert len(default["results"]) == len(unsafe["results"]) - len(above)


def test_a_thumbnail_is_read_from_the_stored_resized_images(client):
    row = client.get("/api/search", params={"q": "x", "safe": "0"}).json()["results"][0]
    image = client.get(f"/image/{row['shard'].replace('/', '~')}/{row['key']}")
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"  # JPEG


def test_the_detail_panel_shows_the_provenance_trace(client):
    row = client.get("/api/search", params={"q": "x", "safe": "0"}).json()["results"][0]
    records = client.get("/api/trace", params={"hash": row["hash"]}).json()
    assert records and str(records[0]["hash"]) == row["hash"]
    assert records[0]["warc"]["warc_record_id"].startswith("<urn:uuid:")
    assert records[0]["warc"]["warc_record_offset"] >= 0 and records[0]["decision"] == "passed"


def test_the_audit_view_lists_exclusions_by_rule(client, explorer):
    counts = explorer.rule_counts()
    assert counts, "the sample drop excludes some pairs"
    page = client.get("/audit").text
    for rule, n in counts.items():
        assert f"{rule} ({n})" in page


def test_an_image_under_a_never_shown_key_is_neither_served_nor_returned(store):
    explorer = Explorer(store, NAME)
    client = TestClient(build_app(explorer))
    row = client.get("/api/search", params={"q": "x", "safe": "0", "k": 200}).json()["results"][0]
    path = f"/image/{row['shard'].replace('/', '~')}/{row['key']}"
    assert client.get(path).status_code == 200
    explorer.hidden_keys.add((row["shard"], row["key"]))  # as a hash-list exclusion adds it
    assert client.get(path).status_code == 404
    found = client.get("/api/search", params={"q": "x", "safe": "0", "k": 200}).json()
    assert row["key"] not in {r["key"] for r in found["results"]}
    meta = client.post("/metadata", json={"ids": [row["row"]]}).json()["metadata"]
    assert meta == []


def test_removal_needs_the_operator_token(client, store, explorer):
    before = len(read_ledger(store))
    body = {"kind": "url", "value": "https://example.com/a.jpg", "reason": "audit request"}
    assert client.post("/api/removal", json=body).status_code == 403
    assert client.post("/api/removal", json=body,
                       headers={"Authorization": "Bearer wrong"}).status_code == 403
    readonly = TestClient(build_app(Explorer(store, NAME)))
    refused = readonly.post("/api/removal", json=body,
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    assert len(read_ledger(store)) == before
    done = client.post("/api/removal", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert done.status_code == 200
    entries = read_ledger(store)
    assert len(entries) == before + 1 and entries[-1].id == done.json()["id"]


def test_clip_retrieval_api(client, explorer):
    assert client.get("/indices-list").json() == [NAME]
    query = {"embedding_input": _embedding(explorer, 0), "modality": "image",
             "num_images": 5, "indice_name": NAME, "use_safety_model": False,
             "deduplicate": True, "use_violence_detector": False}
    results = client.post("/knn-service", json=query).json()
    assert results[0]["id"] == 0 and results[0]["similarity"] == pytest.approx(1, abs=1e-3)
    assert {"url", "caption", "id", "similarity"} <= set(results[0])
    text = client.post("/knn-service", json={"text": "a cat", "modality": "image",
                                             "num_images": 3, "indice_name": NAME}).json()
    assert len(text) <= 3 and all("url" in r for r in text)
    meta = client.post("/metadata", json={"ids": [0, results[-1]["id"]],
                                          "indice_name": NAME}).json()["metadata"]
    assert [m["id"] for m in meta] == [0, results[-1]["id"]]
    assert meta[0]["metadata"]["url"] == explorer.row(0)["URL"]
    bad = client.post("/knn-service", json={"text": "a", "indice_name": "other"})
    assert bad.status_code == 400


def test_the_explore_command_serves_the_release(store):
    """`laion-assets explore` on a free port answers the page and clip-retrieval's index list."""
    from laion_assets_tests.ui.conftest import free_port

    port = free_port()
    command = [sys.executable, "-m", "laion_assets.cli", "explore", "--store", store.root,
               "--release", f"{NAME}@v1", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/indices-list", timeout=5) as answer:
                    assert json.load(answer) == [NAME]
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.5)
        with urllib.request.urlopen(base, timeout=30) as answer:
            page = answer.read().decode()
        assert f"{NAME} v1" in page and "not meaningful" in page
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_more_like_this_searches_by_the_rows_image_embedding(client, explorer):
    for row in range(len(explorer.index)):  # each row's own embedding finds it first
        found = client.get("/api/search", params={"like": row, "safe": "0", "k": 3}).json()
        assert found["results"][0]["row"] == row
        assert found["results"][0]["score"] == pytest.approx(1, abs=1e-3)
    bad = client.get("/api/search", params={"like": len(explorer.index)})
    assert bad.status_code == 400 and "not in the index" in bad.json()["error"]


def test_filters_narrow_the_results(client, explorer):
    everything = client.get("/api/search", params={"like": 0, "safe": "0", "k": 200}).json()
    languages = {r["LANGUAGE"] for r in everything["results"]}
    assert {"en", "de"} <= languages
    german = client.get("/api/search", params={"like": 0, "safe": "0", "k": 200,
                                               "language": "de"}).json()["results"]
    assert german and {r["LANGUAGE"] for r in german} == {"de"}
    assert len(german) == sum(r["LANGUAGE"] == "de" for r in everything["results"])
    bound = sorted(r["punsafe"] for r in everything["results"])[len(everything["results"]) // 2]
    low = client.get("/api/search", params={"like": 0, "safe": "0", "k": 200,
                                            "max_punsafe": bound}).json()["results"]
    assert low and all(r["punsafe"] <= bound for r in low)
    assert len(low) == sum(r["punsafe"] <= bound for r in everything["results"])
    bad = client.get("/api/search", params={"like": 0, "max_pwatermark": "high"})
    assert bad.status_code == 400 and "max_pwatermark='high'" in bad.json()["error"]


def test_the_text_tower_is_the_releases_model(explorer):
    """A caption encoded by the explorer is the release's text embedding of that row: queries
    land in the index's embedding space (the model identity the page shows)."""
    folder = explorer.release.folder
    text = np.load(explorer.store.path(f"{folder}/text_emb/part-00000.npy")).astype(np.float32)
    for row in (0, len(explorer.index) - 1):
        query = explorer.encode_text(explorer.row(row)["TEXT"])
        cosine = query @ text[row] / (np.linalg.norm(query) * np.linalg.norm(text[row]))
        assert cosine > 0.999


def test_search_by_an_uploaded_image_finds_the_row_it_came_from(client, explorer):
    """The stored resized image of a row, uploaded, embeds (image tower) to that row's
    embedding: it comes back first, through the page's API and clip-retrieval's."""
    row = explorer.row(len(explorer.index) // 2)
    data = explorer.image(row["shard"], row["key"])
    found = client.post("/api/search", params={"safe": "0", "k": 3}, content=data).json()
    assert found["results"][0]["row"] == row["row"]
    assert found["results"][0]["score"] == pytest.approx(1, abs=1e-2)
    knn = client.post("/knn-service", json={"image": base64.b64encode(data).decode(),
                                            "num_images": 3, "indice_name": NAME,
                                            "use_safety_model": False}).json()
    assert knn[0]["id"] == row["row"]
    bad = client.post("/api/search", content=b"not an image")
    assert bad.status_code == 400 and "not an image that decodes" in bad.json()["error"]


def test_a_link_to_another_version_says_which_is_served(client):
    assert 'id="other-release"' not in client.get("/", params={"release": f"{NAME}@v1"}).text
    page = client.get("/", params={"release": f"{NAME}@v7"}).text
    assert 'id="other-release"' in page
    assert f"laion-assets explore --release {NAME}@v7" in page


def test_the_audit_view_of_a_shard_outside_the_version_says_so(client, explorer):
    source = explorer.release.source_shards[0].shard
    assert 'id="not-a-source"' not in client.get("/audit", params={"shard": source}).text
    page = client.get("/audit", params={"shard": "CC-MAIN-2099-99/shard-00000"}).text
    assert 'id="not-a-source"' in page and "CC-MAIN-2099-99/shard-00000" in page


def test_the_dagster_materializations_link_to_the_explorer(sample_release, explorer_instance,
                                                             explorer):
    """The release links to its version's search page, each safety materialization to its
    shard's audit view, at the deployment's explorer URL."""
    base = sample_release.defs.resources["dataset_store"].explorer_url.rstrip("/")
    event = explorer_instance.get_latest_materialization_event(AssetKey("release"))
    link = event.asset_materialization.metadata["explore"]
    assert isinstance(link, UrlMetadataValue)
    assert link.url == f"{base}/?release={NAME}%40v{explorer.version}"
    for source in explorer.release.source_shards:
        records = explorer_instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("safety_filtered_pairs"),
                               asset_partitions=[source.shard]), limit=1).records
        audit = records[0].asset_materialization.metadata["audit"]
        query = urllib.parse.urlencode({"shard": source.shard})
        assert audit.url == f"{base}/audit?{query}"
