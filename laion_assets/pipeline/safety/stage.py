"""The safety stage of one shard: candidates in; passing pairs, exclusions and scores out.

Every extracted pair of the shard is a candidate. It passes when its image was fetched and
scored and no rule excludes it; otherwise each rule that hit it is a row of
`exclusions.parquet`, so every pair that does not pass can be explained. Files written:

    pairs.parquet        the pairs that pass: LAION's columns, hashes, fetch facts, provenance
    img_emb.npy, text_emb.npy, ids.parquet   their embeddings, row-aligned with pairs.parquet
    exclusions.parquet   pair_id, rule, detail, value: one row per rule that hit a pair
    scores.parquet       every candidate: similarity, punsafe, pwatermark, passed, rules
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from laion_assets.pipeline.core.manifests import EXCLUSIONS_FILE, PAIRS_FILE, SCORES_FILE
from laion_assets.pipeline.extract.pairs import PROVENANCE_COLUMNS
from laion_assets.pipeline.formats.embeddings import Embeddings, EmbeddingWriter, Folder
from laion_assets.pipeline.formats.webdataset import iter_tar_images, url_key
from laion_assets.pipeline.safety.concepts import Concept, ConceptScores, score_concepts
from laion_assets.pipeline.safety.lists import SafetyLists
from laion_assets.pipeline.safety.nsfw_head import NsfwHead
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.rules import (
    Candidates,
    Decisions,
    ModelScores,
    RuleContext,
    evaluate,
)
from laion_assets.pipeline.safety.takedowns import Takedown
from laion_assets.pipeline.safety.watermark import WatermarkModel
from laion_assets.pipeline.scoring.heads import ClipHeads
from laion_assets.pipeline.scoring.stage import histogram

PROBABILITY_BINS = np.linspace(0.0, 1.0, 11)
AESTHETIC_BINS = np.linspace(0.0, 10.0, 11)  # LAION-Aesthetics scores are about 1..10
FETCH_COLUMNS = ("url_key", "status", "reason", "detail", "source", "fetched_at", "bytes",
                 "width", "height", "sha256", "md5", "sha1", "pdq", "pdq_quality", "tar")
SAFE_PAIRS_SCHEMA = pa.schema([
    pa.field("pair_id", pa.int64(), nullable=False), ("url", pa.string()),
    ("language", pa.string()), ("crawl", pa.string()), ("shard", pa.string()),
    ("warc_file", pa.string()), ("warc_record_offset", pa.int64()),
    ("warc_record_id", pa.string()), ("page_url", pa.string()),
    ("capture_time", pa.timestamp("ms", tz="UTC")), ("text", pa.string()),
    ("text_redacted", pa.bool_()), ("width", pa.int32()), ("height", pa.int32()),
    ("bytes", pa.int64()), ("sha256", pa.string()), ("md5", pa.string()), ("sha1", pa.string()),
    ("pdq", pa.string()), ("pdq_quality", pa.int32()), ("fetch_source", pa.string()),
    ("fetched_at", pa.timestamp("ms", tz="UTC")), ("similarity", pa.float32()),
    ("punsafe", pa.float32()), ("pwatermark", pa.float32()),
    ("aesthetic", pa.float32()), ("pviolence", pa.float32()),
])
EXCLUSIONS_SCHEMA = pa.schema([
    pa.field("pair_id", pa.int64(), nullable=False),
    pa.field("rule", pa.string(), nullable=False),
    pa.field("detail", pa.string()),
    pa.field("value", pa.string()),
])
SCORES_SCHEMA = pa.schema([
    pa.field("pair_id", pa.int64(), nullable=False),
    pa.field("passed", pa.bool_(), nullable=False),
    pa.field("similarity", pa.float32()),
    pa.field("punsafe", pa.float32()),
    pa.field("pwatermark", pa.float32()),
    pa.field("aesthetic", pa.float32()),
    pa.field("pviolence", pa.float32()),
    pa.field("rules", pa.string()),  # comma-separated rules that hit the pair
])


@dataclass
class SafetyModels:
    """The models the rules need: CLIP's text encoder (for concept prompts) and the heads."""

    encode_texts: Callable[[list[str]], np.ndarray]
    head: NsfwHead | None = None
    watermark: WatermarkModel | None = None
    heads: ClipHeads | None = None  # LAION's heads that fit the CLIP model (see `with_heads`)

    def identity(self) -> dict:
        laion = self.heads.identity() if self.heads else {}
        return {"nsfw": self.head.identity() if self.head else
                laion.get("nsfw") or "zero-shot concepts",
                "watermark": self.watermark.identity() if self.watermark else
                "zero-shot concepts",
                "aesthetic": laion.get("aesthetic"), "violence": laion.get("violence")}

    def with_heads(self, model_identity: dict, policy: SafetyPolicy) -> SafetyModels:
        """These models plus LAION's heads that fit the CLIP model and the policy asks for
        (unless heads were given)."""
        if self.heads is not None:
            return self
        heads = ClipHeads.for_model(model_identity["model"], int(model_identity["embed_dim"]),
                                    policy.device, policy.head_kinds())
        return replace(self, heads=heads)


