"""Spread over random seeds: the one rule every table, verdict and plot of the project uses.

The spread of per-seed values is the *sample* standard deviation (``ddof=1``), the estimate of the
spread between seeds. One seed gives no estimate of it: its std is NaN (written as ``null`` in
JSON, shown as the value alone), never 0, which would read as "no noise" and make a one-seed
difference look certain.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["mean_std_n"]


def mean_std_n(values: Iterable[float]) -> tuple[float, float, int]:
    """``(mean, std, n)`` of finite per-seed values: std with ``ddof=1``, NaN for one value; NaN mean for none."""
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, 0
    mean = math.fsum(vals) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else math.nan
    return mean, std, n
