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


def test_bd_rate_known_values():
    """A curve needing x times the rate at every quality has BD-rate (x - 1) * 100 % exactly (any interpolation
    of log-rate is shifted by log10(x)); a curve against itself gives 0; disjoint curves give None."""
    from jaxlic.evaluation.bdrate import bd_rate
    bpp = np.array([0.2, 0.45, 0.8, 1.3])
    ps = np.array([27.0, 30.5, 33.6, 36.4])
    assert bd_rate(bpp, ps, bpp, ps) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(bpp, ps, 0.8 * bpp, ps) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(bpp[::-1], ps[::-1], 1.25 * bpp, ps) == pytest.approx(25.0, abs=1e-9)  # any point order
    assert bd_rate(bpp, ps, bpp, ps + 20) is None
    assert bd_rate(bpp, ps, bpp[:1], ps[:1]) is None


def test_pillow_anchor_points_are_real_files():
    from PIL import Image
    import io
    from jaxlic.evaluation.anchors import pillow_curve, pillow_roundtrip
    rng = np.random.default_rng(0)
    img = np.clip(np.cumsum(rng.integers(-8, 9, (64, 96, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    n, rec = pillow_roundtrip(img, "jpeg", 50)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=50)
    assert n == len(buf.getvalue())
    np.testing.assert_array_equal(rec, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    c = pillow_curve([img, img[:, ::-1]], "webp", qualities=(10, 90), progress=False)["results"]
    assert c["bpp"][0] < c["bpp"][1] and c["psnr-rgb"][0] < c["psnr-rgb"][1]
