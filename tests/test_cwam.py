"""CWAM against the official code (../shared/fixtures/cwam, any fixture of that format: other sizes, batch 2): the
forward outputs, every captured module fed its official input, the real codec (symbols and scale indexes per
position, the decoded latent and image), published-size parameter counts and keys, round trips at any size.

Floats: max |a - ref| <= 1e-5 max |ref|. Discrete decisions (rounded symbols, scale-table indexes) may differ only
where the official value lies within float tolerance of a rounding or table boundary; such elements are counted,
printed and allowed.
"""
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import coder_params, fixture_dir, fixture_file, nhwc, rel_err
from helpers import (RoundTrip, assert_8bit_matches, converted, fixture_images, latent_err, near_rounding, near_table,
                     raster_reference)
from jaxlic.codec import Codec
from jaxlic.registry import detect_model, get_spec

TOL = 1e-5
FIXTURES = ["cwam"]


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
def test_forward_matches_official(fixture):
    name, config, model, variables, sd, out = converted(fixture)
    assert name == "cwam" and config["N"] == json.loads(fixture_file(fixture, "config.json").read_text())[
        "small_config"]["N"]
    r = jax.jit(model.apply)(variables, jnp.asarray(nhwc(out["x"])))
    side = jax.jit(lambda v, z_hat, y_hat: model.apply(
        v, z_hat, y_hat, method=lambda m, z, y: (m.h_s(z), m.context_prediction(y))))(variables, r["z_hat"], r["y_hat"])
    errors = {k: rel_err(r[k], nhwc(out[ref])) for k, ref in
              (("y", "y"), ("z", "z"), ("z_hat", "z_hat"), ("scales", "scales_hat"), ("means", "means_hat"),
               ("x_hat", "x_hat"))}
    errors["y_hat"] = latent_err(r["y_hat"], nhwc(out["y_hat"]), f"{fixture} y_hat")
    errors["params"] = rel_err(side[0], nhwc(out["params"]))
    errors["ctx_params"] = rel_err(side[1], nhwc(out["ctx_params"]))
    for k in ("y", "z"):
        errors[f"{k}_likelihoods"] = rel_err(r["likelihoods"][k], nhwc(out[f"{k}_likelihoods"]))
    print(fixture, "max relative errors:", {k: f"{v:.2e}" for k, v in errors.items()})
    assert max(errors.values()) <= TOL, errors