@dataclass
class ShardInputs:
    pairs: pa.Table  # extracted_pairs, every column
    results: pa.Table  # fetch results
    embeddings: Embeddings  # clip_scored_pairs
    open_tar: Callable[[str], BinaryIO]  # a downloaded_images tar by name


@dataclass
class SafetySummary:
    candidates: int
    passed: int
    counts: dict[str, int]  # pairs hit per rule
    redacted: int
    histograms: dict[str, list[tuple[float, float, int]]]


def filter_shard(inputs: ShardInputs, policy: SafetyPolicy, lists: SafetyLists,
                 ledger: list[Takedown], models: SafetyModels, output: Folder) -> SafetySummary:
    """Apply every rule to a shard and write the files listed in the module docstring."""
    candidates, rows, tars = build_candidates(inputs)
    scores = model_scores(candidates, rows, inputs.embeddings.image, policy, models,
                          lambda: _images(tars, candidates, inputs.open_tar))
    decisions = evaluate(RuleContext(candidates, policy, lists, ledger, scores))
    _write_pairs(inputs.pairs, candidates, decisions, scores, inputs.results, output)
    _write_embeddings(inputs.embeddings, rows, candidates, decisions, output)
    _write_exclusions(candidates, decisions, output)
    _write_scores(candidates, decisions, scores, output)
    return SafetySummary(
        candidates=len(candidates), passed=int(decisions.passed.sum()),
        counts=decisions.counts(), redacted=int(decisions.redacted.sum()),
        histograms={"similarity": histogram(candidates.similarity),
                    "punsafe": histogram(scores.punsafe, PROBABILITY_BINS),
                    "pwatermark": histogram(scores.pwatermark, PROBABILITY_BINS),
                    **_head_histograms(scores)})


def _head_histograms(scores: ModelScores) -> dict[str, list[tuple[float, float, int]]]:
    """Histograms of the LAION head scores that were computed."""
    out = {}
    if scores.aesthetic is not None:
        out["aesthetic"] = histogram(scores.aesthetic, AESTHETIC_BINS)
    if scores.pviolence is not None:
        out["pviolence"] = histogram(scores.pviolence, PROBABILITY_BINS)
    return out


# -- candidates ------------------------------------------------------------------------------


def build_candidates(inputs: ShardInputs) -> tuple[Candidates, np.ndarray, list[str | None]]:
    """Candidates, each one's row in the embeddings (-1: not scored) and its image's tar."""
    pairs, results = inputs.pairs, inputs.results
    n = pairs.num_rows
    urls = pairs.column("url").to_pylist()
    by_key = {k: i for i, k in enumerate(results.column("url_key").to_pylist())}
    fetch = np.array([by_key.get(url_key(u), -1) for u in urls], np.int64)
    column = {name: _gather(results, name, fetch) for name in FETCH_COLUMNS}
    ids = inputs.embeddings.ids.column("pair_id").to_numpy()
    sims = inputs.embeddings.ids.column("similarity").to_numpy(zero_copy_only=False)
    row_of = {int(p): i for i, p in enumerate(ids)}
    pair_ids = pairs.column("pair_id").to_numpy()
    rows = np.array([row_of.get(int(p), -1) for p in pair_ids], np.int64)
    similarity = np.full(n, np.nan, np.float32)
    similarity[rows >= 0] = sims[rows[rows >= 0]]
    candidates = Candidates(
        pair_id=pair_ids, url=urls, text=pairs.column("text").to_pylist(),
        language=pairs.column("language").to_pylist(),
        fetch_status=column["status"], fetch_reason=column["reason"],
        fetch_detail=column["detail"], width=_ints(column["width"]),
        height=_ints(column["height"]), bytes=_ints(column["bytes"]),
        sha256=column["sha256"], md5=column["md5"], sha1=column["sha1"], pdq=column["pdq"],
        pdq_quality=_ints(column["pdq_quality"]), similarity=similarity)
    return candidates, rows, column["tar"]


