"""BD-rate (Bjontegaard delta rate) through the ``bjontegaard`` package."""
from __future__ import annotations

import warnings

import numpy as np

METHOD = "pchip"  # piecewise cubic (JVET common test conditions); the package also has "akima" and "cubic"


def bd_rate(anchor_bpp, anchor_psnr, test_bpp, test_psnr, method: str = METHOD) -> float | None:
    """Average rate difference of test vs anchor at equal quality, in percent (negative: test needs fewer bits),
    over the quality range both curves cover; None when they do not overlap or have fewer than 2 points."""
    import bjontegaard
    a = _curve(anchor_bpp, anchor_psnr)
    t = _curve(test_bpp, test_psnr)
    if a is None or t is None or min(a[1].max(), t[1].max()) <= max(a[1].min(), t[1].min()):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # partial overlap is reported by the caller's plot, not as a warning
        v = bjontegaard.bd_rate(a[0], a[1], t[0], t[1], method=method, require_matching_points=False,
                                min_overlap=0.0)
    return float(v) if np.isfinite(v) else None


def _curve(bpp, quality):
    """Points sorted by quality, strictly increasing (interpolation needs it); None when < 2 remain."""
    pts = sorted((float(q), float(b)) for b, q in zip(bpp, quality) if b is not None and q is not None)
    keep = [p for i, p in enumerate(pts) if i == 0 or p[0] > pts[i - 1][0]]
    if len(keep) < 2:
        return None
    q, b = np.array(keep).T
    return b, q
