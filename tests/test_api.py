"""The front door (``jaxlic.load`` -> ``jaxlic.Codec``): every kind of spec, clear errors for wrong ones, loading
that runs no code from a file, the decoder's pixel limit, batches, the forward and where the bits go."""
import os
import subprocess
import sys

import numpy as np
import pytest

import jaxlic
from conftest import KODAK, fixture_dir, kodak_images
from jaxlic import assets
from jaxlic.coding.container import read_container, write_container
from jaxlic.errors import UserError


@pytest.fixture(scope="module")
def shipped():
    return jaxlic.load(assets.DEFAULT)


@pytest.fixture(scope="module")
def image():
    return jaxlic.read_image(str(kodak_images()[6]))[64:224, 100:357]  # 160 x 257: not a multiple of 64


def _cli(*args):
    from jaxlic.cli import main
    return main([str(a) for a in args])


def test_every_kind_of_spec_gives_the_same_codec(tmp_path, shipped, image):
    """The default, a shipped name, its file, and the model name with its variables all write the same bytes; a
    file from ``Codec(name, variables, config)`` decodes with the ``jaxlic`` command (the configuration travels
    with the weights); ``Codec.save`` writes a file that loads to the same codec."""
    data = shipped.compress(image)
    assert jaxlic.load().compress(image) == data
    assert jaxlic.load(assets.path(assets.DEFAULT)).compress(image) == data
    own = jaxlic.Codec("mbt2018-mean", shipped.variables, {"N": 64, "M": 96})  # tables frozen here
    assert own.compress(image) == data
    assert jaxlic.load("mbt2018-mean", shipped.variables, config={"N": 64, "M": 96}).compress(image) == data
    (tmp_path / "a.jlc").write_bytes(own.compress(image))
    assert _cli("decompress", tmp_path / "a.jlc", tmp_path / "a.png") == 0
    np.testing.assert_array_equal(jaxlic.read_image(str(tmp_path / "a.png")), shipped.decompress(data))
    own.save(str(tmp_path / "m.npz"))
    assert jaxlic.load(str(tmp_path / "m.npz"), model="mbt2018-mean").compress(image) == data


@pytest.mark.parity
def test_official_checkpoints_load_as_pth_and_state_dict(tmp_path):
    """A CompressAI training checkpoint (epoch, loss, optimizer, aux optimizer and scheduler states, numpy
    scalars) loads through the weights-only loader; its state_dict as ``.npz`` gives the same codec."""
    torch = pytest.importorskip("torch")
    with np.load(fixture_dir("bmshj2018_factorized") / "weights.npz") as f:
        sd = {k: f[k] for k in f.files}
    net = {k: torch.from_numpy(v.copy()) for k, v in sd.items()}
    opt = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(4)}},
           "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0]}]}
    torch.save({"epoch": 7, "state_dict": net, "loss": torch.tensor(0.8), "best_loss": np.float64(0.75),
                "optimizer": opt, "aux_optimizer": opt,
                "lr_scheduler": {"best": float("inf"), "mode": "min", "_last_lr": [1e-4]}},
               tmp_path / "checkpoint_best_loss.pth.tar")
    np.savez(tmp_path / "sd.npz", **sd)
    img = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    a = jaxlic.load(str(tmp_path / "checkpoint_best_loss.pth.tar"))
    b = jaxlic.load(str(tmp_path / "sd.npz"), model="bmshj2018-factorized")
    assert a.name == b.name == "bmshj2018-factorized" and a.config == b.config
    assert a.compress(img) == b.compress(img)


