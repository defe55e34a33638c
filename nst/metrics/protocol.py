"""The full evaluation protocol and how a set of per-pair values is summarised.

Recent NST papers (e.g. StyTr^2, Deng et al. 2022; ArtFID, Wright & Ommer 2022; AesPA-Net,
Hong et al. 2023) evaluate every combination of 20 content and 40 style images (800 results,
content from MS-COCO, styles from WikiArt) and report the mean of each metric. We report the
mean with a 95% confidence interval from Student's t distribution,

    mean +- t_{0.975, n-1} * s / sqrt(n),      s the sample standard deviation,

which is accurate for means of n >= ~30 values even when the values themselves are skewed
(central limit theorem). Pairs share images, so they are not independent: the interval is a
guide to run-to-run precision, not a significance test between methods (use paired tests).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from scipy import stats

from nst import NstError


@dataclass(frozen=True)
class Protocol:
    n_content: int
    n_style: int
    pairs: str  # which (content, style) pairs are evaluated
    statistic: str
    confidence: float
    interval: str
    content_source: str
    style_source: str

    @property
    def n_pairs(self) -> int:
        return self.n_content * self.n_style


PROTOCOL = Protocol(
    n_content=20,
    n_style=40,
    pairs="all combinations (20 x 40 = 800 results), every one evaluated",
    statistic="mean",
    confidence=0.95,
    interval="Student t: mean +- t_{0.975,n-1} s / sqrt(n)",
    content_source="MS-COCO val2017 (manifests/coco_val2017.json)",
    style_source="WikiArt public domain (manifests/wikiart_pd.json)",
)


def summarize(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high) with a Student-t confidence interval (module docstring).

    One value gives (v, nan, nan): there is no spread to estimate. Empty or non-finite input
    raises NstError."""
    xs = [float(v) for v in values]
    if not xs:
        raise NstError("summarize: no values")
    if not all(math.isfinite(v) for v in xs):
        raise NstError("summarize: values must be finite (drop failed or pruned results first)")
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half
