"""The safety rules on small hand-built shards, and the guarantee that listed pairs never pass."""

import dataclasses
import hashlib
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_assets.pipeline.safety.concepts import Concept
from laion_assets.pipeline.safety.hashlists import load_exact, load_pdq
from laion_assets.pipeline.safety.lists import SafetyLists
from laion_assets.pipeline.safety.policy import (
    NsfwRules,
    QualityRules,
    SafetyPolicy,
    WatermarkRules,
)
from laion_assets.pipeline.safety.rules import (
    MANDATORY_RULES,
    RULES,
    Candidates,
    Decisions,
    ModelScores,
    RuleContext,
    evaluate,
)
from laion_assets.pipeline.safety.takedowns import Takedown, new_takedown
from laion_assets.pipeline.safety.verify import COLUMNS, listed_pairs, listed_pairs_in

MD5_LIST = "safety/hash_lists/md5/partner.txt"
SHA1_LIST = "safety/hash_lists/sha1/partner.txt"
SHA256_LIST = "safety/hash_lists/sha256/partner.txt"
PDQ_LIST = "safety/hash_lists/pdq/partner.txt"
URL_LIST = "safety/hash_lists/url/partner.txt"
DOMAIN_OPTOUTS = "safety/opt_outs/domain/requests.txt"
URL_OPTOUTS = "safety/opt_outs/url/requests.txt"


def _digest(kind: str, i: int, salt: str = "") -> str:
    return hashlib.new(kind, f"image {i}{salt}".encode()).hexdigest()


def _pdq(seed: int) -> str:
    return random.Random(seed).randbytes(32).hex()


def _flip(hex_hash: str, bits: int) -> str:
    """`hex_hash` with its first `bits` bits flipped (Hamming distance `bits`)."""
    value = int(hex_hash, 16) ^ (((1 << bits) - 1) << (256 - bits))
    return f"{value:064x}"


def _row(i: int, **changes) -> dict:
    """A candidate that passes the default policy, and its model scores."""
    row = {
        "pair_id": 1000 + i, "url": f"https://img{i}.example.org/photos/{i}.jpg",
        "text": f"a red bicycle leaning on a wall, picture {i}", "language": "en",
        "fetch_status": "ok", "fetch_reason": None, "fetch_detail": None,
        "width": 640, "height": 480, "bytes": 50_000, "sha256": _digest("sha256", i),
        "md5": _digest("md5", i), "sha1": _digest("sha1", i), "pdq": _pdq(i),
        "pdq_quality": 100, "similarity": 0.35,
        "punsafe": 0.01, "punsafe_detail": "head", "nsfw_concept": False, "minor_concept": None,
        "pwatermark": 0.01, "pwatermark_detail": "model",
    }
    unknown = set(changes) - set(row)
    assert not unknown, unknown
    return {**row, **changes}


def _shard(rows: list[dict]) -> tuple[Candidates, ModelScores]:
    column = {name: [r[name] for r in rows] for name in rows[0]}
    candidates = Candidates(
        pair_id=np.array(column["pair_id"], np.int64), url=column["url"], text=column["text"],
        language=column["language"], fetch_status=column["fetch_status"],
        fetch_reason=column["fetch_reason"], fetch_detail=column["fetch_detail"],
        width=np.array(column["width"], np.int64), height=np.array(column["height"], np.int64),
        bytes=np.array(column["bytes"], np.int64), sha256=column["sha256"], md5=column["md5"],
        sha1=column["sha1"], pdq=column["pdq"],
        pdq_quality=np.array(column["pdq_quality"], np.int64),
        similarity=np.array(column["similarity"], np.float32))
    scores = ModelScores(
        punsafe=np.array(column["punsafe"], np.float32), punsafe_detail=column["punsafe_detail"],
        nsfw_concept=np.array(column["nsfw_concept"], bool),
        minor_concept=column["minor_concept"],
        pwatermark=np.array(column["pwatermark"], np.float32),
        pwatermark_detail=column["pwatermark_detail"])
    return candidates, scores


