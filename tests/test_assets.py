"""The shipped models: present, tables frozen from exactly the stored weights, the CLI's default on a fresh
install, and better than JPEG (Pillow) on Kodak images."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import kodak_images
from jaxlic import assets

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", assets.SHIPPED)
def test_shipped_model_is_consistent(name):
    import jax
    from jaxlic.export import load_model
    path = assets.path(name)
    assert os.path.exists(path), f"{path} missing from the package"
    assert os.path.getsize(path) < 5_000_000
    model_name, config, model, variables, tables = load_model(path)
    assert model_name == "mbt2018-mean" and config == {"N": 64, "M": 96}
    rebuilt = model.build_tables(jax.device_get(variables))
    for k, t in tables.items():
        for field, v in t.as_variables().items():
            np.testing.assert_array_equal(v, rebuilt[k].as_variables()[field], err_msg=f"{name} {k} {field}")
    for leaf in jax.tree_util.tree_leaves(variables["params"]):  # float16 storage, float32 compute
        assert leaf.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(leaf), np.asarray(leaf).astype(np.float16).astype(np.float32))


def test_cli_default_model_round_trip(tmp_path):
    from PIL import Image
    img = np.asarray(Image.open(kodak_images()[22]))[100:260, 200:424]
    Image.fromarray(img).save(tmp_path / "a.png")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    for args in (["compress", tmp_path / "a.png", tmp_path / "a.jlc"],
                 ["decompress", tmp_path / "a.jlc", tmp_path / "b.png"]):
        p = subprocess.run([sys.executable, "-m", "jaxlic.cli", *map(str, args)], capture_output=True, text=True,
                           env=env, timeout=300)
        assert p.returncode == 0, p.stderr
    rec = np.asarray(Image.open(tmp_path / "b.png"))
    mse = np.mean((rec.astype(np.float64) - img) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 24  # a trained model, not noise
    assert os.path.getsize(tmp_path / "a.jlc") * 8 / (img.shape[0] * img.shape[1]) < 1.0


def test_shipped_models_beat_jpeg_on_kodak():
    """BD-rate (PSNR) of the shipped RD curve against Pillow JPEG on 6 Kodak images is negative."""
    import jaxlic
    from jaxlic.evaluation.anchors import pillow_curve
    from jaxlic.evaluation.bdrate import bd_rate
    from jaxlic.evaluation.rd import curve, evaluate, load_images
    images = [im for im in load_images(kodak_images()[0].parent)][::4]
    points = [evaluate(jaxlic.load(path), images, progress=False) for path in assets.available()]
    r = curve(points, "shipped", "")["results"]
    jpeg = pillow_curve([im for _, im in images], "jpeg", progress=False)["results"]
    bd = bd_rate(jpeg["bpp"], jpeg["psnr-rgb"], r["bpp"], r["psnr-rgb"])
    assert bd is not None and bd < 0, (bd, r, jpeg)
