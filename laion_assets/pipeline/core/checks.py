"""Checks over stage outputs (schema, key uniqueness), shared by assets and tests."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from laion_assets.pipeline.core.store import DatasetStore


def schema_problems(store: DatasetStore, path: str, expected: pa.Schema) -> list[str]:
    """Differences between a parquet file's schema and the expected one (empty if none)."""
    with store.open(path) as handle:
        actual = pq.read_schema(handle)
    problems = [f"missing column {f.name}" for f in expected if f.name not in actual.names]
    problems += [f"unexpected column {n}" for n in actual.names if n not in expected.names]
    for field in expected:
        if field.name in actual.names and actual.field(field.name).type != field.type:
            problems.append(f"{field.name}: {actual.field(field.name).type} != {field.type}")
    return problems


def duplicate_count(store: DatasetStore, path: str, column: str) -> int:
    """How many rows repeat an earlier value of `column`."""
    values = store.read_parquet(path, columns=[column]).column(column)
    return len(values) - len(pc.unique(values))