def _lists(md5=(), sha1=(), sha256=(), pdq=(), urls=(), optout_domains=(), optout_urls=()):
    def exact(kind, values, name):
        return [(name, load_exact(kind, [(name, list(values))]))] if values else []

    return SafetyLists(
        exact={"md5": exact("md5", md5, MD5_LIST), "sha1": exact("sha1", sha1, SHA1_LIST),
               "sha256": exact("sha256", sha256, SHA256_LIST)},
        pdq=[(PDQ_LIST, load_pdq([(PDQ_LIST, list(pdq))]))] if pdq else [],
        urls=[(URL_LIST, frozenset(urls))] if urls else [],
        optout_domains=[(DOMAIN_OPTOUTS, frozenset(optout_domains))] if optout_domains else [],
        optout_urls=[(URL_OPTOUTS, frozenset(optout_urls))] if optout_urls else [])


def _evaluate(rows, policy=None, lists=None, ledger=()) -> Decisions:
    candidates, scores = _shard(rows)
    return evaluate(RuleContext(candidates, policy or SafetyPolicy(), lists or _lists(),
                                list(ledger), scores))


def _hits(decisions: Decisions) -> dict[int, dict[str, list[tuple[str, str]]]]:
    """Row -> rule -> [(detail, value)]."""
    out: dict[int, dict[str, list[tuple[str, str]]]] = {}
    for h in decisions.hits:
        for i, detail, value in zip(h.index, h.detail, h.value, strict=True):
            out.setdefault(i, {}).setdefault(h.rule, []).append((detail, value))
    return out


def _policy(**changes) -> SafetyPolicy:
    parts = {"quality": QualityRules, "nsfw": NsfwRules, "watermark": WatermarkRules}
    fields = {name: cls(**changes.pop(name)) for name, cls in parts.items() if name in changes}
    return SafetyPolicy(**fields, **changes)


def test_clean_rows_pass():
    rows = [_row(i) for i in range(12)]
    decisions = _evaluate(rows)
    assert decisions.passed.all() and _hits(decisions) == {}
    assert decisions.text == [r["text"] for r in rows] and not decisions.redacted.any()
    assert decisions.counts() == {}


def test_fetch_and_scoring_rules():
    nan = float("nan")
    rows = [
        _row(0),
        _row(1, fetch_status="failed", fetch_reason="http_404", fetch_detail="HTTP 404",
             width=-1, height=-1, bytes=-1, similarity=nan, sha256=None, md5=None, sha1=None,
             pdq=None, pdq_quality=-1),
        _row(2, fetch_status=None, width=-1, height=-1, bytes=-1, similarity=nan),
        _row(3, fetch_status="failed", fetch_reason="x_robots_tag", fetch_detail="noai",
             similarity=nan),
        _row(4, similarity=nan),  # fetched, but CLIP could not decode it
    ]
    decisions = _evaluate(rows)
    hits = _hits(decisions)
    assert decisions.passed.tolist() == [True, False, False, False, False]
    assert hits[1] == {"not_fetched": [("http_404", "HTTP 404")]}
    assert hits[2] == {"not_fetched": [("no_fetch_result", "")]}
    assert hits[3] == {"opt_out_x_robots_tag": [("x_robots_tag", "noai")]}
    assert hits[4] == {"not_scored": [("image did not decode for CLIP", rows[4]["sha256"])]}


@pytest.mark.parametrize("kind", ["md5", "sha1", "sha256"])
def test_exact_hash_lists(kind):
    rows = [_row(i) for i in range(6)]
    listed = rows[2][kind]
    lists = _lists(**{kind: [listed.upper(), _digest(kind, 99)]})
    decisions = _evaluate(rows, lists=lists)
    name = {"md5": MD5_LIST, "sha1": SHA1_LIST, "sha256": SHA256_LIST}[kind]
    assert decisions.passed.tolist() == [True, True, False, True, True, True]
    assert _hits(decisions) == {2: {"hash_list": [(f"{kind} in {name}", listed)]}}


