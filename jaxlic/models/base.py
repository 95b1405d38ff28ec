"""What every hyperprior model shares (``jaxlic.models.interface``): analysis, latent shapes, coding tables, aux
loss; and ``LatentCodecModel``, a model that is its transforms plus a latent-codec tree.

Subclasses define ``g_a``, ``g_s``, ``h_a``, ``h_s``, ``entropy_bottleneck`` (and ``gaussian_conditional``) in
``setup`` and ``plan(shapes)``; ``M`` is the latent width, ``z_channels`` the hyper-latent's.
"""
from __future__ import annotations

import flax.linen as nn

from jaxlic import plan as P
from jaxlic.entropy.factorized import factorized_table
from jaxlic.entropy.gaussian import gaussian_table


class HyperpriorModel(nn.Module):
    downsampling = 64       # g_a halves 4 times, h_a twice more: inputs are padded to this multiple
    rated = False           # a variable-rate model codes at a rate given to the codec (``jaxlic.models.vbr``)

    @property
    def z_channels(self) -> int:
        return self.N

    def analysis(self, x):
        y = self.g_a(x)
        return {"y": y, "z": self.h_a(y)}

    def synthesis(self, y_hat):
        return self.g_s(y_hat)

    def aux_loss(self):
        return self.entropy_bottleneck.aux_loss()

    def latent_shapes(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the coded latents for a padded input of (height, width)."""
        return {"y": (batch, height // 16, width // 16, self.M),
                "z": (batch, height // 64, width // 64, self.z_channels)}

    @staticmethod
    def build_tables(variables) -> dict:
        """The freeze step: integer CDF tables from trained (or converted) variables."""
        out = {"entropy_bottleneck": factorized_table(variables["params"]["entropy_bottleneck"])}
        gc = variables.get("constants", {}).get("gaussian_conditional")
        if gc is not None:
            out["gaussian_conditional"] = gaussian_table(gc["scale_table"])
        return out


class LatentCodecModel(HyperpriorModel):
    """A model that is its transforms plus one latent-codec tree (``jaxlic.latent_codecs``): subclasses define
    ``g_a``, ``g_s``, the entropy models and ``latent_codec`` in ``setup``; the training forward, the analysis
    and the codec plan are the tree's."""

    def __call__(self, x, training: bool = False, rng=None):
        """The training / evaluation forward: ``training`` adds noise (needs ``rng``), else rounds."""
        y = self.g_a(x)
        out = self.latent_codec(y, training, rng)
        return {"x_hat": self.g_s(out["y_hat"]), **out, "y": y}

    def analysis(self, x):
        y = self.g_a(x)
        return {"y": y, **self.latent_codec.side_latents(y)}

    def plan(self, shapes) -> P.Plan:
        # the tree exists once setup has run: bound without variables, which the plan's steps receive later
        return self.bind({}).latent_codec.plan(dict(shapes), lambda root: root.latent_codec)

    def own_param(self, name: str, init, *args):
        """``self.param`` for a parameter the model holds itself (not in a submodule), from ``setup``: None when
        the model is bound without variables, as ``plan`` binds it (the plan's steps get them later)."""
        if not self.is_initializing() and not self.variables.get("params"):
            return None
        return self.param(name, init, *args)
