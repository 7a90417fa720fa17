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

import ctypes
import mmap
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
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
from laion_assets.pipeline.safety.shard_inputs import (
    EmbeddingRows,
    FetchResults,
    ShardInputs,
)
from laion_assets.pipeline.safety.takedowns import Takedown
from laion_assets.pipeline.safety.watermark import WatermarkModel
from laion_assets.pipeline.scoring.heads import ClipHeads
from laion_assets.pipeline.scoring.stage import histogram

PROBABILITY_BINS = np.linspace(0.0, 1.0, 11)
AESTHETIC_BINS = np.linspace(0.0, 10.0, 11)  # LAION-Aesthetics scores are about 1..10
HEAD_ROWS = 8_192  # embeddings a LAION head scores at once
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
class SafetySummary:
    candidates: int
    passed: int
    counts: dict[str, int]  # pairs hit per rule
    redacted: int
    histograms: dict[str, list[tuple[float, float, int]]]


def filter_shard(inputs: ShardInputs, policy: SafetyPolicy, lists: SafetyLists,
                 ledger: list[Takedown], models: SafetyModels, output: Folder) -> SafetySummary:
    """Apply every rule to a shard, `inputs.batch_rows` candidates at a time, and write the
    files listed in the module docstring (the same rows whatever the batch size)."""
    fetch, embedded = FetchResults.open(inputs.results), EmbeddingRows.of(inputs.embeddings)
    similarity = _shard_similarities(inputs, embedded)
    cutoff = _top_fraction_cutoff(similarity, policy)
    models = replace(models, encode_texts=_remembered(models.encode_texts))
    totals = ShardTotals(inputs.candidates())
    with _Writers(output) as writers:
        for batch in inputs.batches():
            candidates, rows, tars, fetched = build_candidates(batch, fetch, embedded)
            scores = model_scores(candidates, rows, inputs.embeddings.image, policy, models,
                                  partial(_images, tars, candidates, inputs.open_tar))
            decisions = evaluate(RuleContext(candidates, policy, lists, ledger, scores,
                                             similarity_cutoff=cutoff))
            writers.write(batch, fetched, candidates, decisions, scores)
            totals.add(candidates, rows, decisions, scores)
            release_pages(inputs.embeddings.image)
    _write_embeddings(inputs.embeddings, totals, output)
    return totals.summary(similarity)


def _shard_similarities(inputs: ShardInputs, embedded: EmbeddingRows) -> np.ndarray:
    """The finite CLIP similarities of the shard's candidates (float32, 4 bytes a pair)."""
    parts = [embedded.similarities(embedded.rows(ids)) for ids in inputs.pair_ids()]
    values = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return values[np.isfinite(values)]


def _top_fraction_cutoff(similarity: np.ndarray, policy: SafetyPolicy) -> float | None:
    """The shard's similarity cutoff for `top_fraction` mode (None: other modes, or none)."""
    quality = policy.quality
    if quality.similarity_mode != "top_fraction" or not len(similarity):
        return None
    return float(np.quantile(similarity, 1.0 - quality.top_fraction))


def release_pages(*arrays: np.ndarray) -> None:
    """Drop the pages a memory-mapped array's batch read in from this process (they stay in
    the page cache): else a shard's embedding files end up resident, its whole size. Also
    hands back what the allocators keep for reuse after a batch: arrow's pool (a batch's row
    groups) and glibc's free pages in every thread's arena (`malloc_trim`: a 15 M-candidate
    run's smaps showed 0.3 GB resident in 64 MB thread arenas, 0.3 GB in the heap without
    it)."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    for array in arrays:
        if isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap):
            array.base.madvise(mmap.MADV_DONTNEED)


def _glibc() -> ctypes.CDLL | None:
    """glibc, for `malloc_trim` (None elsewhere: macOS, musl)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _glibc()


def _remembered(encode: Callable[[list[str]], np.ndarray]) -> Callable[[list[str]], np.ndarray]:
    """`encode` run once per list of prompts (every batch asks for the same concepts)."""
    seen: dict[tuple[str, ...], np.ndarray] = {}

    def encode_once(prompts: list[str]) -> np.ndarray:
        key = tuple(prompts)
        if key not in seen:
            seen[key] = encode(prompts)
        return seen[key]
    return encode_once