def test_pdq_hash_list_within_distance_and_quality():
    listed = _pdq(100)
    rows = [
        _row(0, pdq=listed),  # distance 0
        _row(1, pdq=_flip(listed, 31)),  # at the default limit
        _row(2, pdq=_flip(listed, 32)),  # beyond it
        _row(3, pdq=_flip(listed, 5), pdq_quality=50),  # quality at the minimum
        _row(4, pdq=_flip(listed, 5), pdq_quality=49),  # under it: PDQ is not trusted
        _row(5, pdq=listed, pdq_quality=-1),  # unknown quality
        _row(6, pdq=None, pdq_quality=-1),
        _row(7),
    ]
    decisions = _evaluate(rows, lists=_lists(pdq=[listed]))
    assert decisions.passed.tolist() == [False, False, True, False, True, True, True, True]
    hits = _hits(decisions)
    assert hits[0] == {"hash_list": [(f"pdq in {PDQ_LIST} (distance 0)", listed)]}
    assert hits[1]["hash_list"][0][0] == f"pdq in {PDQ_LIST} (distance 31)"
    assert hits[3]["hash_list"][0][0] == f"pdq in {PDQ_LIST} (distance 5)"
    # the policy's distance and quality limits are used
    strict = _evaluate(rows, policy=_policy(pdq_max_distance=4, pdq_min_quality=100),
                       lists=_lists(pdq=[listed]))
    assert strict.passed.tolist() == [False] + [True] * 7  # only the exact one, quality 100
    with pytest.raises(ValueError, match="pdq_min_quality 101"):  # would match nothing
        _policy(pdq_min_quality=101)
    loose = _evaluate(rows, policy=_policy(pdq_max_distance=40, pdq_min_quality=0),
                      lists=_lists(pdq=[listed]))
    assert loose.passed.tolist() == [False] * 5 + [True, True, True]  # -1 < 0: unknown


def test_url_list_and_opt_outs():
    rows = [
        _row(0),
        _row(1, url="https://cdn.example.net/listed.jpg"),
        _row(2, url="https://optout.example/a.jpg"),
        _row(3, url="https://img.static.optout.example/b.jpg"),  # a subdomain
        _row(4, url="https://notoptout.example/c.jpg"),  # not a subdomain
        _row(5, url="https://example.com/opted-out.png"),
    ]
    lists = _lists(urls=[rows[1]["url"]], optout_domains=["optout.example"],
                   optout_urls=[rows[5]["url"]])
    decisions = _evaluate(rows, lists=lists)
    assert decisions.passed.tolist() == [True, False, False, False, True, False]
    assert _hits(decisions) == {
        1: {"url_list": [(f"url in {URL_LIST}", rows[1]["url"])]},
        2: {"opt_out_domain": [(f"optout.example in {DOMAIN_OPTOUTS}", "optout.example")]},
        3: {"opt_out_domain": [(f"optout.example in {DOMAIN_OPTOUTS}",
                                "img.static.optout.example")]},
        5: {"opt_out_url": [(f"url in {URL_OPTOUTS}", rows[5]["url"])]},
    }


def test_takedown_ledger():
    listed_pdq = _pdq(200)
    rows = [
        _row(0),
        _row(1, url="https://img.example.org/taken-down.jpg"),
        _row(2, url="https://a.b.removed.example/x.jpg"),
        _row(3, url="https://removed.example/y.jpg"),
        _row(4, url="https://notremoved.example/z.jpg"),
        _row(5),
        _row(6),
        _row(7),
        _row(8, pdq=_flip(listed_pdq, 10)),
        _row(9, pdq=_flip(listed_pdq, 10), pdq_quality=10),
    ]
    ledger = [
        new_takedown("url", "HTTPS://IMG.example.org/taken-down.jpg#top", "DMCA 1"),
        new_takedown("domain", "Removed.Example", "site owner request"),
        new_takedown("sha256", rows[5]["sha256"].upper(), "court order"),
        new_takedown("md5", rows[6]["md5"], "NCII report"),
        new_takedown("sha1", rows[7]["sha1"], "partner report"),
        new_takedown("pdq", listed_pdq, "perceptual match"),
    ]
    decisions = _evaluate(rows, ledger=ledger)
    assert decisions.passed.tolist() == [True, False, False, False, True,
                                         False, False, False, False, True]

    def detail(entry: Takedown) -> str:
        return f"{entry.id} ({entry.kind}): {entry.reason}"

    assert _hits(decisions) == {
        1: {"takedown": [(detail(ledger[0]), rows[1]["url"])]},
        2: {"takedown": [(detail(ledger[1]), "removed.example")]},
        3: {"takedown": [(detail(ledger[1]), "removed.example")]},
        5: {"takedown": [(detail(ledger[2]), rows[5]["sha256"])]},
        6: {"takedown": [(detail(ledger[3]), rows[6]["md5"])]},
        7: {"takedown": [(detail(ledger[4]), rows[7]["sha1"])]},
        8: {"takedown": [(f"pdq matches {detail(ledger[5])} (distance 10)", rows[8]["pdq"])]},
    }


