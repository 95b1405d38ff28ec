"""The transformer LIC of Shen & Liu against the official code (../shared/fixtures/stf_zigzag, any fixture of that
format: other sizes, batch 2, no intermediates.npz): the forward outputs, every captured module fed its official
input, published-size parameter counts and keys, the real codec (which the official code lacks) at any size.

Floats: max |a - ref| <= 1e-5 max |ref|. Chunk by chunk, each chunk's networks see the official decoded chunks
before it (teacher forcing), so a rounding flip in one chunk cannot spread to the next.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import fixture_dir, fixture_file, nhwc, rel_err
from helpers import RoundTrip, assert_8bit_matches, converted, latent_err, padded_forward
from jaxlic.codec import Codec
from jaxlic.registry import detect_model, get_spec

TOL = 1e-5
FIXTURES = ["stf_zigzag"]


def _chunks(a):
    """Official per-chunk arrays (B, K, C, h, w) -> (K, B, h, w, C)."""
    return np.moveaxis(np.asarray(a), [1, 2], [0, 4])


def _teacher_forced(model):
    """Per chunk k: its means and scales from the hyperprior of z_hat and the official decoded chunks before k, and
    its decoded chunk from round(y - mu) + mu with the official mu. A scan over k: one compiled chunk."""
    def run(m, z_hat, y_chunks, y_hat_chunks, mus):
        hyper = m.contexts.hyper_outs(m.contexts.hyper((m.h_mean_s(z_hat), m.h_scale_s(z_hat))))

        def step(support, xs):
            k, y, y_hat, mu_ref = xs
            mu, scale = m.contexts.chunk_params(hyper, support, k)
            decoded = m.contexts.chunk_decode(hyper, support, jnp.round(y - mu_ref) + mu_ref, k)
            return m.contexts.push(support, y_hat, k), (mu, scale, decoded)

        support = jnp.zeros(y_hat_chunks.shape[1:4] + (m.support_window * m.chunk_ch,))
        return jax.lax.scan(step, support, (jnp.arange(y_chunks.shape[0]), y_chunks, y_hat_chunks, mus))[1]
    return jax.jit(lambda v, *a: model.apply(v, *a, method=run))


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.slow
def test_forward_matches_official(fixture):
    name, config, model, variables, sd, out = converted(fixture)
    assert name == "stf-zigzag" and config["embed_dim"] == sd["patch_embed.proj.weight"].shape[0]
    np.testing.assert_array_equal(np.asarray(model.chunk_keys), out["zigzag_order"])
    r = jax.jit(model.apply)(variables, jnp.asarray(nhwc(out["x"])))
    errors = {k: rel_err(r[k], nhwc(out[k])) for k in ("y", "z", "x_hat")}
    errors["z_hat"] = latent_err(r["z_hat"], nhwc(out["z_hat"]), f"{fixture} z_hat")
    errors["y_hat"] = latent_err(r["y_hat"], nhwc(out["y_hat"]), f"{fixture} y_hat")
    errors["z_likelihoods"] = rel_err(r["likelihoods"]["z"], nhwc(out["z_likelihoods"]))
    split = jax.jit(lambda v, t: model.apply(v, t, method=lambda m, t: jnp.stack(m.contexts.split(t))))
    K, cw = len(model.chunk_keys), model.chunk_ch
    y_lik = np.asarray(out["y_likelihoods"]).reshape(out["y_likelihoods"].shape[0], K, cw, *out["y_likelihoods"].shape[2:])
    errors["y_likelihoods"] = rel_err(split(variables, r["likelihoods"]["y"]), _chunks(y_lik))
    errors["y_zigzag"] = rel_err(split(variables, r["y"]), _chunks(out["y_zigzag"]))
    # stage by stage from the official inputs: hyper-synthesis, each chunk, synthesis
    hyper = jax.jit(lambda v, z: model.apply(v, z, method=lambda m, z: (m.h_mean_s(z), m.h_scale_s(z))))(
        variables, jnp.asarray(nhwc(out["z_hat"])))
    errors["latent_means"] = rel_err(hyper[0], nhwc(out["latent_means"]))
    errors["latent_scales"] = rel_err(hyper[1], nhwc(out["latent_scales"]))
    mus, scales, y_hats = _teacher_forced(model)(
        variables, jnp.asarray(nhwc(out["z_hat"])), *(jnp.asarray(_chunks(out[k])) for k in
                                                      ("y_zigzag", "y_hat_zigzag", "means_hat")))
    errors["means_hat"] = rel_err(mus, _chunks(out["means_hat"]))
    errors["scales_hat"] = rel_err(scales, _chunks(out["scales_hat"]))
    errors["y_hat_zigzag"] = rel_err(y_hats, _chunks(out["y_hat_zigzag"]))
    x_hat = jax.jit(lambda v, y: model.apply(v, y, method=lambda m, y: m.g_s(y)))(variables, jnp.asarray(nhwc(out["y_hat"])))
    errors["x_hat from y_hat"] = rel_err(x_hat, nhwc(out["x_hat"]))
    print(fixture, "max relative errors:", {k: f"{v:.2e}" for k, v in errors.items()})
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
def test_modules_match_official(fixture):
    """Each captured module fed its official input (the previous capture): patch embedding, every analysis and
    synthesis stage (blocks and patch merging / splitting), and per chunk the mean, scale and LRP convolution
    stacks (from the official hyperprior and decoded chunks) and each of their Swin stages."""
    path = fixture_dir(fixture) / "intermediates.npz"
    if not path.exists():
        pytest.skip(f"{fixture} has no intermediates.npz")
    _, _, model, variables, _, out = converted(fixture)
    with np.load(path) as f:
        inter = {k: f[k] for k in f.files}
    ap = jax.jit(lambda v, x, fn: model.apply(v, x, method=fn), static_argnums=2)
    errors = {"patch_embed": rel_err(ap(variables, jnp.asarray(nhwc(out["x"])), lambda m, x: m.patch_embed(x)),
                                     nhwc(inter["patch_embed.out"]))}

    def tokens(name, like):
        b, h, w, _ = like.shape
        return inter[name].reshape(b, h, w, -1)

    x = jnp.asarray(nhwc(inter["patch_embed.out"]))
    for prefix, start in (("layers", x), ("syn_layers", jnp.asarray(nhwc(out["y_hat"])))):
        x = start
        for i in range(len(model.depths)):
            got = ap(variables, x, lambda m, x, i=i, p=prefix: getattr(m, p)[i](x))
            errors[f"{prefix}.{i}"] = rel_err(got, tokens(f"{prefix}.{i}.out0", got))
            x = jnp.asarray(tokens(f"{prefix}.{i}.out0", got))

    z_hat = jnp.asarray(nhwc(out["z_hat"]))
    y_chunks, y_hat_chunks, mus = (_chunks(out[k]) for k in ("y_zigzag", "y_hat_zigzag", "means_hat"))

    def chunk_modules(m, z_hat, k, support, y_bar, ins):
        hyper = [h[k] for h in m.contexts.hyper_outs(m.contexts.hyper((m.h_mean_s(z_hat), m.h_scale_s(z_hat))))]
        nets, kernels = m.contexts.chunk_nets(k)
        bar = jnp.concatenate([support, jnp.zeros_like(y_bar)], -1)
        bar = jax.lax.dynamic_update_slice_in_dim(bar, y_bar, jnp.minimum(k, m.support_window) * m.chunk_ch, -1)
        outs = {"cc_mean_transforms2": nets.cc_mean(hyper[0], support, kernels[0]),
                "cc_scale_transforms2": nets.cc_scale(hyper[1], support, kernels[1]),
                "lrp_transforms2": nets.lrp(hyper[2], bar, kernels[2])}
        for name, stages in (("mu_Swin2", nets.mu_Swin2), ("sigma_Swin2", nets.sigma_Swin2),
                             ("LRP_Swin2", nets.LRP_Swin2)):
            for j, stage in enumerate(stages):
                outs[f"{name}.{j}"] = stage(ins[f"{name}.{j}"])
        return outs

    run = jax.jit(lambda v, *a: model.apply(v, *a, method=chunk_modules))
    support = jnp.zeros(y_chunks.shape[1:4] + (model.support_window * model.chunk_ch,))
    for k in range(y_chunks.shape[0]):
        ins = {}
        for name, first in (("mu_Swin2", "cc_mean_transforms2"), ("sigma_Swin2", "cc_scale_transforms2"),
                            ("LRP_Swin2", "lrp_transforms2")):
            prev = nhwc(inter[f"{first}.{k}.out"])
            j = 0
            while f"{name}.{k}.{j}.out0" in inter:
                ins[f"{name}.{j}"] = jnp.asarray(prev)
                prev = inter[f"{name}.{k}.{j}.out0"].reshape(prev.shape)
                j += 1
        y_bar = np.round(y_chunks[k] - mus[k]) + mus[k]
        got = run(variables, z_hat, k, support, jnp.asarray(y_bar), ins)
        for name, value in got.items():
            ref = nhwc(inter[f"{name}.{k}.out"]) if "transforms" in name else \
                inter[f"{name.split('.')[0]}.{k}.{name.split('.')[1]}.out0"].reshape(value.shape)
            errors[f"{name}[{k}]"] = rel_err(value, ref)
        support = model.apply(variables, support, jnp.asarray(y_hat_chunks[k]), k, method=lambda m, s, y, k: m.contexts.push(s, y, k))
    worst = sorted(errors.items(), key=lambda kv: -kv[1])[:8]
    print(fixture, f"{len(errors)} modules, worst:", {k: f"{v:.2e}" for k, v in worst})
    assert max(errors.values()) <= TOL, worst


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
def test_published_size_keys_and_count(fixture):
    """The official default model (manifest_full.json): detected from its keys, every key converts, 417,843,543
    parameters; a missing key or a left-over one is named; the official loader's dropped ``h_s.*`` is noted."""
    from jaxlic.convert import ConversionError
    from jaxlic.export import convert_checkpoint
    from jaxlic.layers.swin import relative_position_index
    manifest = json.loads(fixture_file(fixture, "manifest_full.json").read_text())
    variant = manifest["variants"][0]
    entries = variant["entries"]
    sd = {}
    for e in entries:
        shape = tuple(e["shape"])
        sd[e["name"]] = relative_position_index(int(np.sqrt(shape[0]))) if e["name"].endswith(
            "relative_position_index") else np.broadcast_to(np.zeros((), np.float32), shape)
    name, config = detect_model(sd)
    assert name == "stf-zigzag"
    assert config == {k: v for k, v in get_spec(name).defaults.items() if k in config}, config
    spec = get_spec(name)
    model = spec.build(**config)
    template = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
    variables = spec.convert(sd, template)
    count = sum(v.size for v in jax.tree_util.tree_leaves(variables["params"]))
    print(f"{count:,} parameters")
    assert count == variant["total_params"] == 417_843_543
    # strict: a missing chunk key and a left-over key are named; the official loader's h_s.* is dropped with a note
    with np.load(fixture_dir(fixture) / "weights.npz") as f:
        small = {k: f[k] for k in f.files}
    bad = {k: v for k, v in small.items() if k != "lrp_transforms2.5.4.weight"}
    bad["mu_Swin2.3.1.blocks.9.norm1.weight"] = small["mu_Swin2.3.1.blocks.0.norm1.weight"]
    with pytest.raises(ConversionError) as e:
        convert_checkpoint(bad)
    assert "chunks/lrp/layers_4/kernel (index [5] of 24)" in str(e.value) and "mu_Swin2.3.1.blocks.9.norm1.weight" in str(e.value)
    notes = []
    small["h_s.0.weight"] = np.zeros((3, 3, 3, 3), np.float32)
    convert_checkpoint({f"module.{k}": v for k, v in small.items()}, notes=notes)
    assert len(notes) == 1 and "h_s" in notes[0]
    wrong = dict(small)
    wrong["layers.0.blocks.0.attn.relative_position_index"] = np.zeros_like(wrong["layers.0.blocks.0.attn.relative_position_index"])
    with pytest.raises(ConversionError, match="relative_position_index"):
        convert_checkpoint(wrong)


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.slow
def test_codec_round_trip_any_size(fixture):
    """1x1 and a size that is not a multiple of 64 (one compiled plan for both), with each coder (tfc where
    installed, or required by CI): decoding gives exactly the encoder's symbols and latent; the symbols are
    round(y - mu) of the evaluation forward (except within float tolerance of a rounding step), and the decoded
    image is the forward's reconstruction of the padded image in 8 bits."""
    import os
    from jaxlic.coding.coders import available_coders
    name, config, model, variables, _, _ = converted(fixture, precision=None)
    codec = Codec(name, model, variables, model.build_tables(variables), config)
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, s + (3,), dtype=np.uint8) for s in ((1, 1), (50, 37))]
    coders = [c for c in ("constriction", "tfc") if c in available_coders() or os.environ.get("JAXLIC_REQUIRE_TFC")]
    for img, coder in ((i, c) for i in images for c in coders):
        rt = RoundTrip(codec, img, coder)
        ref = padded_forward(model, variables, img)
        off = np.asarray(ref["y"]) - np.asarray(ref["means"])
        near = np.abs(np.abs(off - np.floor(off)) - 0.5) < 1e-4
        differ = rt.enc["y_symbols"] != np.round(off)
        assert not (differ & ~near).any(), f"{img.shape}: {int(differ.sum())} symbols differ from the forward's"
        assert latent_err(rt.dec["y_hat"], np.asarray(ref["y_hat"]), f"{img.shape} decoded y_hat vs forward") <= TOL
        # the forward's x_hat is of the padded image (unclamped): in 8 bits, the decoder's crop of it
        assert_8bit_matches(rt.codec.decompress(rt.data), np.asarray(ref["x_hat"])[0, :img.shape[0], :img.shape[1]],
                            margin=2e-2)


