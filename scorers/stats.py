"""Seeded bootstrap statistics: confidence intervals of means, and the paired non-inferiority test that
answers the paper's question "does the sparse method preserve accuracy?".

Everything is a pure function of (values, seed, resamples): the same inputs give the same numbers on
every machine. Callers sort samples by id first so that file order does not matter.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
_CHUNK_CELLS = 4_000_000  # resample indices drawn per chunk: bounds memory for large n


def bootstrap_means(values, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Means of `resamples` resamples (with replacement) of `values`; deterministic in `seed`."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("bootstrap needs a non-empty 1-D array of values")
    rng = np.random.default_rng(seed)
    n = values.size
    rows = max(1, _CHUNK_CELLS // n)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


def bootstrap_ci(values, *, confidence: float = 0.95, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    """Two-sided percentile bootstrap interval of the mean; (nan, nan) for no values."""
    if len(values) == 0:
        return (math.nan, math.nan)
    means = bootstrap_means(values, resamples=resamples, seed=seed)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (float(low), float(high))


@dataclass
class PairedResult:
    """Outcome of `paired_noninferiority`: B (candidate) against A (baseline) on the same samples."""

    n: int
    mean_a: float
    mean_b: float
    diff: float  # mean(B - A)
    # Ends of the two-sided (1 - 2*alpha) interval of the difference (90% for alpha = 0.05): each end
    # is a one-sided (1 - alpha) confidence bound, the low one is what the test compares with -delta.
    ci_low: float
    ci_high: float
    p_value: float  # bootstrap p-value of H0: mean(B - A) <= -delta
    delta: float
    alpha: float
    verdict: str  # "preserved" | "degraded" | "inconclusive"

    def as_dict(self) -> dict:
        return asdict(self)


TEST_DESCRIPTION = (
    "paired non-inferiority test on per-sample scores of the same sample ids: "
    "H0: mean(B - A) <= -delta (B loses at least delta) vs H1: mean(B - A) > -delta; one-sided, "
    "percentile paired bootstrap of the mean difference; accuracy is 'preserved' when the one-sided "
    "(1 - alpha) lower confidence bound exceeds -delta, 'degraded' when the upper bound is below -delta, "
    "else 'inconclusive'"
)


def paired_noninferiority(a, b, *, delta: float = 0.05, alpha: float = 0.05,
                          resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> PairedResult:
    """Is B (e.g. sparse) non-inferior to A (e.g. dense) within an absolute tolerance `delta`?

    `a[i]` and `b[i]` must score the same sample. Resampling pairs keeps the per-sample correlation
    (the same hard samples are hard for both), which makes the test far sharper than an unpaired one.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError("a paired test needs two non-empty score arrays of the same length")
    if not 0.0 < alpha < 0.5:
        raise ValueError("alpha must be in (0, 0.5)")
    diffs = b - a
    means = bootstrap_means(diffs, resamples=resamples, seed=seed)
    lower, upper = np.quantile(means, [alpha, 1.0 - alpha])
    p_value = (np.count_nonzero(means <= -delta) + 1) / (resamples + 1)
    if lower > -delta:
        verdict = "preserved"
    elif upper < -delta:
        verdict = "degraded"
    else:
        verdict = "inconclusive"
    return PairedResult(
        n=int(a.size), mean_a=float(a.mean()), mean_b=float(b.mean()), diff=float(diffs.mean()),
        ci_low=float(lower), ci_high=float(upper), p_value=float(p_value),
        delta=float(delta), alpha=float(alpha), verdict=verdict,
    )