def test_takedown_details_name_the_matching_entry():
    """Duplicate PDQ entries in the ledger (two requests for one image) must not shift the
    entry a match is attributed to, and upper-case digests match without failing."""
    first, second = _pdq(300), _pdq(301)
    rows = [_row(0, pdq=second), _row(1, sha256=_digest("sha256", 1).upper())]
    ledger = [new_takedown("pdq", first, "request A"), new_takedown("pdq", first, "request B"),
              new_takedown("pdq", second, "request C"),
              new_takedown("sha256", _digest("sha256", 1), "request D")]
    decisions = _evaluate(rows, ledger=ledger)
    assert not decisions.passed.any()
    hits = _hits(decisions)
    assert hits[0]["takedown"][0][0].startswith(f"pdq matches {ledger[2].id} (pdq): request C")
    assert hits[1]["takedown"][0][0] == f"{ledger[3].id} (sha256): request D"


def test_similarity_threshold_per_language_and_default():
    rows = [
        _row(0, language="en", similarity=0.28),  # at the English threshold: kept
        _row(1, language="en", similarity=0.2799),
        _row(2, language="de", similarity=0.27),  # the default threshold (0.26) applies
        _row(3, language="de", similarity=0.2599),
        _row(4, language="fr", similarity=0.2999),
        _row(5, language="und", similarity=0.26),
    ]
    policy = _policy(quality={"similarity_thresholds": {"en": 0.28, "fr": 0.30}})
    decisions = _evaluate(rows, policy=policy)
    assert decisions.passed.tolist() == [True, False, True, False, False, True]
    hits = _hits(decisions)
    assert hits[1] == {"similarity": [("< 0.280 (en)", "0.2799")]}
    assert hits[3] == {"similarity": [("< 0.260 (de)", "0.2599")]}
    assert hits[4] == {"similarity": [("< 0.300 (fr)", "0.2999")]}
    off = _evaluate(rows, policy=_policy(quality={"similarity_mode": "off"}))
    assert off.passed.all()


def test_similarity_top_fraction():
    sims = [0.1, 0.5, 0.3, 0.9, 0.2, 0.7, 0.4, 1.0, 0.6, 0.8]
    rows = [_row(i, similarity=s) for i, s in enumerate(sims)]
    rows.append(_row(10, similarity=float("nan")))  # not scored: not in the ranking
    policy = _policy(quality={"similarity_mode": "top_fraction", "top_fraction": 0.3})
    decisions = _evaluate(rows, policy=policy)
    assert np.flatnonzero(decisions.passed).tolist() == [3, 7, 9]  # 0.9, 1.0, 0.8
    hits = _hits(decisions)
    assert set(i for i, h in hits.items() if "similarity" in h) == {0, 1, 2, 4, 5, 6, 8}
    assert hits[0]["similarity"][0][0].startswith("below the top 30% (cutoff 0.7")
    everything = _policy(quality={"similarity_mode": "top_fraction", "top_fraction": 1.0})
    assert _evaluate(rows, policy=everything).passed.sum() == 10


