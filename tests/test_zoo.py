"""CompressAI's image-model zoo against CompressAI 1.2.8 (../shared/fixtures/<model>, any fixture of that format:
other sizes, batch 2): the forward outputs, the real codec (the latent g_s receives inside CompressAI's decompress
and the decoded image), published-size parameter counts and keys, and the plan check for every registered model.

Floats: max |a - ref| <= 1e-5 max |ref|. Rounded latents may differ by one quantization step where the value
they are rounded from lies within float tolerance of a rounding boundary; such elements are counted and printed.
"""
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import coder_params, fixture_file, nhwc, rel_err
from jaxlic.errors import UserError
from helpers import (assert_8bit_matches, converted, latent_err, padded_forward,
                     raster_reference, tiny_config, fixture_images, RoundTrip)
from jaxlic.codec import Codec
from jaxlic.latent_codecs import MaskedContextLatent
from jaxlic.plan import check_coverage
from jaxlic.registry import REGISTRY, detect_model, get_spec

TOL = 1e-5
ZOO = ["bmshj2018_factorized", "bmshj2018_hyperprior", "mbt2018", "cheng2020_anchor", "cheng2020_attn",
       "cheng2020_anchor_checkerboard", "elic2022_official", "elic2022_chandelier"]


@pytest.mark.parity
@pytest.mark.parametrize("fixture", ZOO)
def test_forward_matches_compressai(fixture):
    name, config, model, variables, sd, out = converted(fixture)
    assert name == json.loads(fixture_file(fixture, "config.json").read_text())["model"]
    r = jax.jit(model.apply)(variables, jnp.asarray(nhwc(out["x"])))
    errors = {"y": rel_err(r["y"], nhwc(out["y"])), "x_hat": rel_err(r["x_hat"], nhwc(out["x_hat"])),
              "y_hat": latent_err(r["y_hat"], nhwc(out["y_hat"]), f"{fixture} y_hat")}
    for k in r["likelihoods"]:
        errors[f"{k}_likelihoods"] = rel_err(r["likelihoods"][k], nhwc(out[f"{k}_likelihoods"]))
    assert set(f"{k}_likelihoods" for k in r["likelihoods"]) == {k for k in out if k.endswith("_likelihoods")}
    print(fixture, "max relative errors:", {k: f"{v:.2e}" for k, v in errors.items()})
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parity
@pytest.mark.parametrize("fixture", ZOO)
def test_codec_matches_compressai(fixture):
    """compress -> bytes -> decompress: the latent g_s receives equals CompressAI's decompress's, the image
    CompressAI's decoded image (1e-5, then in 8 bits); decoding gives back exactly the latent the encoder
    reconstructed, symbol for symbol."""
    name, config, model, variables, sd, out = converted(fixture)
    codec = Codec(name, model, variables, model.build_tables(variables), config)
    for b, img in fixture_images(out, fixture):
        RoundTrip(codec, img).assert_decodes_to(nhwc(out["codec_dec_y_hat"])[b], nhwc(out["codec_x_hat"])[b],
                                                f"{fixture}[{b}] codec", TOL)


@pytest.mark.parity
@pytest.mark.parametrize("fixture", ZOO)
def test_published_size_keys_and_count(fixture):
    """Every key of the published-size state_dict (manifest_full.json) converts, the configuration is detected
    as published, and the parameter count is CompressAI's."""
    manifest = json.loads(fixture_file(fixture, "manifest_full.json").read_text())
    sd = {e["name"]: np.broadcast_to(np.zeros((), np.float32), e["shape"]) for e in manifest["entries"]}
    name, config = detect_model(sd)
    assert name == manifest["model"]
    assert {k: config[k] for k in manifest["kwargs"]} == manifest["kwargs"]
    spec = get_spec(name)
    model = spec.build(**config)
    x = jax.ShapeDtypeStruct((1, model.downsampling, model.downsampling, 3), jnp.float32)
    template = jax.eval_shape(model.init, jax.random.key(0), x)
    variables = spec.convert(sd, template)  # raises on anything unmapped
    assert sum(v.size for v in jax.tree_util.tree_leaves(variables["params"])) == manifest["param_count"]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_plan_codes_every_element_once(name):
    """The generic plan check at a size that is not a multiple of the latent grid's natural tiling."""
    model = get_spec(name).build(**tiny_config(name))
    m = model.downsampling
    for h, w in ((m, m), (3 * m, 2 * m)):
        plan = model.plan(model.latent_shapes(1, h, w))
        counts = check_coverage(plan)
        assert counts == {k: int(np.prod(s)) for k, s in plan.shapes.items()}


