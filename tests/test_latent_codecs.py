"""Each latent-codec part's coding steps against its own training forward (``jaxlic.latent_codecs``): one test per
part, not per model. The steps run here as the codec runs them (predict, round around the means, update), on
random latents; what the steps predict at each element must be what the forward computes there, given the same
decoded latent."""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.lax import Precision

from helpers import tiny_config
from jaxlic import latent_codecs as lc
from jaxlic.entropy import EntropyBottleneck, GaussianConditional
from jaxlic.layers.conv import Conv, SubpelConv
from jaxlic.models.base import LatentCodecModel
from jaxlic.plan import check_coverage, gather, scatter
from jaxlic.registry import get_spec

# part -> a registered model whose tree uses it, at a tiny size
PARTS = {
    "EntropyBottleneckLatent": ("bmshj2018-factorized", {"N": 8, "M": 12}),
    "GaussianLatent-scales": ("bmshj2018-hyperprior", {"N": 8, "M": 12}),
    "GaussianLatent-mean-scale": ("mbt2018-mean", {"N": 8, "M": 12}),
    "MaskedContextLatent": ("mbt2018", {"N": 8, "M": 12}),
    "CheckerboardLatent": ("cheng2020-anchor-checkerboard", {"N": 8}),
    "ChannelGroupsLatent": ("elic2022-official", {"N": 8, "M": 16, "groups": (2, 2, 4, 8)}),
    "ChannelGroupsLatent-chandelier": ("elic2022-chandelier", {"N": 8, "M": 16, "groups": (2, 2, 4, 8)}),
    "ChannelSlicesLatent-checkerboard": ("mlicpp", {"N": 8, "M": 64, "slice_num": 2}),
    "ChannelSlicesLatent-whole": ("a channel-wise model written here", {}),
    "ChunkScanLatent": ("stf-zigzag", tiny_config("stf-zigzag")),
}


class _SliceNets(nn.Module):
    """Minnen & Singh's channel-conditional networks at their smallest: per slice one 1x1 conv over (side,
    decoded slices) gives (scales, means), and a latent residual prediction refines the decoded slice."""

    params_nets: Sequence[nn.Module]
    lrp_nets: Sequence[nn.Module]

    def params(self, k, side, done):
        x = self.params_nets[k](jnp.concatenate([side, *done], -1))
        scales, means = jnp.split(x, 2, -1)
        return jnp.exp(scales), means, x

    def refine(self, k, side, done, ctx, y_hat_k):
        return y_hat_k + 0.5 * jnp.tanh(self.lrp_nets[k](jnp.concatenate([ctx, y_hat_k], -1)))


class _ChannelWise(LatentCodecModel):
    """A page-long model: a hyperprior and uneven channel slices (4 + 8), each coded whole."""

    N: int = 8
    M: int = 12
    precision: Any = None

    def setup(self):
        sizes, p = (4, 8), self.precision
        self.h_a = nn.Sequential([Conv(self.N, 3, 2, precision=p), Conv(self.N, 3, 2, precision=p)])
        self.h_s = nn.Sequential([SubpelConv(self.N, 2, precision=p), SubpelConv(self.M, 2, precision=p)])
        self.entropy_bottleneck = EntropyBottleneck(self.N)
        self.gaussian_conditional = GaussianConditional()
        self.params_nets = [Conv(2 * c, 1, precision=p) for c in sizes]
        self.lrp_nets = [Conv(c, 1, precision=p) for c in sizes]
        self.latent_codec = lc.Hyperprior(
            self.h_a, self.h_s, lc.EntropyBottleneckLatent(self.entropy_bottleneck),
            lc.ChannelSlicesLatent(self.gaussian_conditional, _SliceNets(self.params_nets, self.lrp_nets), sizes))


def _build(part):
    name, config = PARTS[part]
    if name == "a channel-wise model written here":
        return _ChannelWise(precision=Precision.HIGHEST)
    return get_spec(name).build(**config, precision=Precision.HIGHEST)


