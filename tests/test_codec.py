"""The real codec: exact round trips on Kodak, code length vs the model's likelihoods, any image size."""
import numpy as np
import pytest
from PIL import Image

from conftest import coder_params, kodak_images
from helpers import assert_8bit_matches, converted, padded_forward
from jaxlic.codec import Codec
from jaxlic.coding.container import read_container


@pytest.fixture(scope="module")
def codec():
    # CompressAI's MeanScaleHyperprior at its initialisation (weights of the parity fixture): untrained is fine.
    name, config, model, variables, _, _ = converted("mbt2018_mean", precision=None)
    return Codec(name, model, variables, model.build_tables(variables), config)


@pytest.mark.parametrize("coder", coder_params())
def test_kodak_round_trip_exact_and_near_ideal(codec, coder):
    """All 24 Kodak images: decoded symbols == encoded symbols, the decoded 8-bit image == the evaluation
    forward's reconstruction rounded, payload <= 1.01 x ideal (model likelihoods) + 8 bytes per stream."""
    import jax
    import jax.numpy as jnp
    forward = jax.jit(codec.model.apply)
    worst = 0.0
    for path in kodak_images():
        img = np.asarray(Image.open(path).convert("RGB"))
        e = codec.encode(img, coder)
        c, sym, d = e.container, e.symbols, codec.decode(e.data)
        for k in sym:
            np.testing.assert_array_equal(sym[k], d.symbols[k], err_msg=f"{path.name} {k}")
        r = forward(codec.variables, jnp.asarray(img[None] / 255.0, jnp.float32))
        assert_8bit_matches(d.image, np.asarray(r["x_hat"])[0])
        ideal = sum(float(-np.log2(np.asarray(r["likelihoods"][k], np.float64)).sum()) for k in ("y", "z")) / 8
        payload = sum(len(s) for s in c.streams)
        assert payload <= 1.01 * ideal + 8 * len(c.streams), (path.name, payload, ideal)
        worst = max(worst, payload / ideal)
    print(f"{coder}: worst payload / ideal over Kodak = {worst:.4f}")


@pytest.mark.parametrize("coder", coder_params())
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (65, 3), (64, 64), (70, 129)])
def test_any_size(codec, coder, size):
    """Any size: the decoded image is the evaluation forward's reconstruction of the image edge-padded to 64
    here, cropped and rounded to 8 bits."""
    rng = np.random.default_rng(sum(size))
    img = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    data = codec.compress(img, coder)
    c = read_container(data)
    assert c.image_size == size and c.coder == coder
    h, w = size
    ref = np.asarray(padded_forward(codec.model, codec.variables, img)["x_hat"])[0, :h, :w]
    assert_8bit_matches(codec.decompress(data), ref)


def test_rejects_non_rgb_arrays(codec):
    with pytest.raises(ValueError, match="uint8 RGB"):
        codec.compress(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        codec.compress(np.zeros((4, 4, 3), np.float32))


def test_compiled_plans_are_bounded(codec):
    """The per-size plans are a bounded cache: with room for one, a second padded size replaces the first, a
    size padding to the same shape reuses it, and the evicted size still round-trips (planned again)."""
    small = Codec(codec.name, codec.model, codec.variables, codec.tables, max_plans=1)
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, s + (3,), dtype=np.uint8) for s in ((10, 10), (70, 10)))
    small.compress(a)
    misses = small._compiled.misses
    small.compress(rng.integers(0, 256, (64, 30, 3), dtype=np.uint8))  # pads to 64 x 64 as well
    assert small._compiled.misses == misses and len(small._compiled) == 1
    small.compress(b)  # 128 x 64: replaces it
    assert small._compiled.misses == misses + 1 and len(small._compiled) == 1
    np.testing.assert_array_equal(small.decompress(small.compress(a)), codec.decompress(codec.compress(a)))
    assert small._compiled.misses == misses + 2