def test_image_rules():
    rows = [
        _row(0),
        _row(1, width=99, height=200),  # shorter side under 100
        _row(2, bytes=4_999),
        _row(3, bytes=5_000),  # at the minimum: kept
        _row(4, bytes=-1),  # size unknown: not judged
        _row(5, width=900, height=300),  # 3:1 exactly: kept
        _row(6, width=301, height=904),  # 3.0:1 rounded, but over 3
        _row(7, width=1000, height=90),  # too wide and too small
    ]
    policy = _policy(quality={"min_side": 100})
    decisions = _evaluate(rows, policy=policy)
    assert decisions.passed.tolist() == [True, False, False, True, True, True, False, False]
    hits = _hits(decisions)
    assert hits[1] == {"image_too_small": [("shorter side < 100 px", "99x200")]}
    assert hits[2] == {"image_too_few_bytes": [("< 5000 bytes", "4999")]}
    assert hits[6] == {"aspect_ratio": [("> 3:1", "301x904")]}
    assert set(hits[7]) == {"image_too_small", "aspect_ratio"}


def test_text_length_rules():
    rows = [_row(0, text="abcd"), _row(1, text="abcde"), _row(2, text="x" * 1_000),
            _row(3, text="x" * 1_001), _row(4, text="")]
    decisions = _evaluate(rows)
    assert decisions.passed.tolist() == [False, True, True, False, False]
    hits = _hits(decisions)
    assert hits[0] == {"text_too_short": [("< 5 characters", "abcd")]}
    assert hits[3] == {"text_too_long": [("> 1000 characters", "1001")]}
    assert hits[4] == {"text_too_short": [("< 5 characters", "")]}


def test_nsfw_score_and_keywords():
    nan = float("nan")
    rows = [
        _row(0, punsafe=0.45, punsafe_detail="head"),  # at the threshold
        _row(1, punsafe=0.4499),
        _row(2, punsafe=nan),  # no score never fires
        _row(3, text="Free XXX videos tonight"),
        _row(4, url="http://x.example/xxx_video.jpg"),
        _row(5, text="Essex and Sussex landscapes", url="https://img.example/sussex.jpg"),
        _row(6, punsafe=0.9, punsafe_detail="zero-shot: 'a pornographic photo'"),
    ]
    decisions = _evaluate(rows)
    assert decisions.passed.tolist() == [False, True, True, False, False, True, False]
    hits = _hits(decisions)
    assert hits[0] == {"nsfw": [("punsafe >= 0.45 (head)", "0.4500")]}
    assert hits[3] == {"nsfw_keyword": [("keyword 'xxx'", "xxx")]}
    assert hits[4] == {"nsfw_keyword": [("keyword 'xxx'", "xxx")]}
    assert hits[6] == {"nsfw": [("punsafe >= 0.45 (zero-shot: 'a pornographic photo')",
                                 "0.9000")]}
    no_keywords = _evaluate(rows, policy=_policy(nsfw={"use_keywords": False}))
    assert no_keywords.passed.tolist() == [False, True, True, True, True, True, False]
    stricter = _evaluate(rows, policy=_policy(nsfw={"threshold": 0.3, "keywords": ("videos",)}))
    assert stricter.passed.tolist() == [False, False, True, False, True, True, False]


def test_minor_with_an_nsfw_signal_is_excluded():
    rows = [
        _row(0, minor_concept="a photo of a child"),  # minor alone: not excluded
        _row(1, text="kids playing football in the park"),  # minor keyword alone
        _row(2, minor_concept="a photo of a child", nsfw_concept=True, punsafe=0.3),
        _row(3, text="teen xxx video"),  # minor keyword + NSFW keyword
        _row(4, minor_concept="a photo of a teenager", punsafe=0.5),
        _row(5, text="baby photo", url="https://img.example/nude/1.jpg"),
        _row(6, nsfw_concept=True, punsafe=0.3),  # an NSFW concept alone is not a rule
    ]
    decisions = _evaluate(rows)
    assert decisions.passed.tolist() == [True, True, False, False, False, False, True]
    hits = _hits(decisions)
    assert hits[2] == {"minor_nsfw": [(
        "minor signal 'a photo of a child' with an NSFW signal", "punsafe 0.3000")]}
    assert set(hits[3]) == {"nsfw_keyword", "minor_nsfw"}
    assert hits[3]["minor_nsfw"][0][0] == "minor signal 'teen' with an NSFW signal"
    assert set(hits[4]) == {"nsfw", "minor_nsfw"}
    assert set(hits[5]) == {"nsfw_keyword", "minor_nsfw"}
    # the NSFW keyword switch turns the keyword rule off, not the minor rule
    no_keywords = _evaluate(rows, policy=_policy(nsfw={"use_keywords": False}))
    assert no_keywords.passed.tolist() == [True, True, False, False, False, False, True]
    assert set(_hits(no_keywords)[3]) == {"minor_nsfw"}
    # without minor keywords, only the concept and the score remain
    no_minor_words = _evaluate(rows, policy=_policy(nsfw={"minor_keywords": ()}))
    assert no_minor_words.passed.tolist() == [True, True, False, False, False, False, True]
    assert set(_hits(no_minor_words)[3]) == {"nsfw_keyword"}


