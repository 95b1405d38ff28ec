"""Parity with the official CompressAI MeanScaleHyperprior on ../shared/fixtures/mbt2018_mean.

Works for any fixture of this format (other sizes, batch > 1). Floats: max |a - ref| <= 1e-5 max |ref|.
Discrete values must match except where the reference lies within float tolerance of a rounding or table
boundary; such elements are counted and printed (pytest -s shows them).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import nhwc, rel_err
from helpers import RoundTrip, assert_8bit_matches, assert_differ_only_near, converted, fixture_images
from jaxlic.codec import Codec
from jaxlic.convert.compressai import compressai_tables

pytestmark = pytest.mark.parity
TOL = 1e-5


@pytest.mark.parametrize("fixture", ["mbt2018_mean"])
def test_forward_matches_official(fixture):
    _, _, model, variables, sd, out = converted(fixture)
    r = jax.jit(model.apply)(variables, jnp.asarray(nhwc(out["x"])))
    pairs = {"y": "y", "z": "z", "z_hat": "z_hat", "scales": "scales_hat", "means": "means_hat", "y_hat": "y_hat",
             "x_hat": "x_hat"}
    errors = {k: rel_err(r[k], nhwc(out[ref])) for k, ref in pairs.items()}
    errors["z_likelihoods"] = rel_err(r["likelihoods"]["z"], nhwc(out["z_likelihoods"]))
    errors["y_likelihoods"] = rel_err(r["likelihoods"]["y"], nhwc(out["y_likelihoods"]))
    print(fixture, "max relative errors:", {k: f"{v:.2e}" for k, v in errors.items()})
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parametrize("fixture", ["mbt2018_mean"])
def test_stages_fed_reference_inputs(fixture):
    """Each stage on the official input of that stage, so errors do not compound."""
    _, _, model, variables, sd, out = converted(fixture)
    ap = lambda method, *a: model.apply(variables, *a, method=method)
    g_s = ap(lambda m, y: m.g_s(y), jnp.asarray(nhwc(out["y_hat"])))
    h_s = ap(lambda m, z: m.hyper_synthesis(z), jnp.asarray(nhwc(out["z_hat"])))
    h_a = ap(lambda m, y: m.h_a(y), jnp.asarray(nhwc(out["y"])))
    assert rel_err(g_s, nhwc(out["x_hat"])) <= TOL
    assert rel_err(h_a, nhwc(out["z"])) <= TOL
    assert rel_err(h_s[0], nhwc(out["scales_hat"])) <= TOL and rel_err(h_s[1], nhwc(out["means_hat"])) <= TOL


@pytest.mark.parametrize("fixture", ["mbt2018_mean"])
def test_symbols_and_indexes_match_official(fixture):
    _, _, model, variables, sd, out = converted(fixture)
    scales, means = nhwc(out["scales_hat"]), nhwc(out["means_hat"])
    idx = np.asarray(model.apply(variables, jnp.asarray(scales), method=lambda m, s: m.gaussian_conditional.build_indexes(s)))
    table = sd["gaussian_conditional.scale_table"]
    s = np.maximum(scales, 0.11)
    near_table = (scales > 0.11) & (np.min(np.abs(s[..., None] - table[None]), axis=-1) <= TOL * np.abs(table).max())
    assert_differ_only_near("y_indexes", idx, nhwc(out["y_indexes"]), near_table)

    # Symbols from the codec itself: the encoder's own computation of y and the means.
    name, config, model_, variables_, _, _ = converted(fixture)
    codec = Codec(name, model_, variables_, model_.build_tables(variables_), config)
    for b, img in fixture_images(out, fixture):
        sym = codec.encode(img).symbols
        y_res = nhwc(out["y"])[b] - means[b]
        near = np.abs(np.abs(y_res - np.floor(y_res)) - 0.5) <= TOL * np.abs(nhwc(out["y"])).max()
        assert_differ_only_near("y_symbols", sym["y"][0], nhwc(out["y_symbols"])[b], near)
        z_res = nhwc(out["z"])[b] - sd["entropy_bottleneck.quantiles"][:, 0, 1]
        near = np.abs(np.abs(z_res - np.floor(z_res)) - 0.5) <= TOL * np.abs(nhwc(out["z"])).max()
        assert_differ_only_near("z_symbols", sym["z"][0], nhwc(out["z_symbols"])[b], near)


@pytest.mark.parametrize("fixture", ["mbt2018_mean"])
@pytest.mark.parametrize("tables", ["rebuilt", "checkpoint"])
def test_real_codec_decodes_official_image(fixture, tables):
    """compress -> bytes -> decompress reproduces CompressAI's own decoded image (to 1e-5 before 8-bit rounding)."""
    name, config, model, variables, sd, out = converted(fixture)
    t = model.build_tables(variables)
    if tables == "checkpoint":
        t = {k: compressai_tables(sd, k) for k in t}
    codec = Codec(name, model, variables, t, config)
    for b, img in fixture_images(out, fixture):
        rt = RoundTrip(codec, img)
        err = rel_err(np.clip(rt.x_hat, 0, 1), nhwc(out["decoded_x_hat"])[b])  # CompressAI clamps to [0, 1]
        print(f"{fixture} decoded x_hat ({tables} tables): max relative error {err:.2e}; file {len(rt.data)} bytes, "
              f"CompressAI rANS streams {int(out['y_string_bytes'][b]) + int(out['z_string_bytes'][b])} bytes")
        assert err <= TOL
        assert_8bit_matches(codec.decompress(rt.data), nhwc(out["decoded_x_hat"])[b])  # and in 8 bits
