"""The safety rules: a shard's candidates in, every exclusion (pair, rule, detail, value) out.

Each rule is a small function over the `Candidates` that returns its `Hits`; every hit is
recorded, so a pair excluded by several rules shows all of them. A candidate passes when it
was scored and no rule hit it. The rules in `MANDATORY_RULES` (hash lists, URL lists, the
takedown ledger) run whatever the policy says: they have no switch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from laion_assets.pipeline.download.withhold import HASH_LISTED
from laion_assets.pipeline.formats.urls import domain_of
from laion_assets.pipeline.safety.hashlists import load_exact, load_pdq
from laion_assets.pipeline.safety.lists import EXACT_KINDS, SafetyLists, matching_domain
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.takedowns import Takedown
from laion_assets.pipeline.safety.text_rules import KeywordMatcher, personal_data, redact

MANDATORY_RULES = ("hash_list", "url_list", "takedown")


@dataclass
class Candidates:
    """One shard's pairs with their fetch results and scores, as columns (row = candidate)."""

    pair_id: np.ndarray  # int64
    url: list[str]
    text: list[str]
    language: list[str]
    fetch_status: list[str | None]  # "ok", "failed", or None when the URL has no result
    fetch_reason: list[str | None]
    fetch_detail: list[str | None]
    width: np.ndarray  # int64, -1 where unknown
    height: np.ndarray
    bytes: np.ndarray
    sha256: list[str | None]
    md5: list[str | None]
    sha1: list[str | None]
    pdq: list[str | None]
    pdq_quality: np.ndarray  # int64, -1 where unknown
    similarity: np.ndarray  # float32, NaN where not scored

    def __len__(self) -> int:
        return len(self.pair_id)

    @property
    def scored(self) -> np.ndarray:
        return np.isfinite(self.similarity)


@dataclass
class ModelScores:
    """Model-based scores per candidate (NaN where not scored)."""

    punsafe: np.ndarray
    punsafe_detail: list[str]  # what gave the score: the head, or the top concept
    nsfw_concept: np.ndarray  # bool: a zero-shot NSFW concept fired
    minor_concept: list[str | None]  # the minor concept that fired, if any
    pwatermark: np.ndarray
    pwatermark_detail: list[str]
    # LAION's heads where one fits the CLIP model (None: no head; NaN: not scored)
    aesthetic: np.ndarray | None = None
    pviolence: np.ndarray | None = None
    head_detail: dict[str, str] = field(default_factory=dict)  # score -> the head that gave it


@dataclass
class Hits:
    rule: str
    index: list[int] = field(default_factory=list)
    detail: list[str] = field(default_factory=list)
    value: list[str] = field(default_factory=list)

    def add(self, i: int, detail: str, value: object) -> None:
        self.index.append(i)
        self.detail.append(detail)
        self.value.append("" if value is None else str(value)[:500])


@dataclass
class Decisions:
    passed: np.ndarray  # bool per candidate
    hits: list[Hits]
    text: list[str]  # captions after redaction (equal to the input unless redacted)
    redacted: np.ndarray  # bool per candidate

    def counts(self) -> dict[str, int]:
        """Pairs hit per rule (a pair can count under several rules)."""
        counts = Counter({h.rule: len(set(h.index)) for h in self.hits if h.index})
        return dict(counts.most_common())


@dataclass
class RuleContext:
    candidates: Candidates
    policy: SafetyPolicy
    lists: SafetyLists
    ledger: list[Takedown]
    scores: ModelScores
    # top_fraction mode: the shard's cutoff when the candidates are one batch of it
    similarity_cutoff: float | None = None


Rule = Callable[[RuleContext], list[Hits]]


