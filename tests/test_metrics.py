"""MS-SSIM against tf.image.ssim_multiscale (reference environment) and closed forms; PSNR."""
import numpy as np
import pytest
from PIL import Image

from conftest import kodak_images
from jaxlic.evaluation.metrics import MS_SSIM_WEIGHTS, ms_ssim, psnr


def test_ms_ssim_matches_tensorflow():
    tf = pytest.importorskip("tensorflow", reason="tf.image.ssim_multiscale lives in the reference environment")
    rng = np.random.default_rng(0)
    files = kodak_images()[:4]
    crops = [(256, 256), (257, 300), (200, 333), (512, 512)]
    for path, (h, w) in zip(files, crops):
        a = np.asarray(Image.open(path).convert("RGB"))[:h, :w].astype(np.float32)
        batch_a = np.stack([a, a[::-1].copy()])
        batch_b = np.clip(batch_a + rng.normal(0, rng.uniform(2, 30), batch_a.shape), 0, 255).astype(np.float32)
        ref = tf.image.ssim_multiscale(batch_a, batch_b, 255.0).numpy()
        got = np.asarray(ms_ssim(batch_a, batch_b, 255.0))
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_ms_ssim_closed_forms():
    x = np.ones((1, 200, 180, 3), np.float32)
    assert float(ms_ssim(x * 0.3, x * 0.3)[0]) == pytest.approx(1.0, abs=1e-6)
    # constant images: every contrast-structure term is c2/c2 = 1, so MS-SSIM = luminance ** last weight
    a, b, c1 = 0.3, 0.6, 0.01 ** 2
    lum = (2 * a * b + c1) / (a * a + b * b + c1)
    assert float(ms_ssim(x * a, x * b)[0]) == pytest.approx(lum ** MS_SSIM_WEIGHTS[-1], rel=1e-5)
    with pytest.raises(ValueError, match="at least"):
        ms_ssim(x[:, :100], x[:, :100])


def test_psnr_known_value():
    a = np.zeros((1, 4, 4, 3), np.float32)
    b = a + 255.0 / 10  # MSE = (25.5)^2 -> PSNR = 20 dB
    assert float(psnr(a, b)[0]) == pytest.approx(20.0, abs=1e-5)
