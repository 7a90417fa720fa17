"""Small helpers that turn stage statistics into Dagster UI metadata."""

from __future__ import annotations

import math

import pyarrow as pa
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from laion_assets.pipeline.core.columns import COLUMN_DESCRIPTIONS


def counts_table(counts: dict[str, int], label: str, limit: int | None = None) -> str:
    """A markdown table of counts, largest first."""
    rows = sorted(counts.items(), key=lambda item: -item[1])[:limit]
    if not rows:
        return f"(no {label}s)"
    body = "\n".join(f"| {name} | {count:,} |" for name, count in rows)
    return f"| {label} | count |\n|---|---:|\n{body}"


def histogram_md(histogram: list, label: str, fmt: str | None = None) -> str:
    """A markdown bar chart of (low, high, count) bins; edges shown with as many decimals as
    the bin width needs unless `fmt` is given."""
    fmt = fmt or f"+.{edge_decimals(histogram)}f"
    top = max((n for _, _, n in histogram), default=0) or 1
    rows = "\n".join(f"| {lo:{fmt}} … {hi:{fmt}} | {n:,} | {'█' * round(20 * n / top)} |"
                     for lo, hi, n in histogram)
    return f"| {label} | pairs | |\n|---|---:|---|\n" + rows


def edge_decimals(histogram: list) -> int:
    """Decimals that tell a histogram's edges apart (0.05 wide: 2, 0.025 or 0.005: 3)."""
    if not histogram:
        return 2
    width = abs(histogram[0][1] - histogram[0][0]) or 0.01
    decimals = max(0, min(6, math.ceil(-math.log10(width) - 1e-9)))
    return decimals + (round(width, decimals) != round(width, 9))


def histogram_table(histogram: list, label: str) -> MetadataValue:
    """(low, high, count) bins as a Dagster table: numbers the UI can sort and copy."""
    schema = TableSchema(columns=[
        TableColumn("from", "float", description=f"{label} at least"),
        TableColumn("to", "float", description=f"{label} below (the last bin: at most)"),
        TableColumn("pairs", "int", description="pairs in the bin")])
    return MetadataValue.table(
        [TableRecord({"from": float(lo), "to": float(hi), "pairs": int(n)})
         for lo, hi, n in histogram], schema=schema)


def counts_table_value(counts: dict[str, int], label: str, what: str = "pairs",
                       largest_first: bool = True) -> MetadataValue:
    """Counts by `label` (rule, reason, stage) as a Dagster table, largest first unless told
    (a funnel keeps its order); `what` names the counted items."""
    schema = TableSchema(columns=[
        TableColumn(label, "string", description=f"the {label}"),
        TableColumn(what, "int", description=f"{what} counted under the {label}")])
    rows = sorted(counts.items(), key=lambda item: -item[1]) if largest_first else counts.items()
    return MetadataValue.table([TableRecord({label: name, what: int(n)}) for name, n in rows],
                               schema=schema)


def column_schema(schema: pa.Schema, descriptions: dict[str, str] | None = None) -> TableSchema:
    """A Dagster column schema (shown on the asset page) from a pyarrow schema, each column
    described (`descriptions` over the shared COLUMN_DESCRIPTIONS)."""
    descriptions = {**COLUMN_DESCRIPTIONS, **(descriptions or {})}
    return TableSchema(columns=[
        TableColumn(name=f.name, type=str(f.type), description=descriptions.get(f.name))
        for f in schema])
