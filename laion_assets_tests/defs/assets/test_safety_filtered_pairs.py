"""`safety_filtered_pairs` on a generated drop with an item planted for every rule."""

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest
import torch
from dagster import AssetCheckKey, AssetKey, AssetSelection, materialize

from laion_assets.definitions import build_definitions
from laion_assets.defs.assets.safety_filtered_pairs import (
    STAGE,
    no_listed_pair_passes,
    safety_filtered_pairs,
)
from laion_assets.defs.headless import materialize_drop
from laion_assets.defs.resources import SafetyPolicyResource
from laion_assets.pipeline.core.manifests import SafetyFilteredPairsManifest, require_current
from laion_assets.pipeline.download.images import pdq_bits_to_hex, pdq_hex_to_bits, process_image
from laion_assets.pipeline.formats.embeddings import read_embeddings
from laion_assets.pipeline.safety import run as safety_stage
from laion_assets.pipeline.safety.lists import load_lists
from laion_assets.pipeline.safety.nsfw_head import NsfwHead, nsfw_head
from laion_assets.pipeline.safety.stage import SafetyModels
from laion_assets.pipeline.safety.takedowns import append, new_takedown, read_ledger
from laion_assets.pipeline.safety.weights import load_model_file
from laion_assets.sample.drop import ImageSpec, Page, render_image, write_sample_drop
from laion_assets.settings import Settings
from laion_assets_tests import chains

SITE = "http://planted.example"
SHARD = "CC-MAIN-PLANTED/00000"


@dataclass(frozen=True)
class Case:
    spec: ImageSpec
    alt: str


def _image(name: str, size=(240, 160), fmt="JPEG", host=SITE, block=0) -> ImageSpec:
    return ImageSpec(f"{host}/img/{name}.{fmt.lower()}", fmt, size, noise=0.6, block=block)


CASES = {
    "clean": Case(_image("lake"), "A mountain lake at sunrise with pine trees"),
    "clean_2": Case(_image("harbour"), "Fishing boats in the old harbour at dusk"),
    "md5": Case(_image("listed-md5"), "A red bicycle leaning on a brick wall"),
    "sha1": Case(_image("listed-sha1"), "Autumn leaves on a wet forest path"),
    "sha256": Case(_image("listed-sha256"), "A bowl of ramen with a soft boiled egg"),
    "pdq": Case(_image("listed-pdq"), "Snow covered cabin under the northern lights"),
    "url_list": Case(_image("listed-url"), "A lighthouse on a rocky cliff in fog"),
    "opt_out_domain": Case(_image("photo", host="http://cdn.optout.example"),
                           "An artist's watercolour of a city street"),
    "opt_out_url": Case(_image("opted-out"), "A handmade ceramic vase on a shelf"),
    "takedown_url": Case(_image("taken-down"), "A private family picnic in a park"),
    "takedown_domain": Case(_image("pic", host="http://img.removed.example"),
                            "A portrait photo in a garden"),
    "takedown_sha256": Case(_image("taken-down-bytes"), "A street market full of spices"),
    "email": Case(_image("email"), "Prints of this harbour view: jane.doe@mail.example.com"),
    "phone": Case(_image("phone"), "Book this holiday cottage, call +49 30 1234567 today"),
    "nsfw_keyword": Case(_image("kw"), "xxx video gallery with many clips"),
    "minor_nsfw": Case(_image("kw-minor"), "nsfw teen picture set from the archive"),
    "small": Case(_image("small", size=(90, 90), fmt="PNG", block=1),
                  "A tiny thumbnail of a sunflower"),
    "aspect": Case(_image("banner", size=(640, 120)), "A long panorama banner of a beach"),
    "short_text": Case(_image("short"), "Tiny alt"),
    "long_text": Case(_image("long"), "A very long caption " + "with many words " * 16),
}
EXPECTED_RULE = {
    "md5": "hash_list", "sha1": "hash_list", "sha256": "hash_list", "pdq": "hash_list",
    "url_list": "url_list", "opt_out_domain": "opt_out_domain", "opt_out_url": "opt_out_url",
    "takedown_url": "takedown", "takedown_domain": "takedown", "takedown_sha256": "takedown",
    "email": "personal_data", "phone": "personal_data", "nsfw_keyword": "nsfw_keyword",
    "minor_nsfw": "minor_nsfw", "small": "image_too_small", "aspect": "aspect_ratio",
    "short_text": "text_too_short", "long_text": "text_too_long",
}
MANDATORY = ("md5", "sha1", "sha256", "pdq", "url_list", "takedown_url", "takedown_domain",
             "takedown_sha256")
POLICY = {"similarity_mode": "off", "min_side": 100, "min_text_chars": 12,
          "max_text_chars": 200}