def test_watermark():
    rows = [_row(0, pwatermark=0.8), _row(1, pwatermark=0.7999),
            _row(2, pwatermark=float("nan")), _row(3, pwatermark=0.95,
                                                   pwatermark_detail="zero-shot: 'logo'")]
    decisions = _evaluate(rows)
    assert decisions.passed.tolist() == [False, True, True, False]
    hits = _hits(decisions)
    assert hits[0] == {"watermark": [("pwatermark >= 0.8 (model)", "0.8000")]}
    assert hits[3] == {"watermark": [("pwatermark >= 0.8 (zero-shot: 'logo')", "0.9500")]}
    disabled = _evaluate(rows, policy=_policy(watermark={"enabled": False}))
    assert disabled.passed.all()
    assert _evaluate(rows, policy=_policy(watermark={"threshold": 0.5})).passed.tolist() == [
        False, False, True, False]


def test_personal_data_drop_redact_off():
    rows = [_row(0), _row(1, text="great bike, mail me at jane.doe@example.com"),
            _row(2, text="call +44 20 7946 0958 for prices"), _row(3, text="taken 2024-11-21")]
    dropped = _evaluate(rows)
    assert dropped.passed.tolist() == [True, False, False, True]
    hits = _hits(dropped)
    assert hits[1] == {"personal_data": [("email", "ja…om")]}
    assert hits[2] == {"personal_data": [("phone", "+4…58")]}
    assert dropped.text == [r["text"] for r in rows] and not dropped.redacted.any()

    redacted = _evaluate(rows, policy=_policy(personal_data="redact"))
    assert redacted.passed.all() and _hits(redacted) == {}
    assert redacted.redacted.tolist() == [False, True, True, False]
    assert redacted.text == [rows[0]["text"], "great bike, mail me at [email]",
                             "call [phone] for prices", rows[3]["text"]]

    off = _evaluate(rows, policy=_policy(personal_data="off"))
    assert off.passed.all() and off.text == [r["text"] for r in rows]
    assert not off.redacted.any()


def test_a_pair_hit_by_several_rules_shows_every_rule():
    row = _row(0, text="xxx", similarity=0.1, bytes=10, pwatermark=0.99, punsafe=0.99,
               url="https://removed.example/1.jpg")
    decisions = _evaluate([row], lists=_lists(md5=[row["md5"]], optout_domains=["removed.example"]),
                          ledger=[new_takedown("domain", "removed.example", "r")])
    assert set(_hits(decisions)[0]) == {
        "hash_list", "takedown", "opt_out_domain", "similarity", "image_too_few_bytes",
        "text_too_short", "nsfw", "nsfw_keyword", "watermark"}
    assert decisions.counts()["hash_list"] == 1


def test_bad_policies_are_refused():
    with pytest.raises(ValueError, match="similarity_mode"):
        _policy(quality={"similarity_mode": "best"})
    with pytest.raises(ValueError, match="personal_data"):
        _policy(personal_data="mask")
    with pytest.raises(ValueError, match="top_fraction"):
        _policy(quality={"top_fraction": 0.0})
    with pytest.raises(ValueError, match="pdq_max_distance"):
        _policy(pdq_max_distance=129)


# -- the hard guarantee ---------------------------------------------------------------------