def _gather(table: pa.Table, name: str, index: np.ndarray) -> list:
    """`table[name][index]` as a list, None where index is -1 or the column is missing."""
    if name not in table.column_names:  # results written before the column existed
        return [None] * len(index)
    values = table.column(name).to_pylist()
    return [values[i] if i >= 0 else None for i in index]


def _ints(values: list) -> np.ndarray:
    return np.array([-1 if v is None else v for v in values], np.int64)


# -- model scores ----------------------------------------------------------------------------


def model_scores(candidates: Candidates, rows: np.ndarray, image_embeddings: np.ndarray,
                 policy: SafetyPolicy, models: SafetyModels,
                 images: Callable[[], Iterator[tuple[int, bytes]]]) -> ModelScores:
    """punsafe, concept flags and pwatermark for every scored candidate (NaN elsewhere)."""
    n = len(candidates)
    scored = np.flatnonzero(rows >= 0)
    embeddings = np.asarray(image_embeddings[rows[scored]], np.float32)
    nsfw_rules = policy.nsfw
    nsfw = _concepts(embeddings, nsfw_rules.concepts, models)
    minor = _concepts(embeddings, nsfw_rules.minor_concepts, models)
    punsafe, punsafe_detail = np.full(n, np.nan, np.float32), ["not scored"] * n
    if models.head is not None:
        punsafe[scored] = models.head.punsafe(embeddings)
        for i in scored:
            punsafe_detail[i] = "NSFW head"
    else:
        punsafe[scored] = nsfw.probability
        for j, i in enumerate(scored):
            punsafe_detail[i] = f"zero-shot: {nsfw_rules.concepts[nsfw.best[j]].prompt!r}"
    nsfw_fired, minor_fired = np.zeros(n, bool), [None] * n
    nsfw_fired[scored] = nsfw.fired
    for j, i in enumerate(scored):
        if minor.fired[j]:
            minor_fired[i] = nsfw_rules.minor_concepts[minor.best[j]].prompt
    pwatermark, wm_detail = _watermark(candidates, scored, embeddings, policy, models, images)
    heads = _laion_heads(n, scored, embeddings, models)
    if models.head is None and "punsafe" in heads:
        punsafe = heads["punsafe"]
        for i in scored:
            punsafe_detail[i] = f"LAION NSFW detector {models.heads.nsfw.file.name}"
    return ModelScores(punsafe, punsafe_detail, nsfw_fired, minor_fired, pwatermark, wm_detail,
                       aesthetic=heads.get("aesthetic"), pviolence=heads.get("pviolence"),
                       head_detail=_head_names(models.heads))


def _laion_heads(n: int, scored: np.ndarray, embeddings: np.ndarray,
                 models: SafetyModels) -> dict[str, np.ndarray]:
    """Each fitting LAION head's score per candidate (NaN where not scored)."""
    out = {}
    for column, values in (models.heads.score(embeddings) if models.heads else {}).items():
        out[column] = np.full(n, np.nan, np.float32)
        out[column][scored] = values
    return out


def _head_names(heads: ClipHeads | None) -> dict[str, str]:
    if heads is None:
        return {}
    return {h.file.output: h.file.name for h in (heads.nsfw, heads.aesthetic, heads.violence)
            if h is not None}


def _concepts(embeddings: np.ndarray, concepts: tuple[Concept, ...],
              models: SafetyModels) -> ConceptScores:
    prompts = [c.prompt for c in concepts]
    return score_concepts(embeddings, models.encode_texts(prompts), concepts)


def _watermark(candidates: Candidates, scored: np.ndarray, embeddings: np.ndarray,
               policy: SafetyPolicy, models: SafetyModels,
               images: Callable[[], Iterator[tuple[int, bytes]]]) -> tuple[np.ndarray, list[str]]:
    n, rules = len(candidates), policy.watermark
    pwatermark, detail = np.full(n, np.nan, np.float32), ["not scored"] * n
    if not rules.enabled:
        return pwatermark, ["off"] * n
    if models.watermark is not None:
        for keys, probs in models.watermark.pwatermark(images(), rules.batch_size):
            pwatermark[keys] = probs
        for i in scored:
            detail[i] = "watermark model"
        pwatermark[~np.isin(np.arange(n), scored)] = np.nan
        return pwatermark, detail
    zero_shot = _concepts(embeddings, rules.concepts, models)
    pwatermark[scored] = zero_shot.probability
    for j, i in enumerate(scored):
        detail[i] = f"zero-shot: {rules.concepts[zero_shot.best[j]].prompt!r}"
    return pwatermark, detail


