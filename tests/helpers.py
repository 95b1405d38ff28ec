"""Shared test helpers: models converted from the parity fixtures."""
import jax
import jax.numpy as jnp
import numpy as np

from conftest import fixture_dir
from jaxlic.registry import detect_model, get_spec


def converted(fixture: str, precision=jax.lax.Precision.HIGHEST):
    """(model name, config, model, variables, state_dict, outputs) for a parity fixture; the model and its
    configuration are detected from the official state_dict, so any fixture of a known model works."""
    d = fixture_dir(fixture)
    with np.load(d / "weights.npz") as f:
        sd = {k: f[k] for k in f.files}
    with np.load(d / "outputs.npz") as f:
        out = {k: f[k] for k in f.files}
    name, config = detect_model(sd)
    spec = get_spec(name)
    model = spec.build(**config, precision=precision)
    x = jax.ShapeDtypeStruct((1, model.downsampling, model.downsampling, 3), jnp.float32)
    template = jax.eval_shape(model.init, jax.random.key(0), x)
    variables = spec.convert(sd, template)
    return name, config, model, variables, sd, out


def assert_differ_only_near(name, got, ref, near) -> int:
    """Discrete outputs (symbols, table indexes) equal the official ones except where ``near`` marks the official
    input within float tolerance of a rounding boundary or a table threshold; returns how many differ."""
    diff = np.asarray(got) != np.asarray(ref)
    unexplained = diff & ~near
    print(f"{name}: {int(diff.sum())} of {diff.size} differ, {int(near.sum())} within tolerance of a boundary")
    assert not unexplained.any(), f"{name}: {int(unexplained.sum())} elements differ away from any boundary"
    return int(diff.sum())


def near_rounding(v, tol=1e-4):
    """Values within ``tol`` of a rounding boundary (x.5): their rounded symbol is float round-off's to decide."""
    return np.abs(np.abs(v - np.floor(v)) - 0.5) < tol


def near_table(scales, table, tol=1e-5):
    """Scales within ``tol`` (relative) of a threshold of the index (the lower bound is the first); scales clamped
    from well below the bound are decided."""
    s = np.asarray(scales, np.float64)
    return (np.abs(s[..., None] - table[None, :-1]) <= tol * table[None, :-1]).any(-1)


def assert_8bit_matches(decoded: np.ndarray, reference, margin: float = 1e-2) -> int:
    """``decoded`` (uint8) is ``reference`` (floats in [0, 1], an independent reconstruction) clipped and rounded
    to 8 bits, except where the reference lies within ``margin`` of a rounding step; returns how many differ."""
    v = np.clip(np.asarray(reference, np.float64), 0, 1) * 255
    near = np.abs(np.abs(v - np.floor(v)) - 0.5) <= margin
    assert decoded.dtype == np.uint8 and decoded.shape == v.shape, (decoded.dtype, decoded.shape, v.shape)
    diff = decoded != np.round(v)
    assert not (diff & ~near).any(), f"{int((diff & ~near).sum())} pixels differ from the reference"
    return int(diff.sum())


def padded_forward(model, variables, img: np.ndarray) -> dict:
    """The evaluation forward on ``img`` (H, W, 3) uint8, edge-padded here to the model's multiple: an
    independent route to what the codec must decode (the codec pads and steps through its own functions)."""
    h, w = img.shape[:2]
    m = model.downsampling
    x = np.pad(img[None].astype(np.float32) / 255, ((0, 0), (0, -h % m), (0, -w % m), (0, 0)), mode="edge")
    if id(model) not in _FORWARDS:  # a fresh jax.jit per call would compile the forward again for every image
        _FORWARDS[id(model)] = (model, jax.jit(model.apply))
    return _FORWARDS[id(model)][1](variables, x)


_FORWARDS: dict = {}


