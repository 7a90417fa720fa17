"""The `safety_filtered_pairs` stage: every rule applied to a shard's candidates, committed."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow.parquet as pq

from laion_assets.pipeline.core.fingerprint import fingerprint
from laion_assets.pipeline.core.manifests import (
    SAFETY_FILES,
    SAFETY_FILTERED_PAIRS,
    ClipScoredPairsManifest,
    DownloadedImagesManifest,
    ExtractedPairsManifest,
    SafetyFilteredPairsManifest,
    commit,
    require_current,
)
from laion_assets.pipeline.core.store import DatasetStore, StoreError
from laion_assets.pipeline.formats.embeddings import read_embeddings
from laion_assets.pipeline.safety.lists import SafetyLists
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.rules import Hits
from laion_assets.pipeline.safety.shard_inputs import BATCH_ROWS, ShardInputs
from laion_assets.pipeline.safety.stage import SafetyModels, filter_shard
from laion_assets.pipeline.safety.takedowns import Takedown, ledger_version
from laion_assets.pipeline.safety.verify import listed_pairs_in


class ListedPairLeak(RuntimeError):
    """Written pairs that match a list or the ledger: never committed."""


def run(store: DatasetStore, shard: str, *, policy: SafetyPolicy, lists: SafetyLists,
        ledger: list[Takedown], models: SafetyModels, model_identity: dict, run_id: str = "",
        log: Callable[[str], None] = print,
        batch_rows: int = BATCH_ROWS) -> SafetyFilteredPairsManifest:
    """Filter the shard's candidates, re-check the written pairs against the lists, commit.

    `model_identity` is the configured CLIP model's; the shard must have been scored with it.
    Candidates are read, filtered and written `batch_rows` at a time: memory stays flat in
    the shard's size (the cross-batch state is fixed-width numbers, see `shard_inputs`).
    """
    pairs = require_current(store, ExtractedPairsManifest, shard)
    images = require_current(store, DownloadedImagesManifest, shard)
    scored = require_current(store, ClipScoredPairsManifest, shard)
    if model_identity != scored.model:
        raise StoreError(f"shard {shard} was scored with {scored.model}, but the configured "
                         f"CLIP model is {model_identity}: re-score it first")
    with store.open(pairs.file) as pairs_file, store.open(images.results_file) as results:
        inputs = ShardInputs(
            pairs=pq.ParquetFile(pairs_file), results=pq.ParquetFile(results),
            embeddings=read_embeddings(lambda name: store.open(scored.path(name))),
            open_tar=lambda name: store.open(images.path(name)), batch_rows=batch_rows)
        log(f"shard {shard}: {inputs.pairs.metadata.num_rows} candidates; lists "
            f"{lists.sizes()}; {len(ledger)} takedowns")
        return _filter(store, shard, inputs, policy=policy, lists=lists, ledger=ledger,
                       models=models.with_heads(model_identity, policy),
                       versions=(scored, images, pairs), run_id=run_id, log=log)


def _filter(store: DatasetStore, shard: str, inputs: ShardInputs, *, policy: SafetyPolicy,
            lists: SafetyLists, ledger: list[Takedown], models: SafetyModels,
            versions: tuple[ClipScoredPairsManifest, DownloadedImagesManifest,
                            ExtractedPairsManifest],
            run_id: str, log: Callable[[str], None]) -> SafetyFilteredPairsManifest:
    """Write the stage's files, re-check the passing pairs against the lists, commit."""
    scored, images, pairs = versions
    version = fingerprint(scored.data_version, images.data_version, pairs.data_version,
                          policy.to_dict(), lists.version, ledger_version(ledger),
                          models.identity())
    with store.stage_output(SAFETY_FILTERED_PAIRS, shard) as output:
        summary = filter_shard(inputs, policy, lists, ledger, models, output)
        written = SafetyFilteredPairsManifest(
            shard=shard, rows=summary.passed, candidates=summary.candidates,
            excluded_by_rule=summary.counts, redacted=summary.redacted,
            histograms=summary.histograms, policy=policy.to_dict(), lists=lists.sizes(),
            lists_version=lists.version, ledger_version=ledger_version(ledger),
            model=scored.model, safety_models=models.identity(), data_version=version,
            files={name: output.file(name) for name in SAFETY_FILES}, run_id=run_id)
        with store.open(written.pairs_file) as written_pairs:
            leaks = listed_pairs_in(pq.ParquetFile(written_pairs), lists, ledger, policy)
        if leaks:  # never commit a listed pair (the rules make this impossible; re-checked)
            raise ListedPairLeak(f"shard {shard}: written pairs match {describe_leaks(leaks)}")
        manifest = commit(output, written)
    log(f"shard {shard}: {manifest.rows} of {manifest.candidates} pairs pass; "
        f"excluded by rule: {manifest.excluded_by_rule}")
    return manifest


def describe_leaks(leaks: list[Hits]) -> str:
    """`rule: count (first detail)` per list that matched, for errors and check metadata."""
    return "; ".join(f"{h.rule}: {len(h.index)} ({h.detail[0]})" for h in leaks)