# official module -> the same module here (a function of the model and its input)
MODULES = {
    "enh.forw_enh": lambda m, x: m.g_a.forw_enh(x),
    "cnn.g_a.4": lambda m, x: m.g_a.cnn.layers[4](x),
    "cnn.g_a.4.conv_b.0": lambda m, x: m.g_a.cnn.layers[4].conv_b.layers[0](x),
    "cnn.g_a.8": lambda m, x: m.g_a.cnn.layers[8](x),
    "cnn.g_a.8.conv_b.0": lambda m, x: m.g_a.cnn.layers[8].conv_b.layers[0](x),
    "attention.forw_att": lambda m, x: m.g_a.forw_att(x),
    "attention.back_att": lambda m, x: m.g_s.back_att(x),
    "cnn.g_s.0": lambda m, x: m.g_s.cnn.layers[0](x),
    "cnn.g_s.0.conv_b.0": lambda m, x: m.g_s.cnn.layers[0].conv_b.layers[0](x),
    "cnn.g_s.5": lambda m, x: m.g_s.cnn.layers[5](x),
    "cnn.g_s.5.conv_b.0": lambda m, x: m.g_s.cnn.layers[5].conv_b.layers[0](x),
    "enh.back_enh": lambda m, x: m.g_s.back_enh(x),
    "context_prediction": lambda m, x: m.context_prediction(x),
    "entropy_parameters": lambda m, x: m.entropy_parameters(x),
}


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
def test_modules_match_official(fixture):
    """Each captured module (feature encoding, CWAM blocks and their cross window-based attention, attention
    blocks, context, entropy parameters) fed its official input gives its official output."""
    path = fixture_dir(fixture) / "intermediates.npz"
    if not path.exists():
        pytest.skip(f"{fixture} has no intermediates.npz (per-module inputs)")
    _, _, model, variables, _, _ = converted(fixture)
    with np.load(path) as f:
        inter = {k: f[k] for k in f.files}
    errors = {}
    for name, fn in MODULES.items():
        got = model.apply(variables, jnp.asarray(nhwc(inter[f"{name}.in0"])), method=fn)
        errors[name] = rel_err(got, nhwc(inter[f"{name}.out"]))
    print(fixture, {k: f"{v:.2e}" for k, v in errors.items()})
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
def test_codec_matches_official(fixture):
    """compress -> bytes -> decompress: z and y symbols and scale indexes per position equal the official
    compress's (except where the official value lies within float tolerance of a rounding or table boundary:
    counted), the latent g_s receives and the decoded image equal the official decompress's (1e-5, then in
    8 bits), and decoding gives back exactly the encoder's latent."""
    name, config, model, variables, sd, out = converted(fixture)
    codec = Codec(name, model, variables, model.build_tables(variables), config)
    table = np.asarray(variables["constants"]["gaussian_conditional"]["scale_table"], np.float64)
    for b, img in fixture_images(out, fixture):
        rt = RoundTrip(codec, img)
        enc = rt.enc
        np.testing.assert_array_equal(enc["z_symbols"][0].transpose(2, 0, 1).reshape(-1), out["codec_z_symbols"][b])
        # y per position in the official order (raster, channel fastest)
        y_off = nhwc(out["y"])[b] - nhwc(out["codec_enc_means_hat"])[b]
        free_sym = near_rounding(y_off).reshape(-1)
        free_idx = near_table(nhwc(out["codec_enc_scales_hat"])[b], table).reshape(-1)
        sym_diff = enc["y_symbols"][0].reshape(-1) != out["codec_y_symbols"][b]
        idx_diff = enc["y_indexes"][0].reshape(-1) != out["codec_y_indexes"][b]
        print(f"{fixture}[{b}]: y symbols differ at {int(sym_diff.sum())} of {sym_diff.size} positions "
              f"({int(free_sym.sum())} lie within 1e-4 of a rounding boundary), indexes at {int(idx_diff.sum())} "
              f"({int(free_idx.sum())} within 1e-5 of a table boundary)")
        assert not (sym_diff & ~free_sym).any() and not (idx_diff & ~free_idx).any()
        rt.assert_decodes_to(nhwc(out["codec_dec_y_hat"])[b], nhwc(out["codec_x_hat"])[b], f"{fixture}[{b}] codec",
                             TOL)


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
def test_published_sizes_keys_and_counts(fixture):
    """At N = 128, 192 and 320 (manifest_full.json): the model and N are detected from the keys, every key but the
    unused ``enh1.*`` module and the buffers converts, and the parameter count is the official one without enh1
    (10.58M / 22.97M / 62.61M)."""
    manifest = json.loads(fixture_file(fixture, "manifest_full.json").read_text())
    for variant in manifest["variants"]:
        entries = variant["entries"]
        sd = {e["name"]: np.broadcast_to(np.zeros((), np.float32), e["shape"]) for e in entries}
        name, config = detect_model(sd)
        assert (name, config["N"]) == ("cwam", variant["config"]["N"])
        spec = get_spec(name)
        model = spec.build(**config)
        template = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
        variables = spec.convert(sd, template)  # raises on anything unmapped
        enh1 = sum(int(np.prod(e["shape"])) for e in entries if e["name"].startswith("enh1.") and e["kind"] == "parameter")
        count = sum(v.size for v in jax.tree_util.tree_leaves(variables["params"]))
        print(f"N={config['N']}: {count:,} parameters ({variant['total_params']:,} with enh1)")
        assert count == variant["total_params"] - enh1


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("coder", coder_params())
@pytest.mark.slow
def test_round_trip_any_size(fixture, coder):
    """1x1 and a size that is not a multiple of 64: symbols round-trip, and the decoded image is the serial
    raster decode's (written out independently of the wavefront) reconstruction, cropped, in 8 bits."""
    name, config, model, variables, _, _ = converted(fixture, precision=None)
    codec = Codec(name, model, variables, model.build_tables(variables), config)
    rng = np.random.default_rng(3)
    for size in ((1, 1), (70, 45)):
        img = rng.integers(0, 256, size + (3,), dtype=np.uint8)
        e = codec.encode(img, coder)
        sym, d = e.symbols, codec.decode(e.data)
        for k in sym:
            np.testing.assert_array_equal(sym[k], d.symbols[k], err_msg=f"{size} {k}")
        ref = raster_reference(model, variables, img)
        assert_8bit_matches(d.image, ref[0, :size[0], :size[1]], margin=2e-2)


