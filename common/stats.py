"""The statistics of a paired comparison, with R's conventions (those of the study's R scripts):

    mcnemar(a, b)            0/1 outcomes (pass@1, exact match): R `mcnemar.test(correct = TRUE)`, or exact binomial
    wilcoxon(a, b)           any other paired metric: R `wilcox.test(paired = TRUE, exact = FALSE, correct = FALSE)`
    adjust(p, "holm")        multiple testing: R `p.adjust`, holm or BH; missing p-values are left out of the family
    cliffs_delta(a, b)       effect size, unpaired as R `effsize::cliff.delta`, and its magnitude
    bootstrap_ci(a, b)       a seeded percentile bootstrap 95% interval of the mean paired difference

The numbers come from scipy and statsmodels; where R's convention differs from theirs, the case is handled here and
the comment says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# effsize::cliff.delta's magnitude thresholds on |d| (Romano et al., 2006)
MAGNITUDES = ((0.147, "negligible"), (0.33, "small"), (0.474, "medium"), (math.inf, "large"))


@dataclass
class TestResult:
    test: str
    statistic: float
    p_value: float
    note: str = ""


@dataclass
class McNemarResult(TestResult):
    both: int = 0
    a_only: int = 0  # a passes, b fails
    b_only: int = 0
    neither: int = 0

    @property
    def odds_ratio(self) -> float:
        """The study's odds ratio of the discordant pairs, (a_only + 0.5) / (b_only + 0.5): > 1 when a wins them."""
        return (self.a_only + 0.5) / (self.b_only + 0.5)


def mcnemar(a, b, *, exact: bool = False) -> McNemarResult:
    """McNemar's test of paired 0/1 outcomes, as R's `mcnemar.test(table, correct = TRUE)`: the chi-square statistic
    (|b - c| - 1)^2 / (b + c) with 1 degree of freedom; `exact`: the two-sided binomial test of the discordant pairs."""
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    counts = dict(both=int(np.sum((a == 1) & (b == 1))), a_only=int(np.sum((a == 1) & (b == 0))),
                  b_only=int(np.sum((a == 0) & (b == 1))), neither=int(np.sum((a == 0) & (b == 0))))
    discordant = counts["a_only"] + counts["b_only"]
    if discordant == 0:
        # R: 0/0 = NaN. No discordant pair is no evidence of a difference: p = 1, said in the note.
        return McNemarResult("mcnemar-exact" if exact else "mcnemar", 0.0, 1.0,
                             "no discordant pair: p = 1", **counts)
    table = [[counts["both"], counts["a_only"]], [counts["b_only"], counts["neither"]]]
    if exact:
        result = sm_mcnemar(table, exact=True)  # statistic: the smaller discordant count
        return McNemarResult("mcnemar-exact", float(result.statistic), float(result.pvalue), **counts)
    # R corrects for continuity only when the discordant counts differ; statsmodels always does, which with b = c
    # would give 1 / (2b) instead of R's 0 (p = 1).
    result = sm_mcnemar(table, exact=False, correction=counts["a_only"] != counts["b_only"])
    return McNemarResult("mcnemar", float(result.statistic), float(result.pvalue), **counts)


def wilcoxon(a, b) -> TestResult:
    """The paired Wilcoxon signed-rank test as R's `wilcox.test(a, b, paired = TRUE, exact = FALSE, correct = FALSE)`:
    zero differences dropped, the normal approximation with the tie-corrected variance, no continuity correction.
    The statistic is R's V, the sum of the ranks of the positive differences a - b. NaN when every difference is 0."""
    from scipy.stats import rankdata
    from scipy.stats import wilcoxon as sp_wilcoxon

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    nonzero = d[d != 0]
    if nonzero.size == 0:  # R: 0/0 = NaN; scipy warns and returns NaN
        return TestResult("wilcoxon", 0.0, math.nan, "every difference is 0: no test")
    result = sp_wilcoxon(d, zero_method="wilcox", correction=False, method="asymptotic")  # wilcox: zeros dropped
    v = float(np.sum(rankdata(np.abs(nonzero))[nonzero > 0]))  # scipy's two-sided statistic is min(V+, V-)
    return TestResult("wilcoxon", v, float(result.pvalue))


def adjust(p_values: list[float], method: str = "holm") -> list[float]:
    """p-values adjusted for multiple testing as R's `p.adjust`: "holm", "bh" (Benjamini-Hochberg) or "none".
    NaN p-values stay NaN and are not counted in the family (R's `p.adjust` with its default n = sum(!is.na(p)))."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = p.copy()
    present = ~np.isnan(p)
    if method != "none" and present.any():
        methods = {"holm": "holm", "bh": "fdr_bh"}
        if method not in methods:
            raise ValueError(f"method must be holm, bh or none, got {method!r}")
        out[present] = multipletests(p[present], method=methods[method])[1]
    return [float(v) for v in out]


def cliffs_delta(a, b) -> float:
    """Cliff's delta of `a` over `b`, unpaired as R's `effsize::cliff.delta(a, b)`: P(a > b) - P(a < b) over every
    cross pair. From the Mann-Whitney U of `a`, which counts a tie as one half: delta = 2U / (n m) - 1."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    u = mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").statistic
    return float(2 * u / (a.size * b.size) - 1)


def magnitude(delta: float) -> str:
    """effsize's words for |delta|: negligible < 0.147 <= small < 0.33 <= medium < 0.474 <= large."""
    return next(word for bound, word in MAGNITUDES if abs(delta) < bound)


def bootstrap_ci(a, b, *, seed: int = 42, n_resamples: int = 9999, level: float = 0.95) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean of the paired differences a - b (items resampled with
    replacement), seeded, so that a rerun gives the same interval. Percentile rather than BCa: it is defined for
    every sample, constant differences included."""
    from scipy.stats import bootstrap

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size < 2 or np.all(d == d[0]):
        return float(d.mean()), float(d.mean())
    result = bootstrap((d,), np.mean, n_resamples=n_resamples, confidence_level=level, method="percentile",
                       rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