def _planted_page() -> Page:
    body = "".join(f'<p><img src="{c.spec.url}" alt="{c.alt}"></p>\n' for c in CASES.values())
    html = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Gallery</title>"
            f"</head><body><h1>Gallery</h1>{body}</body></html>")
    return Page(f"{SITE}/gallery.html", html, images=tuple(c.spec for c in CASES.values()))


def _bytes(case: str) -> bytes:
    return render_image(CASES[case].spec, seed=0)


def _near_pdq(data: bytes, flips: int = 9) -> str:
    bits = pdq_hex_to_bits(process_image(data).pdq).copy()
    bits[np.arange(flips) * 23] ^= 1
    return pdq_bits_to_hex(bits)


def _plant_lists(store) -> None:
    def put(path: str, lines: list[str]) -> None:
        with store.open(path, "wb") as handle:
            handle.write(("# planted by the test\n\n" + "\n".join(lines) + "\n").encode())

    put("safety/hash_lists/md5/partner.txt", [hashlib.md5(_bytes("md5")).hexdigest().upper()])
    put("safety/hash_lists/sha1/partner.txt", [hashlib.sha1(_bytes("sha1")).hexdigest()])
    put("safety/hash_lists/sha256/partner.txt", [hashlib.sha256(_bytes("sha256")).hexdigest()])
    put("safety/hash_lists/pdq/partner.txt", [_near_pdq(_bytes("pdq"))])
    put("safety/hash_lists/url/partner.txt", [CASES["url_list"].spec.url])
    put("safety/opt_outs/domain/optouts.txt", ["optout.example"])
    put("safety/opt_outs/url/optouts.txt", [CASES["opt_out_url"].spec.url])
    append(store, [
        new_takedown("url", CASES["takedown_url"].spec.url, "privacy request"),
        new_takedown("domain", "removed.example", "site owner opted out"),
        new_takedown("sha256", hashlib.sha256(_bytes("takedown_sha256")).hexdigest(),
                     "hash list from a partner"),
    ])


instance = chains.module_instance


@pytest.fixture(scope="module")
def planted(tmp_path_factory, instance):
    """One materialized planted drop for the module (tests that change it come last)."""
    tmp_path = tmp_path_factory.mktemp("planted")
    settings = Settings(store=str(tmp_path / "store"), drops="", shard_size=1, listing_base=None,
                        s3_endpoint=None, fetch_sources=("replay",), clip_pretrained=None,
                        clip_batch_size=32)
    drops = tmp_path / "planted-drops"
    write_sample_drop(drops / "CC-MAIN-PLANTED", n_files=1, pages_per_file=3,
                      extra_pages=[_planted_page()])
    settings = type(settings)(**{**settings.__dict__, "drops": str(drops)})
    defs = build_definitions(settings, SafetyPolicyResource(**POLICY))
    store = defs.resources["dataset_store"].store()
    _plant_lists(store)
    runs = materialize_drop(str(drops / "CC-MAIN-PLANTED"), defs, instance, log=lambda _: None)
    assert [r.success for r in runs] == [True]
    return defs, store


def _pair_ids(store) -> dict[str, int]:
    pairs = store.read_parquet(store.require_current("extracted_pairs", SHARD)["file"])
    by_url = dict(zip(pairs.column("url").to_pylist(), pairs.column("pair_id").to_pylist(),
                      strict=True))
    return {name: by_url[case.spec.url] for name, case in CASES.items()}


def _outputs(store):
    manifest = store.require_current(STAGE, SHARD)
    exclusions = store.read_parquet(manifest["files"]["exclusions.parquet"]).to_pylist()
    passed = store.read_parquet(manifest["files"]["pairs.parquet"])
    return manifest, exclusions, passed


def _rules_of(exclusions: list[dict]) -> dict[int, dict[str, str]]:
    rules: dict[int, dict[str, str]] = {}
    for row in exclusions:
        rules.setdefault(row["pair_id"], {})[row["rule"]] = row["detail"]
    return rules


def _rematerialize(defs, instance, **policy):
    resources = {**defs.resources, "safety_policy": SafetyPolicyResource(**policy)}
    result = materialize([safety_filtered_pairs, no_listed_pair_passes], resources=resources,
                         partition_key=SHARD, instance=instance, raise_on_error=False)
    return result