def _listed_shard() -> tuple[list[dict], dict[int, str], SafetyLists, list[Takedown]]:
    """Rows that match a hash list, the URL list or the ledger (row -> the rule that must hit
    it), and clean control rows; every listed row is otherwise as clean as a row can be."""
    rows = [_row(i, text="hello world", similarity=0.99) for i in range(16)]
    rows[9]["url"] = "https://listed.example.com/a.jpg"
    rows[10]["url"] = "https://taken.example.com/b.jpg"
    rows[11]["url"] = "https://deep.sub.removed.example/c.jpg"
    must = {0: "hash_list", 1: "hash_list", 2: "hash_list", 3: "hash_list",
            4: "takedown", 5: "takedown", 6: "takedown", 7: "takedown", 8: "hash_list",
            9: "url_list", 10: "takedown", 11: "takedown"}
    lists = _lists(md5=[rows[0]["md5"]], sha1=[rows[1]["sha1"]], sha256=[rows[2]["sha256"]],
                   pdq=[rows[3]["pdq"], rows[8]["pdq"]], urls=[rows[9]["url"]])
    ledger = [new_takedown("sha256", rows[4]["sha256"], "r"),
              new_takedown("md5", rows[5]["md5"], "r"),
              new_takedown("sha1", rows[6]["sha1"], "r"),
              new_takedown("pdq", rows[7]["pdq"], "r"),
              new_takedown("url", rows[10]["url"], "r"),
              new_takedown("domain", "removed.example", "r")]
    return rows, must, lists, ledger


def _random_policy(rng: random.Random) -> SafetyPolicy:
    def maybe(value, default):
        return value if rng.random() < 0.5 else default

    quality = QualityRules(
        similarity_mode=rng.choice(["threshold", "top_fraction", "off"]),
        similarity_thresholds=maybe({"en": rng.uniform(-1, 1)}, {}),
        default_similarity_threshold=rng.uniform(-1, 1),
        top_fraction=rng.uniform(0.01, 1.0),
        min_side=rng.choice([0, 0, 1, 64, 10_000]),
        min_bytes=rng.choice([0, 0, 5_000, 10**9]),
        max_aspect_ratio=rng.choice([1.0, 3.0, 1e9]),
        min_text_chars=rng.choice([0, 0, 5, 100]),
        max_text_chars=rng.choice([0, 1_000, 10**9]))
    nsfw = NsfwRules(
        threshold=rng.choice([0.0, 0.45, 1.0, 2.0, float("inf")]),
        concepts=maybe((), (Concept("a", 0.3),)),
        minor_concepts=maybe((), (Concept("b", 0.3),)),
        keywords=maybe((), ("xxx",)), minor_keywords=maybe((), ("teen",)),
        use_keywords=rng.random() < 0.5)
    watermark = WatermarkRules(threshold=rng.choice([0.0, 0.8, 2.0]),
                               enabled=rng.random() < 0.5)
    return SafetyPolicy(quality=quality, nsfw=nsfw, watermark=watermark,
                        personal_data=rng.choice(["drop", "redact", "off"]),
                        pdq_max_distance=rng.randint(0, 128),
                        pdq_min_quality=rng.randint(0, 100))


def test_listed_pairs_never_pass_whatever_the_policy():
    rows, must, lists, ledger = _listed_shard()
    rng = random.Random(20241121)
    clean_passed = 0
    for _ in range(200):
        policy = _random_policy(rng)
        # random scores too: nothing model-based can rescue a listed pair
        for row in rows:
            row["punsafe"] = rng.choice([float("nan"), 0.0, 0.5])
            row["pwatermark"] = rng.choice([float("nan"), 0.0, 0.9])
        decisions = _evaluate(rows, policy=policy, lists=lists, ledger=ledger)
        hits = _hits(decisions)
        for i, rule in must.items():
            assert not decisions.passed[i], (i, policy)
            assert rule in hits.get(i, {}), (i, rule, policy)
        clean_passed += int(decisions.passed[12:].all())
    assert clean_passed > 10  # the policies were loose enough for clean rows to pass