@pytest.mark.parametrize("fixture", ZOO)
@pytest.mark.parametrize("coder", coder_params())
def test_round_trip_any_size(fixture, coder):
    """Sizes that are not multiples of 64, and 1x1: the decoded image is the evaluation forward's
    reconstruction of the image edge-padded here, cropped and rounded to 8 bits; symbols round-trip."""
    name, config, model, variables, codec = _codec(fixture)
    rng = np.random.default_rng(len(fixture))
    for size in ((1, 1), (70, 45)):
        img = rng.integers(0, 256, size + (3,), dtype=np.uint8)
        e = codec.encode(img, coder)
        sym, d = e.symbols, codec.decode(e.data)
        for k in sym:
            np.testing.assert_array_equal(sym[k], d.symbols[k], err_msg=f"{size} {k}")
        if isinstance(model.bind({}).latent_codec.y, MaskedContextLatent):
            # the forward rounds y without means: the serial decode is the reference
            ref = raster_reference(model, variables, img)
        else:
            ref = np.asarray(padded_forward(model, variables, img)["x_hat"])
        assert_8bit_matches(d.image, ref[0, :size[0], :size[1]], margin=2e-2)


@functools.lru_cache(maxsize=None)  # the coders of one fixture share its compiled plans (small models)
def _codec(fixture):
    name, config, model, variables, _, _ = converted(fixture, precision=None)
    return name, config, model, variables, Codec(name, model, variables, model.build_tables(variables), config)


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


# the gradient check for one model of each training path (the others differ from these in transforms only,
# which their forward parity covers): factorized, masked context, attention, checkerboard, uneven groups
TRAINED = {"bmshj2018_factorized", "mbt2018", "cheng2020_attn", "cheng2020_anchor_checkerboard",
           "elic2022_chandelier"}


@pytest.mark.parametrize("fixture", ZOO)
def test_config_qualities_and_training_gradients(fixture):
    """configs/compressai.py:model=NAME,quality=Q gives CompressAI's size and lambda of that quality (CompressAI
    1.2.8's ``cfgs`` and training lambdas, written out here); the tiny config's model trains: the
    rate-distortion loss with noise has finite gradients, nonzero for every parameter group."""
    from jaxlic.training.config import load_config
    from jaxlic.training.losses import rd_loss
    name = fixture.replace("_", "-")
    path = str(ROOT / "configs" / "compressai.py")
    small, big = {"N": 128, "M": 192}, {"N": 192, "M": 320}
    sizes = {"bmshj2018-factorized": [small] * 5 + [big] * 3, "bmshj2018-hyperprior": [small] * 5 + [big] * 3,
             "mbt2018": [{"N": 192, "M": 192}] * 4 + [big] * 4, "cheng2020-anchor": [{"N": 128}] * 3 + [{"N": 192}] * 3,
             "cheng2020-attn": [{"N": 128}] * 3 + [{"N": 192}] * 3, "cheng2020-anchor-checkerboard": [{"N": 192}] * 6,
             "elic2022-official": [big] * 8,
             "elic2022-chandelier": [big] * 8}[name]
    mse = [0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800]
    ms_ssim = [2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00]
    for q, size in enumerate(sizes, 1):
        c = load_config(f"{path}:model={name},quality={q}")
        assert (c.model, c.loss, c.lmbda) == (name, "mse", mse[q - 1])
        assert {k: v for k, v in dict(c.model_config).items() if k in size} == size, (q, dict(c.model_config))
        assert load_config(f"{path}:model={name},quality={q},loss=ms-ssim").lmbda == ms_ssim[q - 1]
    with pytest.raises(UserError, match="has qualities"):
        load_config(f"{path}:model={name},quality={len(sizes) + 1}")
    with pytest.raises(UserError, match="not one of CompressAI's zoo models"):
        load_config(f"{path}:model={name}x")
    c = load_config(f"{path}:model={name},tiny")
    if fixture not in TRAINED:
        return
    model = get_spec(name).build(**c.model_config)
    x = jax.random.uniform(jax.random.key(1), (2, 64, 64, 3))
    variables = model.init(jax.random.key(0), x)

    def loss(params):
        out = model.apply({**variables, "params": params}, x, training=True, rng=jax.random.key(2))
        return rd_loss(x, out, c.lmbda, c.loss)[0]

    grads = jax.jit(jax.grad(loss))(variables["params"])
    for top, g in grads.items():
        leaves = [np.asarray(v) for v in jax.tree_util.tree_leaves(g)]
        assert all(np.isfinite(v).all() for v in leaves), top
        if top != "entropy_bottleneck":  # its quantiles learn from the aux loss only
            assert any(np.abs(v).max() > 0 for v in leaves), f"{top}: no gradient"


_DECODE_ALL = """
import json, sys, numpy as np
from jaxlic.cli import enable_compilation_cache
from jaxlic.codec import Codec
from jaxlic.latent_codecs import MaskedContextLatent
from jaxlic.export import load_model
enable_compilation_cache()  # as the jaxlic command does
for job in json.loads(sys.argv[1]):
    n, c, m, v, t = load_model(job["checkpoint"])
    codec, data = Codec(n, m, v, t, c), open(job["file"], "rb").read()
    d = codec.decode(data)
    np.savez(job["out"], x=d.x_hat, **d.symbols)
"""