def test_chunk_orders_and_configs():
    """The official order (TL, BL, TR, BR; channel slices first; the official loop's L-shaped shells on larger
    grids), the anti-diagonal zigzag, every chunk once; configs/stf.py gives the published lambdas."""
    import pathlib
    from jaxlic.models.stf import chunk_order
    assert [k[1:] for k in chunk_order(1, 2)] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert [k[1:] for k in chunk_order(1, 3)] == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (2, 1), (0, 2), (1, 2), (2, 2)]
    assert [k[1:] for k in chunk_order(1, 3, "zigzag")] == [(0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (1, 2),
                                                           (2, 1), (2, 2)]
    assert chunk_order(2, 2)[:3] == ((0, 0, 0), (1, 0, 0), (0, 1, 0))
    for order in ("official", "zigzag"):
        for g in (1, 2, 3, 4):
            assert sorted(chunk_order(3, g, order)) == sorted((s, r, c) for s in range(3) for r in range(g)
                                                              for c in range(g))
    from jaxlic.training.config import load_config
    path = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "stf.py")
    for lmbda in (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483):
        c = load_config(f"{path}:lmbda={lmbda}")
        assert (c.model, c.lmbda, c.batch_size, c.data.crop, c.loss) == ("stf-zigzag", lmbda, 32, 256, "mse")
    assert load_config(f"{path}:tiny").model_config["embed_dim"] == 8


