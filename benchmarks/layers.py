"""Per-layer forward and gradient times, JAX (jitted) vs the same layer in PyTorch when torch is installed.

    python benchmarks/layers.py [--repeat 5] [--json OUT.json] [--threads 2]

Guards against regressions onto XLA:CPU's slow paths (docs/XLA_CPU.md): the transposed convolution is also
timed in its textbook form (lax.conv_transpose) to show what the phase form avoids, and the 1x1 convolution as
XLA's convolution op beside the matrix product ``Conv`` uses for it. JAX runs with jaxlic's XLA:CPU options
(``jaxlic.xla_cpu``: convolutions on Eigen); the "XLA default" columns time the same jitted layer with XLA's own
options (jax 0.10: convolutions on YNNPACK).
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from common import write
from jaxlic import xla_cpu
from jaxlic.layers import GDN, Conv, ConvTranspose, ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride, SubpelConv


class TextbookConvTranspose:
    """flax.linen.ConvTranspose-style: lax.conv_transpose (the slow kernel gradient on XLA:CPU)."""

    def __init__(self, features):
        self.features = features

    def init(self, key, x):
        return {"params": {"kernel": jax.random.normal(key, (5, 5, x.shape[-1], self.features)) * 0.05}}

    def apply(self, v, x):
        y = jax.lax.conv_transpose(x, v["params"]["kernel"], (2, 2), ((2, 3), (2, 3)),
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y


class ConvolutionOp1x1:
    """A 1x1 convolution through lax.conv_general_dilated (what ``Conv`` replaces by a matrix product)."""

    def __init__(self, features):
        self.features = features

    def init(self, key, x):
        return {"params": {"kernel": jax.random.normal(key, (1, 1, x.shape[-1], self.features)) * 0.05}}

    def apply(self, v, x):
        return jax.lax.conv_general_dilated(x, v["params"]["kernel"], (1, 1), ((0, 0), (0, 0)),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _time(fn, *args, repeat):
    jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def cases():
    B = 4
    return [
        ("conv5x5 s2 128->128", lambda: Conv(128, 5, 2), (B, 64, 64, 128), "conv", dict(k=5, s=2, p=2)),
        ("conv3x3 128", lambda: Conv(128, 3, 1), (B, 64, 64, 128), "conv", dict(k=3, s=1, p=1)),
        ("conv1x1 128 (matrix product)", lambda: Conv(128, 1, 1), (B, 64, 64, 128), "conv", dict(k=1, s=1, p=0)),
        ("conv1x1 128 (lax.conv_general_dilated)", lambda: ConvolutionOp1x1(128), (B, 64, 64, 128), None, {}),
        ("convT5x5 s2 128 (phase form)", lambda: ConvTranspose(128), (B, 32, 32, 128), "deconv", {}),
        ("convT5x5 s2 128 (lax.conv_transpose)", lambda: TextbookConvTranspose(128), (B, 32, 32, 128), None, {}),
        ("subpel3x3 r2 128", lambda: SubpelConv(128), (B, 32, 32, 128), "subpel", {}),
        ("GDN 128", lambda: GDN(), (B, 64, 64, 128), "gdn", {}),
        ("IGDN 128", lambda: GDN(inverse=True), (B, 64, 64, 128), "igdn", {}),
        ("ResidualBlock 128", lambda: ResidualBlock(128), (B, 64, 64, 128), None, {}),
        ("ResidualBlockWithStride 128", lambda: ResidualBlockWithStride(128), (B, 64, 64, 128), None, {}),
        ("ResidualBlockUpsample 128", lambda: ResidualBlockUpsample(128), (B, 32, 32, 128), None, {}),
    ]


def torch_case(kind, shape, opts):
    import torch
    from torch import nn
    b, h, w, c = shape
    if kind == "conv":
        m = nn.Conv2d(c, c, opts["k"], opts["s"], opts["p"])
    elif kind == "deconv":
        m = nn.ConvTranspose2d(c, c, 5, 2, 2, 1)
    elif kind == "subpel":
        m = nn.Sequential(nn.Conv2d(c, 4 * c, 3, 1, 1), nn.PixelShuffle(2))
    elif kind in ("gdn", "igdn"):
        class G(nn.Module):
            def __init__(self):
                super().__init__()
                self.beta = nn.Parameter(torch.ones(c))
                self.gamma = nn.Parameter(0.1 * torch.eye(c))

            def forward(self, x):
                n = nn.functional.conv2d(x * x, self.gamma[:, :, None, None], self.beta)
                return x * (torch.sqrt(n) if kind == "igdn" else torch.rsqrt(n))
        m = G()
    else:
        return None
    x = torch.randn(b, c, h, w, requires_grad=True)

    def fwd():
        with torch.no_grad():
            m(x)

    def grad():
        m.zero_grad()
        x.grad = None
        m(x).square().sum().backward()
    return fwd, grad


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="default: benchmarks/results/layers.json")
    p.add_argument("--skip-textbook", action="store_true", help="skip the slow lax.conv_transpose reference")
    args = p.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    rows = []
    for name, make, shape, tkind, opts in cases():
        if args.skip_textbook and "lax.conv_transpose" in name:
            continue
        layer = make()
        x = jax.random.normal(jax.random.key(0), shape)
        v = layer.init(jax.random.key(1), x)
        loss = jax.grad(lambda v, x: jnp.sum(jnp.square(layer.apply(v, x))), argnums=(0, 1))
        row = {"layer": name, "input": list(shape),
               "jax_forward_ms": _time(xla_cpu.jit(layer.apply), v, x, repeat=args.repeat),
               "jax_grad_ms": _time(xla_cpu.jit(loss), v, x, repeat=args.repeat)}
        if xla_cpu.compiler_options():
            row.update(xla_default_forward_ms=_time(jax.jit(layer.apply), v, x, repeat=args.repeat),
                       xla_default_grad_ms=_time(jax.jit(loss), v, x, repeat=args.repeat))
        if torch is not None and tkind:
            tf, tg = torch_case(tkind, shape, opts)
            row["torch_forward_ms"] = _time(lambda: tf(), repeat=args.repeat)
            row["torch_grad_ms"] = _time(lambda: tg(), repeat=args.repeat)
        rows.append(row)
        print(_fmt(row), flush=True)
    write({"torch": torch.__version__ if torch else None, "torch_threads": args.threads, "rows": rows}, args.json,
          "layers.json")


def _fmt(r):
    t = lambda k: f"{r[k]:9.1f}" if k in r else f"{'-':>9s}"
    return (f"{r['layer']:40s} fwd {t('jax_forward_ms')} ms (torch {t('torch_forward_ms')})   "
            f"grad {t('jax_grad_ms')} ms (torch {t('torch_grad_ms')})")


if __name__ == "__main__":
    main()