def test_every_planted_item_is_excluded_with_its_reason(planted, instance):
    defs, store = planted
    ids = _pair_ids(store)
    assert process_image(_bytes("pdq")).pdq_quality >= 50  # else the PDQ rule may not apply
    manifest, exclusions, passed = _outputs(store)
    rules = _rules_of(exclusions)
    for case, rule in EXPECTED_RULE.items():
        got = rules.get(ids[case], {})
        assert rule in got, f"{case}: expected {rule}, got {got}"
    assert {"clean", "clean_2"} <= {n for n, i in ids.items() if i not in rules}
    assert set(passed.column("pair_id").to_pylist()) >= {ids["clean"], ids["clean_2"]}
    assert not set(passed.column("pair_id").to_pylist()) & {ids[c] for c in EXPECTED_RULE}
    details = {case: rules[ids[case]][EXPECTED_RULE[case]] for case in EXPECTED_RULE}
    assert details["md5"] == "md5 in safety/hash_lists/md5/partner.txt"
    assert details["sha1"] == "sha1 in safety/hash_lists/sha1/partner.txt"
    assert details["pdq"] == "pdq in safety/hash_lists/pdq/partner.txt (distance 9)"
    assert details["opt_out_domain"] == "optout.example in safety/opt_outs/domain/optouts.txt"
    assert details["takedown_domain"].endswith("(domain): site owner opted out")
    assert details["email"] == "email" and details["phone"] == "phone"
    assert "'teen'" in details["minor_nsfw"]
    assert manifest["excluded_by_rule"]["hash_list"] == 4


def test_every_pair_is_either_passed_or_explained(planted):
    _, store = planted
    pairs = store.read_parquet(store.require_current("extracted_pairs", SHARD)["file"])
    manifest, exclusions, passed = _outputs(store)
    explained = {row["pair_id"] for row in exclusions}
    kept = set(passed.column("pair_id").to_pylist())
    assert not kept & explained
    assert kept | explained == set(pairs.column("pair_id").to_pylist())
    assert manifest["candidates"] == pairs.num_rows and manifest["rows"] == len(kept)
    embeddings = read_embeddings(lambda n: store.open(f"{manifest['folder']}/{n}"))
    assert embeddings.ids.column("pair_id").to_pylist() == passed.column("pair_id").to_pylist()
    assert {"url", "text", "width", "height", "similarity", "punsafe", "pwatermark",
            "language", "warc_file", "warc_record_offset", "sha256", "pdq"} <= set(
        passed.column_names)


def test_the_ui_shows_counts_histograms_and_thresholds(planted, instance):
    records = instance.fetch_materializations(AssetKey(STAGE), limit=1).records
    meta = records[0].asset_materialization.metadata
    assert "| hash_list | 4 |" in meta["excluded_by_rule"].value
    for name in ("similarity_histogram", "punsafe_histogram", "pwatermark_histogram"):
        assert "| pairs |" in meta[name].value
    thresholds = meta["thresholds"].value
    assert thresholds["punsafe"] == 0.45 and thresholds["pwatermark"] == 0.8
    assert thresholds["min_side"] == 100 and thresholds["similarity"] == {"off": 0.3}
    check = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey(STAGE), "no_listed_pair_passes"), limit=1)
    assert check and check[0].evaluation.passed


def test_small_batches_write_what_one_batch_writes(planted):
    """The stage run 4 candidates at a time writes the rows, reasons and counts that the
    asset's run (one batch) wrote; the counts add up across batches."""
    defs, store = planted
    one = require_current(store, SafetyFilteredPairsManifest, SHARD)
    scorer = defs.resources["clip_model"].scorer()
    policy = SafetyPolicyResource(**POLICY)
    batched = safety_stage.run(
        store, SHARD, policy=policy.policy(), lists=load_lists(store), ledger=read_ledger(store),
        models=SafetyModels(scorer.encode_texts), model_identity=scorer.identity.to_dict(),
        log=lambda _: None, batch_rows=4)
    batched = require_current(store, SafetyFilteredPairsManifest, SHARD)  # as JSON holds it
    assert batched.attempt != one.attempt and batched.candidates > 5 * 4  # many batches
    for name in ("rows", "candidates", "redacted", "histograms", "data_version"):
        assert getattr(batched, name) == getattr(one, name), name
    assert list(batched.excluded_by_rule.items()) == list(one.excluded_by_rule.items())
    for manifest in (one, batched):
        exclusions = store.read_parquet(manifest.exclusions_file).to_pylist()
        per_rule: dict[str, set[int]] = {}
        for row in exclusions:
            per_rule.setdefault(row["rule"], set()).add(row["pair_id"])
        assert {r: len(ids) for r, ids in per_rule.items()} == manifest.excluded_by_rule
        scores = store.read_parquet(manifest.files["scores.parquet"])
        assert scores.num_rows == manifest.candidates
        assert sum(scores.column("passed").to_pylist()) == manifest.rows
    for name in ("pairs.parquet", "scores.parquet"):
        _same_table(store.read_parquet(batched.files[name]), store.read_parquet(one.files[name]))
    assert _sorted_rows(store, batched.exclusions_file) == _sorted_rows(store, one.exclusions_file)
    a, b = (read_embeddings(lambda n, m=m: store.open(f"{m.folder}/{n}")) for m in (one, batched))
    assert a.ids.equals(b.ids)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.text, b.text)