@pytest.mark.parity
def test_wrong_specs_are_one_clear_line_naming_the_path(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    (tmp_path / "workdir" / "checkpoints").mkdir(parents=True)
    with np.load(fixture_dir("bmshj2018_factorized") / "weights.npz") as f:
        np.savez(tmp_path / "factorized.npz", **{k: f[k] for k in f.files})
    cases = {
        str(tmp_path / "missing.npz"): ({}, "checkpoint not found"),
        str(tmp_path / "notes.txt"): ({}, "not a jaxlic model checkpoint"),
        str(tmp_path / "workdir"): ({}, "training workdir"),
        str(tmp_path / "factorized.npz"): ({"model": "mbt2018"}, "holds a bmshj2018-factorized"),
        assets.path(assets.DEFAULT): ({"model": "mlicpp"}, "holds a mbt2018-mean checkpoint, not mlicpp"),
    }
    for path, (kw, what) in cases.items():
        with pytest.raises(UserError) as e:
            jaxlic.load(path, **kw)
        msg = str(e.value)
        assert path in msg and what in msg and "\n" not in msg, msg
    with pytest.raises(UserError, match="is a model name, not a file"):
        jaxlic.load("mlicpp")
    # a .pth where PyTorch is not installed
    (tmp_path / "m.pth").write_bytes(b"\x80\x02not really")
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" raises ImportError
    with pytest.raises(ImportError) as e:
        jaxlic.load(str(tmp_path / "m.pth"))
    assert str(tmp_path / "m.pth") in str(e.value) and "pip install 'jaxlic[torch]'" in str(e.value)


def _evil(torch, path, marker, legacy=False):
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)
    torch.save({"state_dict": {"g_a.0.weight": torch.zeros(2)}, "epoch": Evil()}, path,
               _use_new_zipfile_serialization=not legacy)


def test_a_pickle_that_would_run_code_runs_nothing(tmp_path):
    """In the API and the CLI (convert, and compress with it as checkpoint), for both PyTorch formats: refused
    with a line naming the file and the call it asks for; only an explicit trust option runs it (which shows
    the file really does run code)."""
    torch = pytest.importorskip("torch")
    marker = tmp_path / "ran"
    for legacy in (False, True):
        path = tmp_path / f"evil{int(legacy)}.pth.tar"
        _evil(torch, path, marker, legacy)
        with pytest.raises(UserError) as e:
            jaxlic.load(str(path))
        assert str(path) in str(e.value) and "system" in str(e.value) and "trust" in str(e.value)
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        for args in (["convert", path, tmp_path / "out.npz"],
                     ["compress", KODAK / "kodim01.png", tmp_path / "x.jlc", "--checkpoint", path]):
            p = subprocess.run([sys.executable, "-m", "jaxlic.cli", *map(str, args)], capture_output=True,
                               text=True, env=env, timeout=300)
            assert p.returncode == 2 and str(path) in p.stderr and "refused" in p.stderr, p.stderr
            assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert not marker.exists()
        assert sorted(f.name for f in tmp_path.iterdir() if f.suffix != ".tar") == []
    from jaxlic.convert.common import load_torch_state_dict
    load_torch_state_dict(str(tmp_path / "evil0.pth.tar"), trust=True)
    assert marker.exists()


