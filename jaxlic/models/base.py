"""What every hyperprior model shares: analysis, latent shapes, coding tables, aux loss and the z step.

Subclasses define ``g_a``, ``g_s``, ``h_a``, ``h_s``, ``entropy_bottleneck`` (and ``gaussian_conditional``) in
``setup`` and ``plan(shapes)``; ``M`` is the latent width, ``z_channels`` the hyper-latent's.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlic import plan as P
from jaxlic.entropy.factorized import factorized_table
from jaxlic.entropy.gaussian import gaussian_table
from jaxlic.entropy.quantization import quantize


class HyperpriorModel(nn.Module):
    downsampling = 64       # g_a halves 4 times, h_a twice more: inputs are padded to this multiple
    hyper_input_abs = False  # bmshj2018's h_a sees |y|

    @property
    def z_channels(self) -> int:
        return self.N

    def analysis(self, x):
        y = self.g_a(x)
        return {"y": y, "z": self.h_a(jnp.abs(y) if self.hyper_input_abs else y)}

    def synthesis(self, y_hat):
        return self.g_s(y_hat)

    def aux_loss(self):
        return self.entropy_bottleneck.aux_loss()

    def z_medians(self):
        return self.entropy_bottleneck.medians()

    def latent_shapes(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the coded latents for a padded input of (height, width)."""
        return {"y": (batch, height // 16, width // 16, self.M),
                "z": (batch, height // 64, width // 64, self.z_channels)}

    def z_step(self, shapes, update, layout: str = "nhwc") -> P.StepGroup:
        """z under the factorized prior, first in every plan; ``update(m, v, state, z_hat) -> state``."""
        return P.factorized("z", "entropy_bottleneck", "z", shapes["z"],
                            lambda m, v: m.apply(v, method="z_medians"), update, layout)

    @staticmethod
    def build_tables(variables) -> dict:
        """The freeze step: integer CDF tables from trained (or converted) variables."""
        out = {"entropy_bottleneck": factorized_table(variables["params"]["entropy_bottleneck"])}
        gc = variables.get("constants", {}).get("gaussian_conditional")
        if gc is not None:
            out["gaussian_conditional"] = gaussian_table(gc["scale_table"])
        return out


class CheckerboardGroups(HyperpriorModel):
    """y coded per channel group in two checkerboard passes (anchors from the hyperprior and earlier groups, then
    the rest with a checkerboard-masked context of the anchors): CompressAI's two-pass forward and the codec plan
    (z, then per group its anchors and the rest), shared by ``cheng2020-anchor-checkerboard`` (one group) and
    ELIC. Subclasses give ``channel_bounds`` ((first, end) per group) and ``group_params(params, done, k,
    anchors_hat) -> (scales, means)`` of group k everywhere, ``done`` the decoded earlier groups and
    ``anchors_hat`` the group's decoded anchors (None in the anchor pass)."""

    def __call__(self, x, training: bool = False, rng=None):
        """Anchors rounded around their means (STE), the context from them, the rest likewise; noise for the
        rates when training."""
        mode = "noise" if training else "dequantize"
        rz, ry = jax.random.split(rng) if training else (None, None)
        latents = self.analysis(x)
        y = latents["y"]
        z_hat, z_lik = self.entropy_bottleneck(latents["z"], mode, rz)
        z_hat = quantize(latents["z"], "ste", self.entropy_bottleneck.medians()) if training else z_hat
        params = self.h_s(z_hat)
        anchor = jnp.asarray(P.checkerboard_mask(*y.shape[1:3], True, 0))[None, :, :, None]
        done, scales, means = [], [], []
        for k, (c0, c1) in enumerate(self.channel_bounds):
            y_k = y[..., c0:c1]
            s_a, m_a = self.group_params(params, done, k, None)
            y_a = anchor * quantize(y_k, "ste", m_a)
            s_n, m_n = self.group_params(params, done, k, y_a)
            done.append(y_a + (1 - anchor) * quantize(y_k, "ste", m_n))
            scales.append(jnp.where(anchor, s_a, s_n))
            means.append(jnp.where(anchor, m_a, m_n))
        scales, means, y_hat = (jnp.concatenate(t, -1) for t in (scales, means, done))
        _, y_lik = self.gaussian_conditional(y, scales, means, mode, ry)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}, "z_hat": z_hat,
                "y_hat": y_hat, "scales": scales, "means": means, **latents}

    def start_y(self, z_hat):
        params = self.h_s(z_hat)
        return {"params": params, "y": jnp.zeros(params.shape[:3] + (self.M,), params.dtype)}

    def pass_params(self, state, k: int, anchors: bool):
        bounds = self.channel_bounds
        done = [state["y"][..., a:b] for a, b in bounds[:k]]
        c0, c1 = bounds[k]
        scales, means = self.group_params(state["params"], done, k, None if anchors else state["y"][..., c0:c1])
        return means, scales

    def plan(self, shapes) -> P.Plan:
        b, h, w, _ = shapes["y"]
        bounds = self.channel_bounds
        groups = [self.z_step(shapes, lambda m, v, state, z_hat: m.apply(v, z_hat, method="start_y"))]
        for k, (c0, c1) in enumerate(bounds):
            def update(m, v, state, values, anchors, c0=c0, c1=c1):
                return {**state, "y": state["y"].at[..., c0:c1].add(values)}
            groups += P.checkerboard(
                "y" if len(bounds) == 1 else f"y{k}", "gaussian_conditional", "y", (b, h, w, c1 - c0),
                lambda m, v, state, anchors, k=k: (*m.apply(v, state, k, anchors, method="pass_params"), state),
                update, channels=(c0, shapes["y"][-1]))
        return P.Plan(tuple(groups), shapes)