@pytest.mark.slow
def test_training_gradients():
    """The training forward (noise for the rates, drop-path, the STF loss lambda 255^2 MSE + bpp) of the tiny
    config (random weights drawn from numpy: no compiled init) has finite gradients, nonzero in every part,
    including each chunk's slice of the stacked networks and of the stacked hyperprior kernels and each slot of the
    ragged support stores; drop-path makes training outputs depend on the rng."""
    import pathlib
    from jaxlic.training.config import load_config
    from jaxlic.training.losses import rd_loss
    cfg = load_config(str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "stf.py") + ":tiny")
    model = get_spec("stf-zigzag").build(**cfg.model_config)
    x = jax.random.uniform(jax.random.key(1), (1, 64, 64, 3))
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    rng = np.random.default_rng(0)
    bound = lambda s: 1 / np.sqrt(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 1.0  # PyTorch-like scale
    variables = jax.tree_util.tree_map(lambda s: jnp.asarray(rng.uniform(-bound(s), bound(s), s.shape), s.dtype), shapes)
    from jaxlic.entropy.gaussian import default_scale_table
    variables["constants"] = {"gaussian_conditional": {"scale_table": jnp.asarray(default_scale_table())}}

    def loss(params, key):
        out = model.apply({**variables, "params": params}, x, training=True, rng=key)
        return rd_loss(x, out, 0.0035, "mse")[0]

    grads = jax.jit(jax.grad(loss))(variables["params"], jax.random.key(2))
    flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(g)
            for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]}
    assert all(np.isfinite(g).all() for g in flat.values())
    for part in ("patch_embed", "layers_0", "layers_3", "syn_layers_0", "syn_layers_3", "end_conv_0", "h_a",
                 "h_mean_s", "h_scale_s", "entropy_bottleneck"):
        assert sum(np.abs(g).sum() for k, g in flat.items() if k.startswith(part)) > 0, part
    K = len(model.chunk_keys)
    for net in ("chunks/cc_mean/", "chunks/cc_scale/", "chunks/lrp/", "chunks/mu_Swin2_0/", "chunks/sigma_Swin2_0/",
                "chunks/LRP_Swin2_0/", "cc_mean_hyper", "cc_scale_hyper", "lrp_hyper"):
        per_chunk = sum(np.abs(g).reshape(K, -1).sum(1) for k, g in flat.items() if k.startswith(net))
        assert (per_chunk > 0).all(), (net, per_chunk)
    for store in ("cc_mean_support", "cc_scale_support", "lrp_support"):
        assert (np.abs(flat[store]).reshape(flat[store].shape[0], -1).sum(1) > 0).all(), store
    f = jax.jit(lambda v, r: model.apply(v, x, training=True, rng=r)["x_hat"])
    assert float(jnp.abs(f(variables, jax.random.key(3)) - f(variables, jax.random.key(4))).max()) > 0
