"""The statistics of a comparison (common.stats) against R's documented conventions, computed here by hand, and against
the library they delegate to."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, chi2, norm

from common import stats


def outcomes(both, a_only, b_only, neither):
    a = [1] * both + [1] * a_only + [0] * b_only + [0] * neither
    b = [1] * both + [0] * a_only + [1] * b_only + [0] * neither
    return a, b


# --------------------------------------------------------------------------------------------------------- McNemar


def test_mcnemar_is_r_continuity_corrected_chi_square():
    # Agresti (1990), presidential approval: 794 / 150 / 86 / 570; R: McNemar's chi-squared = 16.818, p = 4.115e-05
    result = stats.mcnemar(*outcomes(794, 150, 86, 570))
    assert result.statistic == pytest.approx((abs(150 - 86) - 1) ** 2 / (150 + 86))
    assert result.statistic == pytest.approx(16.818, abs=5e-4)
    assert result.p_value == pytest.approx(chi2.sf(result.statistic, 1))
    assert result.p_value == pytest.approx(4.115e-05, rel=1e-3)
    assert (result.both, result.a_only, result.b_only, result.neither) == (794, 150, 86, 570)
    assert result.odds_ratio == pytest.approx(150.5 / 86.5)


@pytest.mark.parametrize("counts, p, odds", [
    ((32, 8, 1, 148), 0.045500, 5.6667),   # the study's RQ2 Python 3B (MT-QLoRA vs MT-FFT), as published
    ((22, 8, 6, 152), 0.789268, 1.3077),   # RQ2 Python 0.5B paired by id (published misaligned: 0.885234)
    ((22, 14, 8, 145), 0.286422, 1.7059),  # RQ2 Python 1.5B paired by id (published misaligned: 0.460995)
    ((0, 12, 10, 162), 0.831170, 1.1905),  # RQ2 Java 0.5B discordant counts, as published
])
def test_mcnemar_reproduces_the_study(counts, p, odds):
    result = stats.mcnemar(*outcomes(*counts))
    assert round(result.p_value, 6) == p
    assert round(result.odds_ratio, 4) == odds


def test_mcnemar_equal_discordant_counts_is_uncorrected_as_in_r():
    # R corrects only when b != c: the statistic is 0 and p = 1 (a corrected 1/(2b) would give p < 1)
    result = stats.mcnemar(*outcomes(5, 7, 7, 9))
    assert result.statistic == 0.0
    assert result.p_value == 1.0
    assert result.note == ""


def test_mcnemar_without_discordant_pairs_is_p_one_with_a_note():
    result = stats.mcnemar(*outcomes(4, 0, 0, 6))
    assert result.p_value == 1.0
    assert "no discordant" in result.note
    assert result.odds_ratio == 1.0


def test_mcnemar_exact_is_the_binomial_test_of_the_discordant_pairs():
    result = stats.mcnemar(*outcomes(10, 9, 2, 30), exact=True)
    assert result.test == "mcnemar-exact"
    assert result.p_value == pytest.approx(binomtest(2, 11, 0.5).pvalue)
    assert result.p_value != pytest.approx(stats.mcnemar(*outcomes(10, 9, 2, 30)).p_value)


# -------------------------------------------------------------------------------------------------------- Wilcoxon


def r_wilcoxon(x, y):
    """R's wilcox.test(x, y, paired = TRUE, exact = FALSE, correct = FALSE), written out: zero differences dropped,
    V = the rank sum of the positive differences, normal approximation with the tie-corrected variance."""
    d = np.asarray(x, float) - np.asarray(y, float)
    d = d[d != 0]
    n = d.size
    from scipy.stats import rankdata

    ranks = rankdata(np.abs(d))
    v = ranks[d > 0].sum()
    _, ties = np.unique(ranks, return_counts=True)
    sigma = math.sqrt(n * (n + 1) * (2 * n + 1) / 24 - np.sum(ties ** 3 - ties) / 48)
    z = (v - n * (n + 1) / 4) / sigma
    return v, 2 * norm.sf(abs(z))


def test_wilcoxon_r_documentation_example():
    # ?wilcox.test: Hollander & Wolfe (1973), depression scale before (x) and after (y) therapy; V = 40
    x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    result = stats.wilcoxon(x, y)
    assert result.statistic == 40
    assert result.p_value == pytest.approx(r_wilcoxon(x, y)[1], rel=1e-12)
    assert result.p_value == pytest.approx(0.03815, abs=5e-6)


def test_wilcoxon_drops_zero_differences_and_corrects_for_ties():
    x = [0.5, 0.3, 0.3, 0.9, 0.1, 0.4, 0.4, 0.7, 0.2, 0.6, 0.6, 0.6]
    y = [0.5, 0.1, 0.5, 0.7, 0.1, 0.2, 0.6, 0.3, 0.2, 0.4, 0.8, 0.2]  # three zeros, |d| tied at 0.2 six times
    result = stats.wilcoxon(x, y)
    v, p = r_wilcoxon(x, y)
    assert result.statistic == v
    assert result.p_value == pytest.approx(p, rel=1e-12)
    # keeping the zeros (Pratt) or dropping the tie correction gives another p-value: the convention matters here
    from scipy.stats import wilcoxon as sp

    assert sp(x, y, zero_method="pratt", method="asymptotic").pvalue != pytest.approx(p, rel=1e-6)


def test_wilcoxon_statistic_is_r_v_not_scipys_minimum():
    x, y = [3, 4, 5, 6, 7], [1, 1, 1, 9, 1]
    # d = 2, 3, 4, -3, 6: ranks 1, 2.5, 4, 2.5, 5; R's V sums the positive ones, scipy's two-sided gives min(V+, V-)
    assert stats.wilcoxon(x, y).statistic == 12.5


def test_wilcoxon_of_identical_vectors_is_no_test():
    result = stats.wilcoxon([1, 2, 3], [1, 2, 3])
    assert math.isnan(result.p_value)
    assert "every difference is 0" in result.note


# ---------------------------------------------------------------------------------------- multiple testing, effect


def test_holm_and_bh_as_r_p_adjust():
    p = [0.01, 0.02, 0.03, 0.04, 0.05]
    # R: p.adjust(p, "holm") = 0.05 0.08 0.09 0.09 0.09; p.adjust(p, "BH") = 0.05 0.05 0.05 0.05 0.05
    assert stats.adjust(p, "holm") == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    assert stats.adjust(p, "bh") == pytest.approx([0.05] * 5)
    assert stats.adjust(p, "none") == p


def test_adjust_leaves_nan_out_of_the_family():
    adjusted = stats.adjust([0.01, math.nan, 0.04], "holm")
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.04)  # a family of 2, not 3
    assert math.isnan(adjusted[1])


def test_cliffs_delta_by_hand():
    # a over b: 1 < 2,2,4 (-3); 2 = 2,2 and < 4 (-1); 3 > 2,2 and < 4 (+1): (2 - 5) / 9
    assert stats.cliffs_delta([1, 2, 3], [2, 2, 4]) == pytest.approx(-3 / 9)
    assert stats.cliffs_delta([2, 2, 4], [1, 2, 3]) == pytest.approx(3 / 9)
    assert stats.cliffs_delta([5, 6], [1, 2, 3]) == 1.0
    # unpaired: the order of the items does not matter, unlike a paired statistic
    assert stats.cliffs_delta([3, 1, 2], [4, 2, 2]) == pytest.approx(-3 / 9)


@pytest.mark.parametrize("delta, word", [(0.0, "negligible"), (0.1469, "negligible"), (0.147, "small"),
                                         (-0.2, "small"), (0.33, "medium"), (0.4739, "medium"), (0.474, "large"),
                                         (-1.0, "large")])
def test_magnitude_thresholds(delta, word):
    assert stats.magnitude(delta) == word


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1, 200), rng.normal(0.5, 1, 200)
    low, high = stats.bootstrap_ci(a, b, seed=42)
    assert low < np.mean(a - b) < high
    assert (low, high) == stats.bootstrap_ci(a, b, seed=42)
    assert (low, high) != stats.bootstrap_ci(a, b, seed=7)
    assert stats.bootstrap_ci([1, 2, 3], [0, 1, 2]) == (1.0, 1.0)  # constant differences: no spread