def test_a_declared_size_over_the_limit_is_refused_at_once(tmp_path, shipped, image):
    """A header rewritten to 40000 x 40000 (valid CRC) is refused before any work, naming the limit; a
    limit raised by the user lets the decoder go on to the header's other checks."""
    c = read_container(shipped.compress(image))
    c.image_size = (40000, 40000)
    data = write_container(c)
    with pytest.raises(UserError, match="40000 x 40000.*over the decoder's limit of 89,478,485") as e:
        shipped.decompress(data)
    assert "\n" not in str(e.value)
    (tmp_path / "big.jlc").write_bytes(data)
    p = subprocess.run([sys.executable, "-m", "jaxlic.cli", "decompress", str(tmp_path / "big.jlc"),
                        str(tmp_path / "big.png")], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert p.returncode == 2 and "limit of 89,478,485 pixels" in p.stderr and "--max-pixels" in p.stderr
    assert not (tmp_path / "big.png").exists()
    small = jaxlic.load(assets.DEFAULT, max_pixels=1000)
    with pytest.raises(UserError, match="limit of 1,000 pixels"):
        small.decompress(shipped.compress(image))
    shipped.max_pixels = None
    try:
        with pytest.raises(UserError, match="latent layout"):  # goes on, and stops at the next check
            shipped.decompress(data)
    finally:
        shipped.max_pixels = jaxlic.DEFAULT_MAX_PIXELS


def test_batches_types_forward_and_evaluate(shipped, image):
    """A batch is its images one by one; floats are refused with how to convert; the forward pads and crops as
    the codec does (its reconstruction is the decoded image before rounding, its bpp close to the file's);
    ``evaluate`` reports the decoded images' own PSNR."""
    other = np.ascontiguousarray(image[::-1])
    one, two = shipped.compress(image), shipped.compress(other)
    assert shipped.compress(np.stack([image, other])) == [one, two] == shipped.compress([image, other])
    dec = shipped.decompress([one, two])
    np.testing.assert_array_equal(dec[0], shipped.decompress(one))
    with pytest.raises(ValueError, match="uint8"):
        shipped.compress(image.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        shipped.compress(image[..., 0])
    f = shipped.forward(image)
    np.testing.assert_allclose(shipped.forward(image.astype(np.float32) / 255).x_hat, f.x_hat, atol=1e-6)
    assert f.x_hat.shape == image.shape
    rounded = np.clip(np.round(f.x_hat * 255), 0, 255)
    assert np.mean(rounded != dec[0]) < 0.01  # the same function up to rounding steps
    assert abs(8 * len(one) / (image.shape[0] * image.shape[1]) - f.bpp) < 0.05 * f.bpp
    fb = shipped.forward(np.stack([image, other]))
    assert fb.x_hat.shape == (2,) + image.shape and fb.bpp.shape == (2,)
    np.testing.assert_allclose(fb.bpp[0], f.bpp, rtol=1e-5)
    r = shipped.evaluate([("a", image), ("b", other)])
    assert [row["image"] for row in r["images"]] == ["a", "b"]
    assert r["images"][0]["bytes"] == len(one)
    psnr = 10 * np.log10(255 ** 2 / np.mean((dec[1].astype(np.float64) - other) ** 2))
    assert abs(r["images"][1]["psnr-rgb"] - psnr) < 1e-3


def test_encode_reports_where_the_bits_go(shipped, image):
    """The code lengths add up to the y stream (within 1 %), the map keeps every bit (padding folded in) at the
    image's resolution, and its bits sit where the image has detail."""
    enc = shipped.encode(image)
    assert enc.data == shipped.compress(image)
    y = enc.bits["y"]
    assert y.shape == (12, 20, 96) and (y > 0).all()  # 160 x 257 pads to 192 x 320
    real = 8 * enc.stream_bytes["gaussian_conditional"]
    assert abs(y.sum() - real) <= 0.01 * real
    assert abs(enc.bits["z"].sum() - 8 * enc.stream_bytes["entropy_bottleneck"]) <= 64 + 0.01 * real
    m = enc.bit_map("y")
    assert m.shape == image.shape[:2]
    np.testing.assert_allclose(m.sum(), y.sum(), rtol=1e-9)
    np.testing.assert_allclose(enc.channel_bits("y").sum(), y.sum(), rtol=1e-9)
    # detail costs bits: the map's busiest and quietest 16 x 16 blocks differ in local contrast
    g = image.astype(np.float64).mean(-1)
    blocks = lambda a: a[:144, :256].reshape(9, 16, 16, 16).swapaxes(1, 2).reshape(9, 16, -1)
    rate, contrast = blocks(m).sum(-1).ravel(), blocks(g).std(-1).ravel()
    assert np.corrcoef(rate, contrast)[0, 1] > 0.5


def test_models_and_their_modules():
    names = jaxlic.models()
    assert {"mbt2018-mean", "mlicpp", "stf-zigzag", "cwam", "elic2022-official"} <= set(names)
    m = jaxlic.model("mbt2018-mean", N=16, M=24)
    assert (m.N, m.M) == (16, 24)
    assert "Minnen" in jaxlic.describe("mbt2018-mean")
    with pytest.raises(UserError, match="unknown model"):
        jaxlic.model("bpg")
    with pytest.raises(UserError, match="at least 32"):  # not a ZeroDivisionError from inside the attention
        jaxlic.init("mlicpp", N=8, M=12, slice_num=3)
