"""Histograms as Dagster tables, and edges printed with the decimals their width needs."""

import numpy as np

from laion_assets.defs.metadata import histogram_md, histogram_table
from laion_assets.pipeline.scoring.stage import histogram


def test_untrained_similarities_as_a_table_and_a_chart():
    values = np.random.default_rng(0).normal(-0.025, 0.01, 200)
    bins = histogram(values)
    table = histogram_table(bins, "cosine similarity")
    assert [c.name for c in table.schema.columns] == ["from", "to", "pairs"]
    assert all(c.description for c in table.schema.columns)
    assert sum(r.data["pairs"] for r in table.records) == 200
    assert table.records[0].data["from"] <= values.min()
    chart = histogram_md(bins, "cosine")
    labels = [line.split("|")[1].strip() for line in chart.splitlines()[2:]]
    assert len(set(labels)) == len(labels)  # 0.005-wide bins: three decimals, none repeated
    assert "-0.000" not in chart and "-0.00 " not in chart