def latent_err(got, ref, name) -> float:
    """Relative error of a rounded latent, leaving out single-step flips (counted and printed): their source lies
    on a rounding boundary, where float32 round-off decides. At most max(2, 0.1 %) of the elements may flip."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    flip = np.abs(np.abs(got - ref) - 1.0) <= 1e-3
    print(f"{name}: {int(flip.sum())} of {flip.size} elements one step apart (rounding boundary)")
    assert flip.sum() <= max(2, flip.size // 1000), f"{name}: {int(flip.sum())} elements flipped"
    return float(np.abs(np.where(flip, 0, got - ref)).max() / np.abs(ref).max())


def raster_reference(model, variables, img):
    """CompressAI's serial decode of a masked-context model, written out: positions in raster order, each from
    the full masked convolution of everything decoded so far (no wavefront, no gathered taps)."""
    h, w = img.shape[:2]
    m = model.downsampling
    x = np.pad(img[None].astype(np.float32) / 255, ((0, 0), (0, -h % m), (0, -w % m), (0, 0)), mode="edge")
    ap = lambda fn, *a: model.apply(variables, *a, method=fn)
    lat = ap(lambda mm, x: mm.analysis(x), x)
    med = ap(lambda mm: mm.entropy_bottleneck.medians())
    z_hat = jnp.round(lat["z"] - med) + med
    params = ap(lambda mm, z: mm.h_s(z), z_hat)
    means_at = jax.jit(lambda y_hat: ap(lambda mm, y: jnp.split(mm.entropy_parameters(
        jnp.concatenate([params, mm.context_prediction(y)], -1)), 2, -1)[1], y_hat))
    y, y_hat = np.asarray(lat["y"]), np.zeros(lat["y"].shape, np.float32)
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            mu = np.asarray(means_at(y_hat))[0, i, j]
            y_hat[0, i, j] = np.round(y[0, i, j] - mu) + mu
    return np.asarray(ap(lambda mm, y: mm.synthesis(y), y_hat))


def assert_bits_match_streams(codec, latents: dict, container, rel: float = 0.01) -> dict:
    """The per-element code lengths the encoder reports (``EncodeResult.latents[f"{latent}_bits"]``, what
    ``jaxlic.Codec.encode`` and the bit-allocation maps are made of) add up, per stream, to the stream's real
    length within ``rel`` (plus the coder's termination: at most 64 bits a stream). Returns bits per stream."""
    plan = codec.plan(*container.image_size)
    totals = {t: 0.0 for t in codec.streams}
    for latent in plan.shapes:
        tables = {g.table for g in plan.groups if g.latent == latent}
        assert len(tables) == 1, f"latent {latent} is coded with several table families {tables}"
        totals[tables.pop()] += float(latents[f"{latent}_bits"].sum())
    for (t, bits), stream in zip(totals.items(), container.streams):
        real = 8 * len(stream)
        print(f"{t}: {bits:.0f} bits by element, {real} in the stream ({(real - bits) / max(real, 1):+.2%})")
        assert abs(real - bits) <= rel * real + 64, (t, bits, real)
    return totals


def tiny_config(name: str) -> dict:
    """A registered model's configuration at a tiny size (structure and coding tests)."""
    if name in ("stf-zigzag", "tcm", "hpcm"):
        import pathlib
        from jaxlic.training.config import load_config
        path = pathlib.Path(__file__).resolve().parents[1] / "configs" / f"{name.split('-')[0]}.py"
        return dict(load_config(f"{path}:tiny").model_config)
    return {"mlicpp": {"N": 8, "M": 64, "slice_num": 2}, "cwam": {"N": 8},
            "elic2022-official": {"N": 8, "M": 16, "groups": (2, 2, 4, 8)},
            "elic2022-chandelier": {"N": 8, "M": 16, "groups": (2, 2, 4, 8)}}.get(name, {"N": 8} if "cheng" in name
                                                                                     else {"N": 8, "M": 12})


def fixture_images(out: dict, fixture: str):
    """The fixture's input as 8-bit images (H, W, 3), one per batch element. The fixture format's input is an
    image / 255 (fixtures/README.md); one that is not cannot test a codec of 8-bit images and fails, by name."""
    from conftest import nhwc
    x = nhwc(out["x"])
    for b in range(x.shape[0]):
        img = np.round(x[b] * 255).astype(np.uint8)
        assert np.array_equal(img.astype(np.float32) / 255, x[b]), \
            f"{fixture}: input {b} is not an 8-bit image / 255, as the fixture format has it"
        yield b, img


class RoundTrip:
    """encode -> container bytes -> decode with one codec, and what both sides saw: ``sym`` and ``idx`` (per step
    group), ``enc`` / ``dec`` (the ``latents`` of each side's result), ``data``, ``container``, ``x_hat`` (the
    decoder's float image). Checks on the way what every round trip must hold: the decoder's symbols are the encoder's, the latent
    it hands the synthesis is the encoder's bit for bit, and the per-element bits add up to the streams."""

    def __init__(self, codec, img, coder: str = "constriction", **encode_kw):
        e = codec.encode(img, coder, details=True, **encode_kw)
        self.container, self.sym, self.idx, self.enc, self.data = e.container, e.symbols, e.indexes, e.latents, e.data
        assert_bits_match_streams(codec, self.enc, self.container)
        d = codec.decode(self.data, details=True)
        self.x_hat, self.dec = d.x_hat, d.latents
        for k in self.sym:
            np.testing.assert_array_equal(self.sym[k], d.symbols[k], err_msg=k)
            np.testing.assert_array_equal(self.idx[k], d.indexes[k], err_msg=k)
        np.testing.assert_array_equal(self.enc["y_hat"], self.dec["y_hat"])
        self.codec = codec

    def assert_decodes_to(self, y_hat, x_hat, label: str, tol: float = 1e-5, margin: float = 1e-2):
        """The decoded latent and image against independent ones (the official decompress's, or a forward's):
        the latent within ``tol`` (single rounding flips aside, ``latent_err``), the float image within ``tol``,
        the 8-bit image exactly (up to pixels within ``margin`` of a rounding step)."""
        from conftest import rel_err
        y_err = latent_err(self.dec["y_hat"][0], y_hat, f"{label} decoded y_hat")
        x_err = rel_err(np.clip(self.x_hat, 0, 1), x_hat)
        print(f"{label}: decoded y_hat {y_err:.2e}, x_hat {x_err:.2e}; {len(self.data)} bytes")
        assert y_err <= tol and x_err <= tol, (y_err, x_err)
        assert_8bit_matches(self.codec.decompress(self.data), x_hat, margin)


def assert_round_trips_and_batch(front, model, variables, sizes=((1, 1), (70, 45))):
    """A front-door codec (``jaxlic.Codec``) on random images of ``sizes`` (not multiples of the model's) with each
    installed coder: the decoder's symbols are the encoder's and the image the padded forward's in 8 bits; a batch
    of two (``compress`` of (2, H, W, 3)) gives the files of its images coded one by one, which decode alike."""
    from jaxlic.coding.coders import available_coders
    codec = front._engine
    rng = np.random.default_rng(3)
    for size in sizes:
        img = rng.integers(0, 256, size + (3,), dtype=np.uint8)
        ref = np.asarray(padded_forward(model, variables, img)["x_hat"])[0, :size[0], :size[1]]
        for coder in available_coders():
            e = codec.encode(img, coder)
            d = codec.decode(e.data)
            for k in e.symbols:
                np.testing.assert_array_equal(e.symbols[k], d.symbols[k], err_msg=f"{size} {coder} {k}")
            assert_8bit_matches(d.image, ref, margin=2e-2)
    h, w = sizes[-1]
    batch = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    files = front.compress(batch)
    assert files == [codec.encode(img).data for img in batch]
    for img, got in zip(batch, front.decompress(files)):
        assert_8bit_matches(got, np.asarray(padded_forward(model, variables, img)["x_hat"])[0, :h, :w], margin=2e-2)


def converted_param_count(name: str, config: dict, state_dict, size: int = 256) -> int:
    """Converts a state_dict of shapes (a manifest's) into ``name`` at ``config`` through ``jax.eval_shape`` (every
    key must map) and counts the parameters."""
    from jaxlic.registry import get_spec
    spec = get_spec(name)
    model = spec.build(**config)
    template = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
    variables = spec.convert(state_dict, template)  # raises on anything unmapped
    return sum(v.size for v in jax.tree_util.tree_leaves(variables["params"]))


def assert_presets_build(config_path: str, presets=("runlocal", "tiny")) -> None:
    """Each preset of a config file builds a model whose forward gives an image of its crop (traced, not run)."""
    from jaxlic.registry import get_spec
    from jaxlic.training.config import load_config
    for preset in presets:
        c = load_config(f"{config_path}:{preset}")
        model = get_spec(c.model).build(**c.model_config)
        x = jax.ShapeDtypeStruct((1, c.data.crop, c.data.crop, 3), jnp.float32)
        assert jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x)[0]["x_hat"], x).shape == x.shape