def test_configs():
    """configs/cwam.py:quality=Q gives the official N and lambda and the recipe's schedule in steps."""
    import pathlib
    from jaxlic.training.config import load_config
    path = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "cwam.py")
    official = {1: (128, 0.0045), 2: (128, 0.00975), 3: (128, 0.0175), 4: (192, 0.0483), 5: (192, 0.09),
                6: (192, 0.14)}
    for q, (n, lmbda) in official.items():
        c = load_config(f"{path}:quality={q}")
        assert (c.model, c.model_config["N"], c.lmbda, c.batch_size, c.data.crop) == ("cwam", n, lmbda, 8, 256)
    assert tuple(c.optim.decay_steps) == (450 * 37_500, 550 * 37_500) and c.total_steps == 600 * 37_500
    with pytest.raises(ValueError, match="lmbda="):
        load_config(f"{path}:quality=8")
    assert load_config(f"{path}:quality=8,lmbda=0.2").model_config["N"] == 320
    assert dict(load_config(f"{path}:tiny").model_config) == {"N": 8}


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.slow
def test_training_gradients(fixture):
    """The training forward (noise for the rates, the official loss lambda 255^2 MSE + bpp) has finite gradients,
    nonzero for every module, at the official weights (a fresh init would compile for a minute on this CPU)."""
    from jaxlic.training.losses import rd_loss
    _, _, model, variables, _, _ = converted(fixture, precision=None)
    x = jax.random.uniform(jax.random.key(1), (2, 64, 64, 3))

    def loss(params):
        out = model.apply({**variables, "params": params}, x, training=True, rng=jax.random.key(2))
        return rd_loss(x, out, 0.0175, "mse")[0]

    grads = jax.jit(jax.grad(loss))(variables["params"])
    norms = {"/".join(str(getattr(k, "key", k)) for k in path[:3]): float(jnp.abs(g).sum())
             for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]}
    assert all(np.isfinite(v) for v in norms.values())
    for part in ("g_a/forw_enh", "g_a/cnn", "g_a/forw_att", "g_s/back_att", "g_s/cnn", "g_s/back_enh",
                 "context_prediction", "entropy_parameters", "h_a", "h_s"):
        assert sum(v for k, v in norms.items() if k.startswith(part)) > 0, part


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
def test_cli_convert_drops_the_unused_module_with_a_note(fixture, tmp_path, capsys):
    """``jaxlic convert`` detects CWAM and N from the keys and says that it dropped the unused ``enh1``; the same
    state_dict without ``enh1`` converts to the same weights."""
    import re
    from jaxlic.cli import main
    from jaxlic.export import convert_checkpoint
    assert main(["convert", str(fixture_dir(fixture) / "weights.npz"), str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"note: dropped \d+ keys matching enh1.*never calls", out) and "wrote" in out and "cwam" in out
    with np.load(fixture_dir(fixture) / "weights.npz") as f:
        sd = {k: f[k] for k in f.files if not k.startswith("enh1.")}
    notes = []
    _, _, _, variables, _ = convert_checkpoint(sd, notes=notes)
    assert notes == []
    from jaxlic.export import load_model
    name, config, _, written, _ = load_model(str(tmp_path / "m.npz"))
    assert name == "cwam" and config["N"] == sd["h_a.0.weight"].shape[0]
    for a, b in zip(jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(written)):
        np.testing.assert_array_equal(a, b)


def test_dense_block_by_piece_is_by_layer():
    """The CPU form of the dense block (one convolution per input piece into all later layers) against the
    layer-by-layer definition over concatenations, values and gradients, both channel directions."""
    from jaxlic.models.cwam import DenseBlock, _dense_by_layer, _dense_by_piece
    for cin, features in ((3, 8), (8, 3)):
        x = jax.random.normal(jax.random.key(cin), (2, 9, 7, cin))
        block = DenseBlock(features, gc=4)
        p = block.init(jax.random.key(1), x)["params"]
        kernels = [p[f"conv{k}"]["kernel"] for k in range(1, 6)]
        biases = [p[f"conv{k}"]["bias"] for k in range(1, 6)]

        def loss(form, x, kernels):
            return jnp.sum(jnp.sin(form(x, kernels, biases, "highest")))
        np.testing.assert_allclose(_dense_by_piece(x, kernels, biases, "highest"),
                                   _dense_by_layer(x, kernels, biases, "highest"), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(block.apply({"params": p}, x), _dense_by_layer(x, kernels, biases, None),
                                   rtol=1e-4, atol=1e-4)
        for a, b in zip(jax.tree.leaves(jax.grad(functools.partial(loss, _dense_by_piece), (0, 1))(x, kernels)),
                        jax.tree.leaves(jax.grad(functools.partial(loss, _dense_by_layer), (0, 1))(x, kernels))):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