@pytest.mark.slow
def test_round_trips_decode_in_another_process(tmp_path):
    """A model of each latent-codec tree (factorized, wavefront, checkerboard, channel groups, chunks, slices,
    progressive, the three variable-rate ones; the zoo models left out share their trees with these, CWAM its wavefront
    with mbt2018 but its own networks), both coders where installed: files written here decode in a fresh process
    (the model loaded from its file, traced anew; executables from the run's compilation cache, as the jaxlic
    command would take them; test_mlicpp_codec's cross-process test compiles its own) to the same symbols and the
    same image, bit for bit. (Decoding on a simulated platform: test_crossplatform, for every
    registered model, and through the command line in a fresh process.)"""
    import subprocess
    import sys
    from jaxlic.codec import to_uint8
    from jaxlic.coding.coders import available_coders
    from jaxlic.export import save_model
    jobs, expected = [], {}
    rng = np.random.default_rng(11)
    for fixture in ["bmshj2018_factorized", "mbt2018", "cheng2020_anchor_checkerboard", "elic2022_official", "cwam",
                    "stf_zigzag", "bmshj2018_hyperprior_vbr", "mbt2018_mean_vbr", "mbt2018_vbr", "tcm", "hpcm_base"]:
        # the codec test_round_trip_any_size uses where it runs in this worker; sizes up to 64x64 share its
        # compiled plan for 1x1 (and the coders share it here)
        name, config, model, variables, here = _codec(fixture)
        ckpt = tmp_path / f"{fixture}.npz"
        save_model(str(ckpt), name, config, variables, model.build_tables(variables))
        img = rng.integers(0, 256, (int(rng.integers(1, 65)), int(rng.integers(1, 65)), 3), dtype=np.uint8)
        for coder in available_coders():
            e = here.encode(img, coder, **({"level": 3} if here.rated else {}))  # the rate comes with the file
            sym = e.symbols
            path = tmp_path / f"{fixture}_{coder}.jlc"
            path.write_bytes(e.data)
            out = tmp_path / f"{fixture}_{coder}.npz"
            jobs.append({"checkpoint": str(ckpt), "file": str(path), "out": str(out)})
            expected[str(out)] = (sym, here.decompress(path.read_bytes()))
    subprocess.run([sys.executable, "-c", _DECODE_ALL, json.dumps(jobs)], check=True, timeout=900)
    for out, (sym, image) in expected.items():
        with np.load(out) as f:
            for k in sym:
                np.testing.assert_array_equal(f[k], sym[k], err_msg=f"{out} {k}")
            np.testing.assert_array_equal(to_uint8(f["x"]), image, err_msg=out)


def test_plan_scatter_and_gather_skip_padding():
    """Padding positions (-1) are neither written nor read: the buffer keeps its values there."""
    from jaxlic.plan import gather, scatter
    buf = jnp.arange(12, dtype=jnp.float32).reshape(1, 2, 2, 3)
    pos = jnp.asarray([5, -1, 0, -1], jnp.int32)
    out = np.asarray(scatter(buf, pos, jnp.asarray([50.0, 99.0, 70.0, 98.0])))
    ref = np.arange(12, dtype=np.float32)
    ref[5], ref[0] = 50.0, 70.0
    np.testing.assert_array_equal(out.reshape(-1), ref)
    np.testing.assert_array_equal(np.asarray(gather(buf, pos)), [5.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("h,w", [(1, 1), (1, 7), (5, 2), (8, 4), (32, 48), (13, 100)])
def test_wavefront_schedule(h, w):
    """Every position once; each after all its type-A 5x5 context positions; the real positions of a step are a
    prefix of its padded ones (the bucketed steps compute only that prefix) and fit the largest bucket."""
    from jaxlic.layers.conv import context_mask
    from jaxlic.plan import wavefront_buckets, wavefront_count, wavefront_rows_cols, wavefront_size
    step = np.full((h, w), -1)
    for t in range(wavefront_count(h, w)):
        i, j, valid = (np.asarray(a) for a in wavefront_rows_cols(jnp.int32(t), h, w))
        n = int(valid.sum())
        assert valid[:n].all() and not valid[n:].any(), t  # (n = 0 where W < 3: t = 3i + 1, 3i + 2 are empty)
        assert (step[i[:n], j[:n]] == -1).all(), t
        step[i[:n], j[:n]] = t
    assert (step >= 0).all()
    assert wavefront_buckets(wavefront_size(h, w))[-1] == wavefront_size(h, w)
    mask = context_mask(5, "A")
    for i, j in np.ndindex(h, w):
        for di, dj in zip(*np.nonzero(mask)):
            a, b = i + di - 2, j + dj - 2
            if 0 <= a < h and 0 <= b < w:
                assert step[a, b] < step[i, j], ((i, j), (a, b))
