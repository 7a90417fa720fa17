"""Per-stage counters: every dropped item is counted under a reason (as datatrove's steps do)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

DOMAIN_COUNTER_LIMIT = 200_000


@dataclass
class StageStats:
    """Counters of one stage run; `dropped` maps a reason to how many items it dropped."""

    counts: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    skipped_records: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)
    domains: Counter[str] = field(default_factory=Counter)

    def count_domain(self, domain: str) -> None:
        """Count a domain; the long tail is pruned so memory stays bounded (top counts stay)."""
        self.domains[domain] += 1
        if len(self.domains) > DOMAIN_COUNTER_LIMIT:
            self.domains = Counter(dict(self.domains.most_common(DOMAIN_COUNTER_LIMIT // 2)))

    def merge(self, other: StageStats) -> None:
        for name in ("counts", "dropped", "skipped_records", "languages", "domains"):
            getattr(self, name).update(getattr(other, name))

    def to_dict(self, top_domains: int = 25) -> dict:
        return {
            "counts": dict(self.counts),
            "dropped": dict(self.dropped.most_common()),
            "skipped_records": dict(self.skipped_records.most_common()),
            "languages": dict(self.languages.most_common()),
            "top_domains": dict(self.domains.most_common(top_domains)),
        }
