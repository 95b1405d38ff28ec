"""Look inside an entropy model: likelihoods, the bits of every latent channel and position, and for MLIC++ the
cost of each slice's anchors and non-anchors (what its contexts buy).

    python examples/inspect_entropy_model.py photo.png [--checkpoint SPEC] [--out bits.png]

SPEC: anything ``jaxlic.load`` takes (default: the shipped default model; an MLIC++ file or official .pth adds
the per-slice table).
"""
import argparse

import numpy as np

import jaxlic

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("image")
p.add_argument("--checkpoint", default=None)
p.add_argument("--out", default="bits.png", help="the image beside its bit-allocation map")
args = p.parse_args()

codec = jaxlic.load(args.checkpoint)
image = jaxlic.read_image(args.image)
h, w = image.shape[:2]

# 1. the differentiable model: likelihoods per latent, the rate they promise
fwd = codec.forward(image)
for name, lik in fwd.likelihoods.items():
    print(f"{name}: latent {lik.shape[1:]}, {-np.log2(lik.astype(np.float64)).sum() / (h * w):.4f} bpp estimated")

# 2. the real file: code length of every latent element from the coding tables
enc = codec.encode(image)
print(f"file: {enc.bpp:.4f} bpp ({fwd.bpp:.4f} estimated); streams {enc.stream_bytes}")
for name, bits in enc.bits.items():
    per_channel = enc.channel_bits(name)
    order = np.argsort(-per_channel)
    top = order[:max(1, len(order) // 10)]
    print(f"{name}: {bits.sum() / (h * w):.4f} bpp; the top {len(top)} of {len(order)} channels carry "
          f"{per_channel[top].sum() / per_channel.sum():.0%} of its bits (channels {top[:8].tolist()}...); "
          f"{(per_channel < 0.01 * per_channel.max()).sum()} channels carry almost nothing")

# 3. MLIC++: slices coded one after another, each as checkerboard anchors then non-anchors
if codec.name == "mlicpp":
    n, s = codec.config["slice_num"], codec.config["M"] // codec.config["slice_num"]
    y = enc.bits["y"]
    rows, cols = np.indices(y.shape[:2])
    anchor = (rows + cols) % 2 == 1                      # odd columns of even rows, even columns of odd rows
    print(f"{'slice':>5s}  {'anchors bpp':>11s}  {'non-anchors bpp':>15s}  contexts (anchors; non-anchors add local + global intra)")
    for i in range(n):
        ctx = "hyperprior" if i == 0 else f"hyperprior, channel and global inter-slice (slices 0-{i - 1})"
        b = y[..., i * s:(i + 1) * s].sum(-1)
        print(f"{i:5d}  {b[anchor].sum() / (h * w):11.4f}  {b[~anchor].sum() / (h * w):15.4f}  {ctx}")

# 4. where the bits go, as a picture
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(1, 2, figsize=(10, 10 * h / w / 2 + 0.6), constrained_layout=True)
ax[0].imshow(image)
ax[0].set_title(f"{args.image.split('/')[-1]}")
m = ax[1].imshow(enc.bit_map("y"), cmap="inferno")
ax[1].set_title(f"y bits per pixel ({codec.name}, {enc.bpp:.3f} bpp file)")
for a in ax:
    a.axis("off")
fig.colorbar(m, ax=ax[1], fraction=0.046, pad=0.02)
fig.savefig(args.out, dpi=80)
print(f"wrote {args.out}")