class Passing:
    """The passing pairs' ids, embedding rows and similarities (20 bytes a pair), in shard
    order, in arrays sized for every candidate up front: `np.empty` pages become resident
    only as rows are filled, and no per-batch objects pile up (arrays kept a batch at a time
    pinned ~75 bytes of allocator arenas a candidate: Python frees an arena only when empty).
    """

    def __init__(self, capacity: int) -> None:
        self.pair_ids = np.empty(capacity, np.int64)
        self.rows = np.empty(capacity, np.int64)
        self.similarity = np.empty(capacity, np.float32)
        self.count = 0

    def add(self, pair_ids: np.ndarray, rows: np.ndarray, similarity: np.ndarray) -> None:
        end = self.count + len(pair_ids)
        if end > len(self.pair_ids):
            raise ValueError(f"{end} passing pairs, more than the {len(self.pair_ids)} "
                             "candidates the shard holds")
        self.pair_ids[self.count:end] = pair_ids
        self.rows[self.count:end] = rows
        self.similarity[self.count:end] = similarity
        self.count = end

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pair ids, embedding rows and similarities of the passing pairs, in shard order."""
        n = self.count
        return self.pair_ids[:n], self.rows[:n], self.similarity[:n]


@dataclass
class ShardTotals:
    """What the summary and the embeddings need from every batch: counts, histogram counts,
    and the passing pairs (`Passing`, sized for the shard's `capacity` candidates)."""

    capacity: int
    candidates: int = 0
    redacted: int = 0
    per_rule: dict[str, int] = field(default_factory=dict)  # in the order the rules run
    histograms: dict[str, list[tuple[float, float, int]]] = field(default_factory=dict)
    kept: Passing = field(init=False)

    def __post_init__(self) -> None:
        self.kept = Passing(self.capacity)

    def add(self, candidates: Candidates, rows: np.ndarray, decisions: Decisions,
            scores: ModelScores) -> None:
        self.candidates += len(candidates)
        self.redacted += int(decisions.redacted.sum())
        for hits in decisions.hits:
            self.per_rule[hits.rule] = self.per_rule.get(hits.rule, 0) + len(set(hits.index))
        for name, counts in _fixed_histograms(scores).items():
            self.histograms[name] = _add_counts(self.histograms.get(name), counts)
        keep = np.flatnonzero(decisions.passed)
        self.kept.add(candidates.pair_id[keep], rows[keep], candidates.similarity[keep])

    @property
    def passed(self) -> int:
        return self.kept.count

    def summary(self, similarity: np.ndarray) -> SafetySummary:
        counts = Counter({rule: n for rule, n in self.per_rule.items() if n})
        return SafetySummary(
            candidates=self.candidates, passed=self.passed, counts=dict(counts.most_common()),
            redacted=self.redacted,
            histograms={"similarity": histogram(similarity), **self.histograms})


def _fixed_histograms(scores: ModelScores) -> dict[str, list[tuple[float, float, int]]]:
    """The histograms on fixed bins (they add up across batches), in the summary's order."""
    out = {"punsafe": histogram(scores.punsafe, PROBABILITY_BINS),
           "pwatermark": histogram(scores.pwatermark, PROBABILITY_BINS)}
    if scores.aesthetic is not None:
        out["aesthetic"] = histogram(scores.aesthetic, AESTHETIC_BINS)
    if scores.pviolence is not None:
        out["pviolence"] = histogram(scores.pviolence, PROBABILITY_BINS)
    return out


def _add_counts(total: list[tuple[float, float, int]] | None,
                counts: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    if total is None:
        return counts
    return [(lo, hi, n + m) for (lo, hi, n), (_, _, m) in zip(total, counts, strict=True)]


# -- candidates ------------------------------------------------------------------------------


def build_candidates(batch: pa.Table, fetch: FetchResults, embedded: EmbeddingRows
                     ) -> tuple[Candidates, np.ndarray, list[str | None], pa.Table]:
    """A batch's candidates, each one's embedding row (-1: not scored), its image's tar and
    its fetch result (a row of `fetch`'s columns, null where it has none). Only the columns
    the rules read as text become Python lists (every object a batch makes churns memory)."""
    urls = batch.column("url").to_pylist()
    fetched = fetch.gather(fetch.rows(urls))
    text = {name: _column(fetched, name) for name in TEXT_FETCH_COLUMNS}
    number = {name: _ints(fetched, name) for name in ("width", "height", "bytes", "pdq_quality")}
    pair_ids = batch.column("pair_id").to_numpy()
    rows = embedded.rows(pair_ids)
    candidates = Candidates(
        pair_id=pair_ids, url=urls, text=batch.column("text").to_pylist(),
        language=batch.column("language").to_pylist(),
        fetch_status=text["status"], fetch_reason=text["reason"],
        fetch_detail=text["detail"], width=number["width"], height=number["height"],
        bytes=number["bytes"], sha256=text["sha256"], md5=text["md5"], sha1=text["sha1"],
        pdq=text["pdq"], pdq_quality=number["pdq_quality"],
        similarity=embedded.similarities(rows))
    return candidates, rows, text["tar"], fetched


TEXT_FETCH_COLUMNS = ("status", "reason", "detail", "sha256", "md5", "sha1", "pdq", "tar")


def _column(table: pa.Table, name: str) -> list:
    """A column as a list; all None when missing (results written before it existed)."""
    if name not in table.column_names:
        return [None] * table.num_rows
    return table.column(name).to_pylist()


def _ints(table: pa.Table, name: str) -> np.ndarray:
    """An integer column as int64, -1 where null or missing."""
    if name not in table.column_names:
        return np.full(table.num_rows, -1, np.int64)
    column = pc.fill_null(table.column(name), -1).cast(pa.int64())
    return column.to_numpy() if table.num_rows else np.zeros(0, np.int64)


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
                 models: SafetyModels, chunk: int = HEAD_ROWS) -> dict[str, np.ndarray]:
    """Each fitting LAION head's score per candidate (NaN where not scored), `chunk`
    embeddings at a time (a head's hidden activations are 4 KB a row)."""
    out: dict[str, np.ndarray] = {}
    for start in range(0, max(len(scored), 1), chunk) if models.heads else ():
        part = scored[start:start + chunk]
        for column, values in models.heads.score(embeddings[start:start + chunk]).items():
            out.setdefault(column, np.full(n, np.nan, np.float32))[part] = values
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

class _Writers:
    """pairs.parquet, exclusions.parquet and scores.parquet, written a batch at a time."""

    def __init__(self, output: Folder) -> None:
        self.output, self.stack = output, ExitStack()

    def __enter__(self) -> _Writers:
        def writer(name: str, schema: pa.Schema) -> pq.ParquetWriter:
            sink = self.stack.enter_context(self.output.open(name, "wb"))
            return self.stack.enter_context(pq.ParquetWriter(sink, schema, compression="zstd"))

        self.pairs = writer(PAIRS_FILE, SAFE_PAIRS_SCHEMA)
        self.exclusions = writer(EXCLUSIONS_FILE, EXCLUSIONS_SCHEMA)
        self.scores = writer(SCORES_FILE, SCORES_SCHEMA)
        return self

    def __exit__(self, *exc) -> None:
        self.stack.__exit__(*exc)

    def write(self, batch: pa.Table, fetched: pa.Table, candidates: Candidates,
              decisions: Decisions, scores: ModelScores) -> None:
        self.pairs.write_table(_passing_pairs(batch, fetched, candidates, decisions, scores))
        self.exclusions.write_table(_exclusions(candidates, decisions))
        self.scores.write_table(_scores(candidates, decisions, scores))


def _passing_pairs(batch: pa.Table, fetched: pa.Table, candidates: Candidates,
                   decisions: Decisions, scores: ModelScores) -> pa.Table:
    keep = np.flatnonzero(decisions.passed)
    table = batch.select(["pair_id", "url", "language", *PROVENANCE_COLUMNS]).take(keep)
    fetched = fetched.take(keep)
    table = table.append_column("text", pa.array([decisions.text[i] for i in keep], pa.string()))
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
    return table.cast(SAFE_PAIRS_SCHEMA)


def _write_embeddings(embeddings: Embeddings, totals: ShardTotals, output: Folder,
                      chunk: int = 16_384) -> None:
    """The passing pairs' embeddings, in the order of pairs.parquet, `chunk` rows at a time
    (a chunk's rows and the memory-mapped pages they touch are resident: ~0.1 GB)."""
    pair_ids, rows, similarity = totals.kept.columns()
    dim = embeddings.image.shape[1]
    with EmbeddingWriter(output, len(pair_ids), dim) as writer:
        for start in range(0, len(pair_ids), chunk):
            part = slice(start, start + chunk)
            writer.write(_Rows(pair_ids[part], embeddings.image[rows[part]],
                               embeddings.text[rows[part]], similarity[part]))
            release_pages(embeddings.image, embeddings.text)


@dataclass
class _Rows:
    pair_ids: np.ndarray
    image_embeddings: np.ndarray
    text_embeddings: np.ndarray
    similarity: np.ndarray


def _exclusions(candidates: Candidates, decisions: Decisions) -> pa.Table:
    """One row per rule that hit a pair: a batch's rows, rule by rule."""
    pair_ids, rules, details, values = [], [], [], []
    for hits in decisions.hits:
        pair_ids.extend(int(candidates.pair_id[i]) for i in hits.index)
        rules.extend([hits.rule] * len(hits.index))
        details.extend(hits.detail)
        values.extend(hits.value)
    return pa.table([pair_ids, rules, details, values], schema=EXCLUSIONS_SCHEMA)


def _scores(candidates: Candidates, decisions: Decisions, scores: ModelScores) -> pa.Table:
    rules: list[list[str]] = [[] for _ in range(len(candidates))]
    for hits in decisions.hits:
        for i in hits.index:
            if hits.rule not in rules[i]:
                rules[i].append(hits.rule)
    heads = [values for _, values in _head_columns(scores, len(candidates))]
    return pa.table([candidates.pair_id, decisions.passed, candidates.similarity,
                     scores.punsafe, scores.pwatermark, *heads, [",".join(r) for r in rules]],
                    schema=SCORES_SCHEMA)


def _head_columns(scores: ModelScores, n: int) -> list[tuple[str, np.ndarray]]:
    """aesthetic and pviolence per candidate: NaN where no head fits the model."""
    missing = np.full(n, np.nan, np.float32)
    return [("aesthetic", missing if scores.aesthetic is None else scores.aesthetic),
            ("pviolence", missing if scores.pviolence is None else scores.pviolence)]
