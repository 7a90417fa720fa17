"""Small helpers that turn stage statistics into Dagster UI metadata."""

from __future__ import annotations


def counts_table(counts: dict[str, int], label: str, limit: int | None = None) -> str:
    """A markdown table of counts, largest first."""
    rows = sorted(counts.items(), key=lambda item: -item[1])[:limit]
    if not rows:
        return f"(no {label}s)"
    body = "\n".join(f"| {name} | {count:,} |" for name, count in rows)
    return f"| {label} | count |\n|---|---:|\n{body}"