def run_plan(model, variables, latents, init=None):
    """The plan's steps without a coder: per latent, the decoded values and each element's means and scales
    (or table indexes) as the steps predicted them. ``init``: the state before the first step (a rate)."""
    plan = model.plan({k: v.shape for k, v in latents.items()})
    check_coverage(plan)
    out = {k: {key: np.zeros(v.shape, np.float32) for key in ("means", "params", "hat")}
           for k, v in latents.items()}
    state = dict(init or {})
    for g in plan.groups:
        # compiled where a group repeats (the wavefront); one-step groups run op by op (compiling each costs more)
        jit = jax.jit if g.count > 1 else (lambda f: f)
        predict = jit(lambda state, t, g=g: g.predict(model, variables, state, t))
        update = jit(lambda state, t, values, g=g: g.update(model, variables, state, t, values))
        for t in range(g.count):
            t = jnp.int32(t)
            means, params, state = predict(state, t)
            pos = g.elements(t)
            values = jnp.round(gather(latents[g.latent], pos) - means.reshape(-1)) + means.reshape(-1)
            for key, a in (("means", means), ("params", params), ("hat", values)):
                out[g.latent][key] = np.asarray(scatter(jnp.asarray(out[g.latent][key]), pos,
                                                        a.reshape(-1).astype(jnp.float32)))
            state = update(state, t, values.reshape(means.shape))
    for k, a in plan.latents(state).items():  # what the plan hands the synthesis (refined, where a part does)
        out[k]["decoded"] = np.asarray(a)
    return out


@pytest.mark.parametrize("part", sorted(PARTS))
def test_coding_steps_predict_what_the_forward_computes(part):
    model = _build(part)
    assert part.split("-")[0] in {type(m).__name__ for m in _parts(model)}, f"{PARTS[part][0]} does not use {part}"
    shapes = model.latent_shapes(2, 128, 192)      # batch 2; y 8 x 12: up to 4 positions a wavefront step
    y = jnp.asarray(np.random.default_rng(0).normal(0, 3, shapes["y"]), jnp.float32)
    # the tree's variables only (the transforms play no part here)
    variables = model.init(jax.random.key(0), y, method=lambda m, y: m.latent_codec(y))
    ap = lambda fn, *a: model.apply(variables, *a, method=fn)
    latents = {"y": y, **ap(lambda m, y: m.latent_codec.side_latents(y), y)}
    got = run_plan(model, variables, latents)
    # the forward, fed the latent the steps decoded: a context model's prediction at each element depends only on
    # elements decoded before it, so given the same decoded latent it must predict the same everywhere
    fwd = ap(lambda m, y: m.latent_codec(y), y)
    if "z" in latents:
        np.testing.assert_array_equal(got["z"]["hat"], fwd["z_hat"])
        med = np.asarray(ap(lambda m: m.entropy_bottleneck.medians()))
        np.testing.assert_array_equal(got["z"]["means"], np.broadcast_to(med, got["z"]["means"].shape))
        np.testing.assert_array_equal(got["z"]["params"], np.broadcast_to(np.arange(med.size), latents["z"].shape))
        side = ap(lambda m, z: m.latent_codec.h_s(z), fwd["z_hat"])
        if isinstance(model.bind({}).latent_codec.y, lc.MaskedContextLatent):
            scales, means = ap(lambda m, s, y_hat: m.latent_codec.y.params(s, y_hat), side, got["y"]["hat"])
            np.testing.assert_array_equal(got["y"]["decoded"], got["y"]["hat"])
        else:
            scales, means = fwd["scales"], fwd.get("means", jnp.zeros_like(fwd["scales"]))
            np.testing.assert_array_equal(got["y"]["decoded"], fwd["y_hat"])
        np.testing.assert_allclose(got["y"]["params"], scales, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["y"]["means"], means, rtol=1e-5, atol=1e-5)
    else:  # the factorized prior: y rounded around the channel medians, table index = channel
        np.testing.assert_array_equal(got["y"]["decoded"], fwd["y_hat"])
        med = np.asarray(ap(lambda m: m.entropy_bottleneck.medians()))
        np.testing.assert_array_equal(got["y"]["params"], np.broadcast_to(np.arange(med.size), y.shape))
    # and the decoded latent is the latent rounded around the predicted means
    np.testing.assert_allclose(got["y"]["hat"], np.round(np.asarray(y) - got["y"]["means"]) + got["y"]["means"],
                               atol=1e-5)


def _parts(model):
    """The parts of the model's tree (through ``Hyperprior``'s z and y and channel groups)."""
    def walk(m):
        yield m
        for child in ("z", "y"):
            if isinstance(getattr(m, child, None), lc.nn.Module):
                yield from walk(getattr(m, child))
        for g in getattr(m, "groups", ()):
            yield from walk(g)
    return list(walk(model.bind({}).latent_codec))