def test_mandatory_rules_always_run():
    assert set(MANDATORY_RULES) == {"hash_list", "url_list", "takedown"}
    rows, must, lists, ledger = _listed_shard()
    candidates, scores = _shard(rows)
    context = RuleContext(candidates, SafetyPolicy(), lists, ledger, scores)
    produced = {h.rule for rule in RULES for h in rule(context) if h.index}
    assert set(MANDATORY_RULES) <= produced


# -- the independent re-check of written pairs ---------------------------------------------


def _table(rows: list[dict], drop: tuple[str, ...] = ()) -> pa.Table:
    return pa.table({name: [r[name] for r in rows] for name in COLUMNS if name not in drop})


def test_listed_pairs_finds_planted_pairs():
    rows, must, lists, ledger = _listed_shard()
    policy = SafetyPolicy()
    clean = [r for i, r in enumerate(rows) if i not in must]
    assert listed_pairs(_table(clean), lists, ledger, policy) == []
    assert listed_pairs(_table(rows[:0]), lists, ledger, policy) == []

    hits = listed_pairs(_table(rows), lists, ledger, policy)
    assert all(h.index for h in hits)
    found = {(i, h.rule) for h in hits for i in h.index}
    assert found == set(must.items())
    # without a pdq_quality column every PDQ is trusted; a null quality is not
    no_quality = listed_pairs(_table(rows, drop=("pdq_quality",)), lists, ledger, policy)
    assert {(i, h.rule) for h in no_quality for i in h.index} == set(must.items())
    unknown = [dict(r, pdq_quality=None) for r in rows]
    found = {i for h in listed_pairs(_table(unknown), lists, ledger, policy) for i in h.index}
    assert found == set(must) - {3, 7, 8}


def test_listed_pairs_with_null_hashes_and_no_lists():
    rows = [dict(_row(i), sha256=None, md5=None, sha1=None, pdq=None) for i in range(4)]
    table = _table(rows)
    assert listed_pairs(table, _lists(), [], SafetyPolicy()) == []
    ledger = [new_takedown("url", rows[2]["url"], "r")]
    (hit,) = listed_pairs(table, _lists(md5=[_digest("md5", 0)]), ledger, SafetyPolicy())
    assert hit.rule == "takedown" and hit.index == [2]


def test_policy_round_trips_to_a_dict():
    policy = _policy(quality={"min_side": 64}, personal_data="redact")
    as_dict = policy.to_dict()
    assert as_dict["quality"]["min_side"] == 64 and as_dict["personal_data"] == "redact"
    assert dataclasses.replace(policy).to_dict() == as_dict


def test_listed_pairs_in_a_file_batch_by_batch_finds_what_the_table_check_finds(tmp_path):
    rows, must, lists, ledger = _listed_shard()
    pq.write_table(_table(rows), tmp_path / "pairs.parquet")
    whole = listed_pairs(_table(rows), lists, ledger, SafetyPolicy())
    batched = listed_pairs_in(pq.ParquetFile(tmp_path / "pairs.parquet"), lists, ledger,
                              SafetyPolicy(), batch_rows=3)
    assert {(i, h.rule) for h in batched for i in h.index} == set(must.items())

    def hit_rows(hits):
        return sorted((h.rule, i, d, v) for h in hits
                      for i, d, v in zip(h.index, h.detail, h.value, strict=True))
    assert hit_rows(batched) == hit_rows(whole)


def test_a_shard_cutoff_replaces_the_batch_quantile_in_top_fraction_mode():
    rows = [_row(i, similarity=0.1 + 0.01 * i) for i in range(10)]
    policy = _policy(quality={"similarity_mode": "top_fraction", "top_fraction": 0.5})
    candidates, scores = _shard(rows)
    own = evaluate(RuleContext(candidates, policy, _lists(), [], scores))
    shard = evaluate(RuleContext(candidates, policy, _lists(), [], scores,
                                 similarity_cutoff=0.165))
    assert {i for i, hits in _hits(own).items() if "similarity" in hits} == set(range(5))
    assert {i for i, hits in _hits(shard).items() if "similarity" in hits} == set(range(7))
