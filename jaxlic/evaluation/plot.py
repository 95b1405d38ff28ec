"""Rate-distortion plots (PNG): PSNR-RGB and MS-SSIM (dB) against bpp."""
from __future__ import annotations

import math


def _db(ms):
    return None if ms is None or ms >= 1 else -10 * math.log10(1 - ms)


def rd_plot(path: str, curves: list[dict], title: str, dashed: tuple[str, ...] = ()) -> None:
    """``curves``: CompressAI-style results dicts ({"name", "results": {"bpp", "psnr-rgb", "ms-ssim-rgb"}});
    names in ``dashed`` (published anchors) are drawn dashed."""
    import matplotlib
    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt
    has_ms = any(any(v is not None for v in c["results"].get("ms-ssim-rgb", [])) for c in curves)
    fig, axes = plt.subplots(1, 2 if has_ms else 1, figsize=(13 if has_ms else 7, 5), squeeze=False)
    for c in curves:
        r = c["results"]
        style = dict(ls="--", marker="s", ms=3, alpha=0.7) if c["name"] in dashed else dict(marker="o", ms=4)
        pts = sorted((b, p) for b, p in zip(r["bpp"], r["psnr-rgb"]) if b is not None and p is not None)
        if pts:
            axes[0][0].plot(*zip(*pts), label=c["name"], **style)
        if has_ms:
            pts = sorted((b, _db(m)) for b, m in zip(r["bpp"], r.get("ms-ssim-rgb", [None] * len(r["bpp"])))
                         if b is not None and _db(m) is not None)
            if pts:
                axes[0][1].plot(*zip(*pts), label=c["name"], **style)
    # zoom on the first curve (the model's); anchor points far beyond it would squeeze it into a corner
    top = max((b for b in curves[0]["results"]["bpp"] if b is not None), default=1.0)
    right = max(1.0, 2.0 * top)
    for ax, ylabel in zip(axes[0], ["PSNR-RGB (dB)", "MS-SSIM (dB), -10 log10(1 - MS-SSIM)"]):
        ys = [y for line in ax.get_lines() for x, y in zip(*line.get_data()) if x <= right]
        ax.set_xlim(0, right)
        if ys:
            ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
