"""What several oracles share: the nearest-rank percentile (rule 0.12) and the distinct spans
(rule 5.5). Released as an empty table: none of it is public."""
from __future__ import annotations

import math


def _percentile(values, n: int) -> float:
    """Rule 0.12: the nearest-rank pN of n >= 1 values."""
    ordered = sorted(values)
    return ordered[math.ceil(n / 100 * len(ordered)) - 1]