def evaluate(context: RuleContext) -> Decisions:
    """Run every rule; a candidate passes when it was scored and no rule hit it."""
    c = context.candidates
    hits = [h for rule in RULES for h in rule(context)]
    hit = np.zeros(len(c), bool)
    for h in hits:
        hit[np.asarray(h.index, dtype=np.int64)] = True
    text, redacted = list(c.text), np.zeros(len(c), bool)
    if context.policy.personal_data == "redact":
        for i, caption in enumerate(c.text):
            if personal_data(caption):
                text[i], redacted[i] = redact(caption), True
    return Decisions(c.scored & ~hit, hits, text, redacted)


# -- fetching and scoring ----------------------------------------------------------------


def fetch_rule(ctx: RuleContext) -> list[Hits]:
    c = ctx.candidates
    failed, robots, unscored = Hits("not_fetched"), Hits("opt_out_x_robots_tag"), Hits("not_scored")
    for i, status in enumerate(c.fetch_status):
        if status != "ok" and c.fetch_reason[i] == HASH_LISTED:
            continue  # bytes withheld at download: the hash_list rule's
        if status != "ok":
            reason = c.fetch_reason[i] or "no_fetch_result"
            target = robots if reason == "x_robots_tag" else failed
            target.add(i, reason, c.fetch_detail[i])
        elif not np.isfinite(c.similarity[i]):
            unscored.add(i, "image did not decode for CLIP", c.sha256[i])
    return [failed, robots, unscored]


# -- mandatory: hash lists, URL lists, the takedown ledger --------------------------------


def hash_list_rule(ctx: RuleContext) -> list[Hits]:
    c, hits = ctx.candidates, Hits("hash_list")
    for kind in EXACT_KINDS:
        digests = getattr(c, kind)
        for name, matcher in ctx.lists.exact.get(kind, []):
            for i in np.flatnonzero(matcher.matches(digests)):
                hits.add(int(i), f"{kind} in {name}", digests[i])
    _pdq_hits(ctx, [(name, index) for name, index in ctx.lists.pdq], hits, "in")
    listed = set(hits.index)
    for i, reason in enumerate(c.fetch_reason):  # withheld at download, list changed since
        if reason == HASH_LISTED and c.fetch_status[i] != "ok" and i not in listed:
            hits.add(i, c.fetch_detail[i], c.md5[i])
    return [hits]


def _pdq_hits(ctx: RuleContext, indexes: list[tuple[str, object]], hits: Hits, word: str,
              labels: Sequence[str] | None = None) -> None:
    c, policy = ctx.candidates, ctx.policy
    for name, index in indexes:
        found, distance = index.query_many(c.pdq, max_distance=policy.pdq_max_distance,
                                           qualities=c.pdq_quality,
                                           min_quality=policy.pdq_min_quality)
        for i in np.flatnonzero(found >= 0):
            what = labels[found[i]] if labels is not None else name
            hits.add(int(i), f"pdq {word} {what} (distance {distance[i]})", c.pdq[i])


def url_list_rule(ctx: RuleContext) -> list[Hits]:
    c, hits = ctx.candidates, Hits("url_list")
    for name, urls in ctx.lists.urls:
        for i, url in enumerate(c.url):
            if url in urls:
                hits.add(i, f"url in {name}", url)
    return [hits]


def takedown_rule(ctx: RuleContext) -> list[Hits]:
    c, hits = ctx.candidates, Hits("takedown")
    by_kind: dict[str, list[Takedown]] = {}
    for entry in ctx.ledger:
        by_kind.setdefault(entry.kind, []).append(entry)
    urls = {e.value: e for e in by_kind.get("url", [])}
    domains = {e.value: e for e in by_kind.get("domain", [])}
    for i, url in enumerate(c.url):
        if url in urls:
            hits.add(i, _ledger_detail(urls[url]), url)
        domain = matching_domain(domain_of(url), domains.keys()) if domains else None
        if domain:
            hits.add(i, _ledger_detail(domains[domain]), domain)
    for kind in EXACT_KINDS:
        entries = by_kind.get(kind, [])
        if entries:
            digests = getattr(c, kind)
            matcher = load_exact(kind, [("ledger", [e.value for e in entries])])
            lookup = {e.value: e for e in entries}
            for i in np.flatnonzero(matcher.matches(digests)):  # digests of any case match
                hits.add(int(i), _ledger_detail(lookup[digests[i].lower()]), digests[i])
    pdq = by_kind.get("pdq", [])
    if pdq:
        index = load_pdq([("ledger", [e.value for e in pdq])])
        # the index keeps duplicate hashes once: label its entries, not the ledger's
        lookup = {e.value: e for e in pdq}
        labels = [_ledger_detail(lookup[index.hex_at(k)]) for k in range(len(index))]
        _pdq_hits(ctx, [("ledger", index)], hits, "matches", labels)
    return [hits]