def _same_table(got, expected) -> None:
    """Equal tables; model scores equal to float32 rounding (a matrix product over another
    number of rows may round its last bit differently)."""
    assert got.schema == expected.schema
    for name in expected.column_names:
        a, b = got.column(name), expected.column(name)
        if pa.types.is_floating(a.type):
            np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=name)  # NaN (not scored) equals NaN
        else:
            assert a.to_pylist() == b.to_pylist(), name


def _sorted_rows(store, file: str) -> list[tuple]:
    return sorted(tuple(r.values()) for r in store.read_parquet(file).to_pylist())


def test_listed_items_never_pass_even_with_every_switch_off(planted, instance):
    defs, store = planted
    ids = _pair_ids(store)
    result = _rematerialize(defs, instance, similarity_mode="off", min_bytes=0,
                            max_aspect_ratio=1000.0, min_text_chars=0, max_text_chars=10_000,
                            punsafe_threshold=2.0, use_nsfw_keywords=False, minor_keywords=[],
                            watermark_enabled=False, personal_data="off",
                            pdq_max_distance=31)
    assert result.success
    _, exclusions, passed = _outputs(store)
    kept = set(passed.column("pair_id").to_pylist())
    assert not kept & {ids[c] for c in MANDATORY}
    assert {ids[c] for c in ("email", "nsfw_keyword", "aspect", "long_text")} <= kept


def test_redacting_keeps_the_pair_with_a_clean_caption(planted, instance):
    defs, store = planted
    ids = _pair_ids(store)
    assert _rematerialize(defs, instance, **POLICY, personal_data="redact").success
    _, _, passed = _outputs(store)
    rows = {r["pair_id"]: r for r in passed.to_pylist()}
    assert rows[ids["email"]]["text"] == "Prints of this harbour view: [email]"
    assert rows[ids["email"]]["text_redacted"] and not rows[ids["clean"]]["text_redacted"]
    assert rows[ids["phone"]]["text"] == "Book this holiday cottage, call [phone] today"


def test_a_new_takedown_fails_the_check_until_the_shard_is_refiltered(planted, instance):
    defs, store = planted
    ids = _pair_ids(store)
    append(store, [new_takedown("url", CASES["clean"].spec.url, "photographer's request")])
    check_only = materialize([safety_filtered_pairs, no_listed_pair_passes],
                             resources=defs.resources, instance=instance,
                             tags={"dagster/partition": SHARD},
                             selection=AssetSelection.checks(no_listed_pair_passes),
                             raise_on_error=False)
    assert not _latest_check(instance).passed
    assert not check_only.success  # blocking
    assert _rematerialize(defs, instance, **POLICY).success
    _, exclusions, passed = _outputs(store)
    assert ids["clean"] not in set(passed.column("pair_id").to_pylist())
    assert "photographer's request" in _rules_of(exclusions)[ids["clean"]]["takedown"]
    assert _latest_check(instance).passed


def _latest_check(instance):
    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey(STAGE), "no_listed_pair_passes"), limit=1)
    return history[0].evaluation


def test_an_nsfw_head_scores_and_its_threshold_applies(planted, instance, tmp_path):
    defs, store = planted
    torch.manual_seed(3)
    head = nsfw_head(512)
    for parameter in head.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    head.norm.variance.fill_(0.002)
    path = tmp_path / "nsfw-head.pt"
    torch.save(head.state_dict(), path)
    scored = store.require_current("clip_scored_pairs", SHARD)
    clip = read_embeddings(lambda n: store.open(f"{scored['folder']}/{n}"))
    expected = NsfwHead(load_model_file(str(path)), 512).punsafe(np.asarray(clip.image))
    threshold = float(np.median(expected))
    assert _rematerialize(defs, instance, **POLICY, nsfw_head=str(path),
                          punsafe_threshold=threshold).success
    manifest = store.require_current(STAGE, SHARD)
    scores = store.read_parquet(manifest["files"]["scores.parquet"])
    by_pair = dict(zip(scores.column("pair_id").to_pylist(),
                       scores.column("punsafe").to_pylist(), strict=True))
    got = np.array([by_pair[p] for p in clip.ids.column("pair_id").to_pylist()], np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    flagged = {p for p, rules in zip(scores.column("pair_id").to_pylist(),
                                     scores.column("rules").to_pylist(), strict=True)
               if "nsfw" in rules.split(",")}
    over = {p for p, v in by_pair.items() if v is not None and v >= threshold}
    assert flagged == over and 0 < len(over) < len(by_pair)
    assert manifest["safety_models"]["nsfw"]["source"] == str(path)
