"""An independent re-check of written pairs against the mandatory lists (hash lists, URL
lists, opt-out domains and URLs, the takedown ledger): used by the safety stage's asset
check, the release's, and at publish time (before the files are written and again before
the commit)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from laion_assets.pipeline.safety.lists import SafetyLists
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.rules import (
    Candidates,
    Hits,
    ModelScores,
    RuleContext,
    hash_list_rule,
    opt_out_rule,
    takedown_rule,
    url_list_rule,
)
from laion_assets.pipeline.safety.takedowns import Takedown

COLUMNS = ("pair_id", "url", "sha256", "md5", "sha1", "pdq", "pdq_quality")


def listed_pairs(pairs: pa.Table, lists: SafetyLists, ledger: list[Takedown],
                 policy: SafetyPolicy) -> list[Hits]:
    """The mandatory-rule hits among `pairs` (a table with COLUMNS); empty when clean."""
    n = pairs.num_rows

    def col(name: str) -> list:
        return pairs.column(name).to_pylist() if name in pairs.column_names else [None] * n

    quality = np.array([-1 if q is None else q for q in col("pdq_quality")], np.int64)
    if "pdq_quality" not in pairs.column_names:  # no quality recorded: match every PDQ
        quality[:] = policy.pdq_min_quality
    none = np.full(n, np.nan, np.float32)
    candidates = Candidates(
        pair_id=np.asarray(col("pair_id"), np.int64), url=col("url"), text=[""] * n,
        language=[""] * n, fetch_status=["ok"] * n, fetch_reason=[None] * n,
        fetch_detail=[None] * n, width=np.zeros(n, np.int64), height=np.zeros(n, np.int64),
        bytes=np.zeros(n, np.int64), sha256=col("sha256"), md5=col("md5"), sha1=col("sha1"),
        pdq=col("pdq"), pdq_quality=quality, similarity=none)
    scores = ModelScores(none, [""] * n, np.zeros(n, bool), [None] * n, none, [""] * n)
    context = RuleContext(candidates, policy, lists, ledger, scores)
    rules = (hash_list_rule, url_list_rule, opt_out_rule, takedown_rule)
    hits = [h for rule in rules for h in rule(context)]
    return [h for h in hits if h.index]


def listed_pairs_in(file: pq.ParquetFile, lists: SafetyLists, ledger: list[Takedown],
                    policy: SafetyPolicy, batch_rows: int = 131_072) -> list[Hits]:
    """`listed_pairs` over a parquet file of pairs, a batch at a time (index: the file's row)."""
    merged: dict[str, Hits] = {}
    columns = [c for c in COLUMNS if c in file.schema_arrow.names]
    start = 0
    for batch in file.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
        for hits in listed_pairs(pa.Table.from_batches([batch]), lists, ledger, policy):
            into = merged.setdefault(hits.rule, Hits(hits.rule))
            into.index.extend(start + i for i in hits.index)
            into.detail.extend(hits.detail)
            into.value.extend(hits.value)
        start += batch.num_rows
    return list(merged.values())
