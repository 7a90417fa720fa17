"""An independent re-check of written pairs against the mandatory lists (hash lists, URL
lists, opt-out domains and URLs, the takedown ledger): used by the safety stage's asset
check, the release's, and at publish time (before the files are written and again before
the commit)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

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