def test_rated_parts_code_what_their_forward_computes_at_any_gain():
    """``VariableStepLatent`` and ``OffsetGaussianLatent`` (the variable-rate models), at two gains, on random
    latents at batch 2: the steps, started from the rate, code z on the rate's grid (z_hat exactly the
    forward's), predict y's means and scales times the gain, and reconstruct the forward's y_hat, offsets
    included."""
    model = get_spec("mbt2018-mean-vbr").build(N=8, M=12, precision=Precision.HIGHEST)
    assert {"VariableStepLatent", "OffsetGaussianLatent"} <= {type(m).__name__ for m in _parts(model)}
    y = jnp.asarray(np.random.default_rng(1).normal(0, 3, model.latent_shapes(2, 128, 192)["y"]), jnp.float32)
    variables = model.init(jax.random.key(0), y, 0.5, method=lambda m, y, g: m.latent_codec(y, gain=g))
    ap = lambda fn, *a: model.apply(variables, *a, method=fn)
    for g in (np.float32(0.3), np.float32(2.0)):
        latents = ap(lambda m, y, g: m.latent_codec.scaled_latents(y, g), y, g)
        got = run_plan(model, variables, latents, {"gain": g})
        fwd = ap(lambda m, y, g: m.latent_codec(y, gain=g), y, g)
        step = ap(lambda m, g: m.latent_codec.z.step(g), g)
        med = np.asarray(ap(lambda m: m.entropy_bottleneck.medians()))
        np.testing.assert_array_equal(got["z"]["hat"] * np.asarray(step) + med, fwd["z_hat"])
        np.testing.assert_allclose(got["y"]["params"], np.asarray(fwd["scales"]) * g, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["y"]["means"], np.asarray(fwd["means"]) * g, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got["y"]["decoded"], fwd["y_hat"], rtol=1e-5, atol=1e-5)
        assert np.abs(np.asarray(fwd["offsets"])).max() > 0  # the offsets are there to be dropped


def test_recursive_context_part_codes_what_its_sequential_forward_computes():
    """``OffsetContextLatent`` (mbt2018-vbr): its training forward, a scan over the wavefront, is the official
    position-by-position recursion, checked against a raster loop over positions that runs the full masked
    convolution on the y_hat decoded so far (the official ``_stequantization``); and the codec's steps, at two
    gains on random latents at batch 2, predict the forward's means and scales times the gain and decode its
    y_hat, offsets included."""
    model = get_spec("mbt2018-vbr").build(N=8, M=12, precision=Precision.HIGHEST)
    assert "OffsetContextLatent" in {type(m).__name__ for m in _parts(model)}
    y = jnp.asarray(np.random.default_rng(4).normal(0, 3, model.latent_shapes(2, 64, 128)["y"]), jnp.float32)
    variables = model.init(jax.random.key(0), y, 0.5, method=lambda m, y, g: m.latent_codec(y, gain=g))
    ap = lambda fn, *a: model.apply(variables, *a, method=fn)
    side = ap(lambda m, y: m.h_s(m.latent_codec.z(m.latent_codec.side_latents(y)["z"])[0]), y)

    @jax.jit
    def at_position(y_hat, i, j, g):  # the official step at (i, j): full context, entropy parameters, offsets
        def fn(m, y_hat):
            part = m.latent_codec.y
            ctx = m.context_prediction(y_hat) + m.scale_to_context(jnp.reshape(g, (1, 1)))[0]
            scales, means = jnp.split(m.entropy_parameters(jnp.concatenate([side, ctx], -1))[:, i, j], 2, -1)
            v = (y[:, i, j] - means) * g
            return part.reconstruct(jnp.sign(v), jnp.round(jnp.abs(v)), scales, means, g)[0], scales, means
        return model.apply(variables, y_hat, method=fn)

    for g in (np.float32(0.3), np.float32(2.0)):
        fwd = ap(lambda m, y, s, g: m.latent_codec.y(y, s, gain=g), y, side, g)
        ref = {k: np.zeros(y.shape, np.float32) for k in ("y_hat", "scales", "means")}
        y_hat = jnp.asarray(y)  # not yet decoded positions hold y, which the mask hides (as the official loop)
        for i, j in np.ndindex(*y.shape[1:3]):
            y_q, scales, means = at_position(y_hat, i, j, g)
            y_hat = y_hat.at[:, i, j].set(y_q)
            for k, a in (("y_hat", y_q), ("scales", scales), ("means", means)):
                ref[k][:, i, j] = a
        for k in ref:
            np.testing.assert_allclose(fwd[k], ref[k], rtol=1e-5, atol=1e-5, err_msg=k)
        assert np.abs(np.asarray(fwd["offsets"])).max() > 0
        latents = ap(lambda m, y, g: m.latent_codec.scaled_latents(y, g), y, g)
        got = run_plan(model, variables, latents, {"gain": g})
        full = ap(lambda m, y, g: m.latent_codec(y, gain=g), y, g)
        np.testing.assert_allclose(got["y"]["params"], np.asarray(full["scales"]) * g, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["y"]["means"], np.asarray(full["means"]) * g, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got["y"]["decoded"], full["y_hat"], rtol=1e-5, atol=1e-5)