def _ledger_detail(entry: Takedown) -> str:
    return f"{entry.id} ({entry.kind}): {entry.reason}"


# -- opt-outs ------------------------------------------------------------------------------


def opt_out_rule(ctx: RuleContext) -> list[Hits]:
    c = ctx.candidates
    by_domain, by_url = Hits("opt_out_domain"), Hits("opt_out_url")
    for i, url in enumerate(c.url):
        host = domain_of(url)
        for name, domains in ctx.lists.optout_domains:
            domain = matching_domain(host, domains)
            if domain:
                by_domain.add(i, f"{domain} in {name}", host)
        for name, urls in ctx.lists.optout_urls:
            if url in urls:
                by_url.add(i, f"url in {name}", url)
    return [by_domain, by_url]


# -- quality -------------------------------------------------------------------------------


def similarity_rule(ctx: RuleContext) -> list[Hits]:
    c, quality = ctx.candidates, ctx.policy.quality
    hits = Hits("similarity")
    scored = np.flatnonzero(c.scored)
    if quality.similarity_mode == "threshold":
        for i in scored:
            threshold = quality.similarity_threshold(c.language[i])
            if c.similarity[i] < threshold:
                hits.add(int(i), f"< {threshold:.3f} ({c.language[i]})", f"{c.similarity[i]:.4f}")
    elif quality.similarity_mode == "top_fraction" and len(scored):
        cutoff = ctx.similarity_cutoff
        if cutoff is None:
            cutoff = float(np.quantile(c.similarity[scored], 1.0 - quality.top_fraction))
        for i in scored:
            if c.similarity[i] < cutoff:
                hits.add(int(i), f"below the top {quality.top_fraction:.0%} (cutoff {cutoff:.4f})",
                         f"{c.similarity[i]:.4f}")
    return [hits]


def image_rule(ctx: RuleContext) -> list[Hits]:
    c, q = ctx.candidates, ctx.policy.quality
    small, light, shape = Hits("image_too_small"), Hits("image_too_few_bytes"), Hits("aspect_ratio")
    for i in np.flatnonzero(np.asarray(c.fetch_status, dtype=object) == "ok"):
        w, h = int(c.width[i]), int(c.height[i])
        if min(w, h) < q.min_side:
            small.add(int(i), f"shorter side < {q.min_side} px", f"{w}x{h}")
        if 0 <= c.bytes[i] < q.min_bytes:
            light.add(int(i), f"< {q.min_bytes} bytes", int(c.bytes[i]))
        if min(w, h) > 0 and max(w, h) / min(w, h) > q.max_aspect_ratio:
            shape.add(int(i), f"> {q.max_aspect_ratio:g}:1", f"{w}x{h}")
    return [small, light, shape]


def text_length_rule(ctx: RuleContext) -> list[Hits]:
    c, q = ctx.candidates, ctx.policy.quality
    short, long = Hits("text_too_short"), Hits("text_too_long")
    for i, text in enumerate(c.text):
        if len(text) < q.min_text_chars:
            short.add(i, f"< {q.min_text_chars} characters", text)
        elif len(text) > q.max_text_chars:
            long.add(i, f"> {q.max_text_chars} characters", len(text))
    return [short, long]


# -- NSFW, minors, watermarks, personal data ------------------------------------------------


