"""Histogram bins fit the data: round widths and edges covering every value, no -0.0."""

import math

import numpy as np
import pytest

from laion_assets.pipeline.scoring.stage import histogram

UNTRAINED = np.random.default_rng(0).normal(-0.025, 0.01, 500).astype(np.float32)
TRAINED = np.random.default_rng(1).uniform(0.12, 0.41, 500)


@pytest.mark.parametrize("values", [UNTRAINED, TRAINED, np.array([0.3, 0.3]),
                                    np.array([-0.4, 0.9, np.nan])])
def test_bins_fit_the_values(values):
    bins = histogram(values)
    finite = values[np.isfinite(values)]
    assert 1 <= len(bins) <= 12
    assert bins[0][0] <= finite.min() and finite.max() <= bins[-1][1]
    assert sum(n for _, _, n in bins) == len(finite)
    widths = {round(hi - lo, 6) for lo, hi, _ in bins}
    assert len(widths) == 1
    mantissa = widths.pop() / 10 ** math.floor(math.log10(widths_of(bins)))
    assert round(mantissa, 6) in (1, 2, 2.5, 5)
    assert all(math.copysign(1, edge) == 1 for lo, hi, _ in bins for edge in (lo, hi)
               if edge == 0)


def test_untrained_similarities_are_not_lumped_into_one_bin():
    bins = histogram(UNTRAINED)
    assert max(n for _, _, n in bins) < len(UNTRAINED) / 2
    assert bins[-1][1] <= 0.01  # no empty bins up to +0.50


def test_explicit_bins_are_kept():
    bins = histogram(np.array([0.05, 0.95]), np.linspace(0, 1, 11))
    assert [(lo, hi) for lo, hi, _ in bins][:2] == [(0.0, 0.1), (0.1, 0.2)]
    assert [n for _, _, n in bins] == [1] + [0] * 8 + [1]


def widths_of(bins):
    return bins[0][1] - bins[0][0]