def _images(tars: list[str | None], candidates: Candidates,
            open_tar: Callable[[str], BinaryIO]) -> Iterator[tuple[int, bytes]]:
    """(candidate index, resized image bytes) for every fetched candidate, tar by tar."""
    wanted: dict[str, dict[str, list[int]]] = {}
    for i, tar in enumerate(tars):
        if tar is not None and candidates.fetch_status[i] == "ok":
            wanted.setdefault(tar, {}).setdefault(url_key(candidates.url[i]), []).append(i)
    for tar in sorted(wanted):
        with open_tar(tar) as handle:
            for key, image, _ in iter_tar_images(handle):
                for i in wanted[tar].get(key, ()):
                    yield i, image


# -- outputs -----------------------------------------------------------------------------------


def _write_pairs(pairs: pa.Table, candidates: Candidates, decisions: Decisions,
                 scores: ModelScores, results: pa.Table, output: Folder) -> None:
    keep = np.flatnonzero(decisions.passed)
    base = pairs.select(["pair_id", "url", "language", *PROVENANCE_COLUMNS]).take(keep)
    keys = [url_key(candidates.url[i]) for i in keep]
    fetch = pc.index_in(pa.array(keys, pa.string()), results.column("url_key"))
    fetched = results.take(fetch)
    table = base.append_column("text", pa.array([decisions.text[i] for i in keep], pa.string()))
    table = table.append_column("text_redacted", pa.array(decisions.redacted[keep]))
    for name in ("width", "height", "bytes", "sha256", "md5", "sha1", "pdq", "pdq_quality",
                 "source", "fetched_at"):
        out_name = "fetch_source" if name == "source" else name
        column = fetched.column(name) if name in fetched.column_names else pa.nulls(len(keep))
        table = table.append_column(out_name, column)
    scored = [("similarity", candidates.similarity), ("punsafe", scores.punsafe),
              ("pwatermark", scores.pwatermark), *_head_columns(scores, len(candidates))]
    for name, values in scored:
        table = table.append_column(name, pa.array(values[keep], pa.float32()))
    _write_parquet(table.cast(SAFE_PAIRS_SCHEMA), output, PAIRS_FILE)


def _write_embeddings(embeddings: Embeddings, rows: np.ndarray, candidates: Candidates,
                      decisions: Decisions, output: Folder, chunk: int = 65_536) -> None:
    keep = np.flatnonzero(decisions.passed)
    dim = embeddings.image.shape[1]
    with EmbeddingWriter(output, len(keep), dim) as writer:
        for start in range(0, len(keep), chunk):
            part = keep[start:start + chunk]
            writer.write(_Rows(candidates.pair_id[part], embeddings.image[rows[part]],
                               embeddings.text[rows[part]], candidates.similarity[part]))


@dataclass
class _Rows:
    pair_ids: np.ndarray
    image_embeddings: np.ndarray
    text_embeddings: np.ndarray
    similarity: np.ndarray


def _write_exclusions(candidates: Candidates, decisions: Decisions, output: Folder) -> None:
    pair_ids, rules, details, values = [], [], [], []
    for hits in decisions.hits:
        pair_ids.extend(int(candidates.pair_id[i]) for i in hits.index)
        rules.extend([hits.rule] * len(hits.index))
        details.extend(hits.detail)
        values.extend(hits.value)
    table = pa.table([pair_ids, rules, details, values], schema=EXCLUSIONS_SCHEMA)
    _write_parquet(table, output, EXCLUSIONS_FILE)


def _write_scores(candidates: Candidates, decisions: Decisions, scores: ModelScores,
                  output: Folder) -> None:
    rules: list[list[str]] = [[] for _ in range(len(candidates))]
    for hits in decisions.hits:
        for i in hits.index:
            if hits.rule not in rules[i]:
                rules[i].append(hits.rule)
    heads = [values for _, values in _head_columns(scores, len(candidates))]
    table = pa.table([candidates.pair_id, decisions.passed, candidates.similarity,
                      scores.punsafe, scores.pwatermark, *heads, [",".join(r) for r in rules]],
                     schema=SCORES_SCHEMA)
    _write_parquet(table, output, SCORES_FILE)


def _head_columns(scores: ModelScores, n: int) -> list[tuple[str, np.ndarray]]:
    """aesthetic and pviolence per candidate: NaN where no head fits the model."""
    missing = np.full(n, np.nan, np.float32)
    return [("aesthetic", missing if scores.aesthetic is None else scores.aesthetic),
            ("pviolence", missing if scores.pviolence is None else scores.pviolence)]


def _write_parquet(table: pa.Table, output: Folder, name: str) -> None:
    with output.open(name, "wb") as sink:
        pq.write_table(table, sink, compression="zstd")