def nsfw_rule(ctx: RuleContext) -> list[Hits]:
    c, rules, s = ctx.candidates, ctx.policy.nsfw, ctx.scores
    nsfw, keyword, minor = Hits("nsfw"), Hits("nsfw_keyword"), Hits("minor_nsfw")
    # `use_keywords` switches the keyword rule off; with a minor signal a keyword still counts
    nsfw_words = KeywordMatcher(rules.keywords)
    minor_words = KeywordMatcher(rules.minor_keywords)
    for i in range(len(c)):
        unsafe = bool(s.punsafe[i] >= rules.threshold)  # False for NaN
        if unsafe:
            nsfw.add(i, f"punsafe >= {rules.threshold} ({s.punsafe_detail[i]})",
                     f"{s.punsafe[i]:.4f}")
        word = nsfw_words.first(c.text[i], c.url[i])
        if word and rules.use_keywords:
            keyword.add(i, f"keyword {word!r}", word)
        minor_signal = s.minor_concept[i] or minor_words.first(c.text[i], c.url[i])
        nsfw_signal = unsafe or bool(s.nsfw_concept[i]) or bool(word)
        if minor_signal and nsfw_signal:
            minor.add(i, f"minor signal {minor_signal!r} with an NSFW signal",
                      f"punsafe {s.punsafe[i]:.4f}")
    return [nsfw, keyword, minor]


def watermark_rule(ctx: RuleContext) -> list[Hits]:
    rules, s, hits = ctx.policy.watermark, ctx.scores, Hits("watermark")
    if rules.enabled:
        for i in np.flatnonzero(s.pwatermark >= rules.threshold):
            hits.add(int(i), f"pwatermark >= {rules.threshold} ({s.pwatermark_detail[i]})",
                     f"{s.pwatermark[i]:.4f}")
    return [hits]


def aesthetic_rule(ctx: RuleContext) -> list[Hits]:
    """LAION-Aesthetics floor: a scored pair below `min_score` is excluded."""
    floor, s, hits = ctx.policy.aesthetic.min_score, ctx.scores, Hits("aesthetic")
    if floor is not None and s.aesthetic is not None:
        head = s.head_detail.get("aesthetic", "aesthetic head")
        for i in np.flatnonzero(s.aesthetic < floor):  # False for NaN (not scored)
            hits.add(int(i), f"aesthetic < {floor:g} ({head})", f"{s.aesthetic[i]:.3f}")
    return [hits]


def violence_rule(ctx: RuleContext) -> list[Hits]:
    """clip-retrieval's violence detector: pviolence above the threshold is excluded."""
    rules, s, hits = ctx.policy.violence, ctx.scores, Hits("violence")
    if rules.exclude and s.pviolence is not None:
        head = s.head_detail.get("pviolence", "violence prompts")
        for i in np.flatnonzero(s.pviolence > rules.threshold):
            hits.add(int(i), f"pviolence > {rules.threshold:g} ({head})",
                     f"{s.pviolence[i]:.4f}")
    return [hits]


def personal_data_rule(ctx: RuleContext) -> list[Hits]:
    hits = Hits("personal_data")
    if ctx.policy.personal_data == "drop":
        for i, text in enumerate(ctx.candidates.text):
            found = personal_data(text)
            if found:
                kinds = sorted({kind for kind, _ in found})
                hits.add(i, " and ".join(kinds), "; ".join(_mask(m) for _, m in found))
    return [hits]


def _mask(value: str) -> str:
    """Enough of a match to recognise it, not enough to republish it."""
    return value[:2] + "…" + value[-2:] if len(value) > 6 else "…"


RULES: tuple[Rule, ...] = (
    fetch_rule, hash_list_rule, url_list_rule, takedown_rule, opt_out_rule, similarity_rule,
    image_rule, text_length_rule, nsfw_rule, watermark_rule, aesthetic_rule, violence_rule,
    personal_data_rule,
)
