"""Mean-scale hyperprior (Minnen, Balle, Toderici 2018) in CompressAI's ``mbt2018-mean`` layout."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlic.codec import Step
from jaxlic.entropy import EntropyBottleneck, GaussianConditional
from jaxlic.entropy.factorized import factorized_table
from jaxlic.entropy.gaussian import gaussian_table
from jaxlic.layers import GDN, Conv, ConvTranspose


def _leaky(x):
    return nn.leaky_relu(x, 0.01)  # torch.nn.LeakyReLU() default slope


class MeanScaleHyperprior(nn.Module):
    """``g_a``/``g_s``/``h_a``/``h_s`` are ``nn.Sequential``s whose ``layers_{k}`` is PyTorch index ``k``."""

    N: int = 128
    M: int = 192
    precision: Any = None

    downsampling = 64  # g_a halves 4 times, h_a twice more: inputs are padded to this multiple

    def setup(self):
        N, M, p = self.N, self.M, self.precision
        self.g_a = nn.Sequential([
            Conv(N, 5, 2, precision=p), GDN(precision=p), Conv(N, 5, 2, precision=p), GDN(precision=p),
            Conv(N, 5, 2, precision=p), GDN(precision=p), Conv(M, 5, 2, precision=p)])
        self.g_s = nn.Sequential([
            ConvTranspose(N, precision=p), GDN(inverse=True, precision=p),
            ConvTranspose(N, precision=p), GDN(inverse=True, precision=p),
            ConvTranspose(N, precision=p), GDN(inverse=True, precision=p), ConvTranspose(3, precision=p)])
        self.h_a = nn.Sequential([
            Conv(N, 3, 1, precision=p), _leaky, Conv(N, 5, 2, precision=p), _leaky, Conv(N, 5, 2, precision=p)])
        self.h_s = nn.Sequential([
            ConvTranspose(M, precision=p), _leaky, ConvTranspose(M * 3 // 2, precision=p), _leaky,
            Conv(M * 2, 3, 1, precision=p)])
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional()

    def __call__(self, x, training: bool = False, rng=None):
        """Training / evaluation forward. ``training`` adds uniform noise (needs ``rng``), else rounds."""
        mode = "noise" if training else "dequantize"
        rz, ry = jax.random.split(rng) if training else (None, None)
        y = self.g_a(x)
        z = self.h_a(y)
        z_hat, z_lik = self.entropy_bottleneck(z, mode, rz)
        scales, means = self.hyper_synthesis(z_hat)
        y_hat, y_lik = self.gaussian_conditional(y, scales, means, mode, ry)
        x_hat = self.g_s(y_hat)
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}, "y": y, "z": z, "y_hat": y_hat,
                "z_hat": z_hat, "scales": scales, "means": means}

    def hyper_synthesis(self, z_hat):
        scales, means = jnp.split(self.h_s(z_hat), 2, axis=-1)  # scales first, as CompressAI's chunk(2, 1)
        return scales, means

    # --- codec plan (docs/DESIGN.md, decision 3): the same step functions run in compress and decompress ---
    def analysis(self, x):
        y = self.g_a(x)
        return {"y": y, "z": self.h_a(y)}

    def predict_z(self, shape):
        medians = self.entropy_bottleneck.medians()
        means = jnp.broadcast_to(medians, shape)
        indexes = jnp.broadcast_to(jnp.arange(shape[-1], dtype=jnp.int32), shape)
        return means, indexes

    def predict_y(self, z_hat):
        scales, means = self.hyper_synthesis(z_hat)
        return means, self.gaussian_conditional.build_indexes(scales)

    def synthesis(self, y_hat):
        return self.g_s(y_hat)

    # --- plumbing used by jaxlic.codec ---
    def latent_shapes(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the coded latents for a padded input of (height, width)."""
        return {"y": (batch, height // 16, width // 16, self.M), "z": (batch, height // 64, width // 64, self.N)}

    def coding_steps(self) -> list[Step]:
        return [Step("z", "entropy_bottleneck",
                     lambda m, v, state, shapes: (*m.apply(v, shapes["z"], method="predict_z"), state)),
                Step("y", "gaussian_conditional",
                     lambda m, v, state, shapes: (*m.apply(v, state["z"], method="predict_y"), state))]

    @staticmethod
    def build_tables(variables) -> dict:
        """The freeze step: integer CDF tables from trained (or converted) variables."""
        return {"entropy_bottleneck": factorized_table(variables["params"]["entropy_bottleneck"]),
                "gaussian_conditional": gaussian_table(variables["constants"]["gaussian_conditional"]["scale_table"])}

    def decode_image(self, variables, decoded):
        return self.apply(variables, decoded["y"], method="synthesis")
