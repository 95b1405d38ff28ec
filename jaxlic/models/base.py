"""What every hyperprior model shares: analysis, latent shapes, coding tables, aux loss and the z step.

Subclasses define ``g_a``, ``g_s``, ``h_a``, ``h_s``, ``entropy_bottleneck`` (and ``gaussian_conditional``) in
``setup`` and ``plan(shapes)``; ``M`` is the latent width, ``z_channels`` the hyper-latent's.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlic import plan as P
from jaxlic.entropy.factorized import factorized_table
from jaxlic.entropy.gaussian import gaussian_table


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
