"""Where the bits go, as pictures (``eval.py --visuals``): per image, the bit-allocation map of the model's real
file, the reconstruction beside the original and beside JPEG and WebP at the nearest rate, zoomed crops of the
most detailed region; and one static HTML page that shows them all with the RD plot."""
from __future__ import annotations

import html
import os

import numpy as np

from jaxlic.evaluation.anchors import _LABELS, pillow_roundtrip
from jaxlic.evaluation.metrics import psnr


def at_rate(img: np.ndarray, codec: str, target_bytes: int) -> tuple[int, int, np.ndarray]:
    """(quality, bytes, decoded) of Pillow's ``codec`` with the file size nearest ``target_bytes``: a bisection
    over qualities 1-100 (sizes grow with quality, nearly monotonically), then the better of the two neighbours."""
    cache = {}

    def size(q):
        if q not in cache:
            cache[q] = pillow_roundtrip(img, codec, q)
        return cache[q][0]

    lo, hi = 1, 100
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size(mid) < target_bytes:
            lo = mid
        else:
            hi = mid
    q = min((lo, hi), key=lambda k: abs(size(k) - target_bytes))
    return q, cache[q][0], cache[q][1]


def detailed_region(img: np.ndarray, size: int) -> tuple[int, int, int]:
    """(top, left, side) of the square window with the most gradient energy: where codecs differ most."""
    g = img.astype(np.float64).mean(-1)
    e = np.zeros_like(g)
    e[:, 1:] += np.diff(g, axis=1) ** 2
    e[1:, :] += np.diff(g, axis=0) ** 2
    side = min(size, *g.shape)
    c = np.pad(e.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    win = c[side:, side:] - c[:-side, side:] - c[side:, :-side] + c[:-side, :-side]
    top, left = np.unravel_index(np.argmax(win), win.shape)
    return int(top), int(left), side


def image_figure(path: str, name: str, img: np.ndarray, panels: list[tuple[str, np.ndarray]], bit_map: np.ndarray,
                 crop: int = 128) -> None:
    """Row 1: the original (the zoomed region framed), the bit-allocation map, each reconstruction; row 2: the
    zoomed region of each."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    top, left, side = detailed_region(img, crop)
    h, w = img.shape[:2]
    cols = 2 + len(panels)
    fig, ax = plt.subplots(2, cols, figsize=(3.2 * cols, 3.2 * h / w + 3.6), constrained_layout=True,
                           gridspec_kw={"height_ratios": [h / w, 1]})
    ax[0, 0].imshow(img)
    ax[0, 0].add_patch(Rectangle((left, top), side, side, fill=False, ec="cyan", lw=1.5))
    ax[0, 0].set_title(f"{name}", fontsize=9)
    m = ax[0, 1].imshow(bit_map, cmap="inferno")
    ax[0, 1].set_title(f"bits per pixel (y), {bit_map.sum() / bit_map.size:.3f} mean", fontsize=9)
    fig.colorbar(m, ax=ax[0, 1], fraction=0.046, pad=0.02)
    zoom = lambda a: a[top:top + side, left:left + side]
    ax[1, 0].imshow(zoom(img), interpolation="nearest")
    ax[1, 0].set_title("original (zoom)", fontsize=9)
    ax[1, 1].imshow(zoom(bit_map), cmap="inferno", interpolation="nearest")
    ax[1, 1].set_title("bits (zoom)", fontsize=9)
    for k, (label, rec) in enumerate(panels):
        ax[0, 2 + k].imshow(rec)
        ax[0, 2 + k].set_title(label, fontsize=9)
        ax[1, 2 + k].imshow(zoom(rec), interpolation="nearest")
        ax[1, 2 + k].set_title(label.split(",")[0] + " (zoom)", fontsize=9)
    for a in ax.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_visuals(codec, images: list[tuple[str, np.ndarray]], out: str, rd_png: str | None, label: str,
                  anchors=("jpeg", "webp"), progress: bool = True) -> str:
    """Per image a figure (``out/visuals/NAME.png``) and one page ``out/visuals/index.html`` (no server: open
    the file); returns the page's path."""
    from tqdm import tqdm
    d = os.path.join(out, "visuals")
    os.makedirs(d, exist_ok=True)
    rows = []
    for name, img in tqdm(images, desc="visuals", unit="img", disable=not progress):
        enc = codec.encode(img)
        rec = codec.decompress(enc.data)
        npx = img.shape[0] * img.shape[1]
        panels = [(f"{label}, {enc.bpp:.3f} bpp, {float(psnr(img, rec)):.2f} dB", rec)]
        row = {"image": name, "figure": f"{os.path.splitext(name)[0]}.png",
               "model": (enc.bpp, float(psnr(img, rec)))}
        for a in anchors:
            q, n, arec = at_rate(img, a, len(enc.data))
            panels.append((f"{_LABELS[a]} q{q}, {8 * n / npx:.3f} bpp, {float(psnr(img, arec)):.2f} dB", arec))
            row[a] = (8 * n / npx, float(psnr(img, arec)), q)
        image_figure(os.path.join(d, row["figure"]), name, img, panels, enc.bit_map("y"))
        rows.append(row)
    if rd_png and os.path.exists(rd_png):
        import shutil
        shutil.copyfile(rd_png, os.path.join(d, "rd.png"))
    page = os.path.join(d, "index.html")
    with open(page, "w") as f:
        f.write(_page(label, rows, anchors, rd_png is not None))
    return page


def _page(label: str, rows: list[dict], anchors, rd: bool) -> str:
    e = html.escape
    head = "".join(f"<th>{_LABELS[a]} bpp</th><th>{_LABELS[a]} PSNR</th>" for a in anchors)
    table = []
    for r in rows:
        cells = "".join(f"<td>{r[a][0]:.3f}</td><td>{r[a][1]:.2f}</td>" for a in anchors)
        table.append(f"<tr><td><a href='#{e(r['image'])}'>{e(r['image'])}</a></td><td>{r['model'][0]:.3f}</td>"
                     f"<td>{r['model'][1]:.2f}</td>{cells}</tr>")
    figures = "\n".join(f"<h2 id='{e(r['image'])}'>{e(r['image'])}</h2><img src='{e(r['figure'])}' "
                        f"alt='{e(r['image'])}'>" for r in rows)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>jaxlic: {e(label)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1800px}} img{{max-width:100%}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head>
<body><h1>{e(label)}: where the bits go</h1>
<p>Each figure: the original (the zoomed region framed), the bits per pixel of the model's real file (the code
length of every latent element from the coding tables, summed over channels, spread over the pixels it covers),
the model's reconstruction, and JPEG / WebP (Pillow) at the quality whose file size is nearest the model's.
Second row: the most detailed region, zoomed.</p>
{"<img src='rd.png' alt='RD plot'>" if rd else ""}
<table><tr><th>image</th><th>{e(label)} bpp</th><th>PSNR</th>{head}</tr>
{chr(10).join(table)}</table>
{figures}
</body></html>
"""
