"""Small helpers that turn stage statistics into Dagster UI metadata."""

from __future__ import annotations

import pyarrow as pa
from dagster import TableColumn, TableSchema

from laion_assets.pipeline.core.columns import COLUMN_DESCRIPTIONS


def counts_table(counts: dict[str, int], label: str, limit: int | None = None) -> str:
    """A markdown table of counts, largest first."""
    rows = sorted(counts.items(), key=lambda item: -item[1])[:limit]
    if not rows:
        return f"(no {label}s)"
    body = "\n".join(f"| {name} | {count:,} |" for name, count in rows)
    return f"| {label} | count |\n|---|---:|\n{body}"


def histogram_md(histogram: list, label: str, fmt: str = "+.2f") -> str:
    """A markdown bar chart of (low, high, count) bins."""
    top = max((n for _, _, n in histogram), default=0) or 1
    rows = "\n".join(f"| {lo:{fmt}} … {hi:{fmt}} | {n:,} | {'█' * round(20 * n / top)} |"
                     for lo, hi, n in histogram)
    return f"| {label} | pairs | |\n|---|---:|---|\n" + rows


def column_schema(schema: pa.Schema, descriptions: dict[str, str] | None = None) -> TableSchema:
    """A Dagster column schema (shown on the asset page) from a pyarrow schema, each column
    described (`descriptions` over the shared COLUMN_DESCRIPTIONS)."""
    descriptions = {**COLUMN_DESCRIPTIONS, **(descriptions or {})}
    return TableSchema(columns=[
        TableColumn(name=f.name, type=str(f.type), description=descriptions.get(f.name))
        for f in schema])
