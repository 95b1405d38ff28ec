"""The evaluation package behind eval.py: the Pillow anchor curves are computed once per image set."""
import numpy as np
import pytest

from jaxlic.evaluation import anchors


def test_anchor_curves_cached_per_image_set(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(2)]
    first = anchors.cached_pillow_curve(images, "jpeg", (20, 80), progress=False, cache_dir=str(tmp_path))
    assert first == anchors.pillow_curve(images, "jpeg", (20, 80), progress=False)
    assert [p.suffix for p in tmp_path.iterdir()] == [".json"]  # one entry, no temporary file left

    def recompute(*a, **k):
        raise AssertionError("computed again")
    monkeypatch.setattr(anchors, "pillow_curve", recompute)
    assert anchors.cached_pillow_curve(images, "jpeg", (20, 80), progress=False, cache_dir=str(tmp_path)) == first
    changed = [images[0], images[1].copy()]
    changed[1][0, 0] ^= 1  # one pixel of one image: another image set
    for args in ((changed, "jpeg", (20, 80)), (images, "webp", (20, 80)), (images, "jpeg", (20, 81))):
        with pytest.raises(AssertionError, match="computed again"):
            anchors.cached_pillow_curve(*args, progress=False, cache_dir=str(tmp_path))


def test_batched_ms_ssim_is_per_image_ms_ssim():
    """One call per image size gives each pair's own MS-SSIM (checked against TF in test_metrics), NaN where an
    image is too small for five scales."""
    from jaxlic.evaluation.rd import ms_ssim_rgb, ms_ssim_rgb_batch
    rng = np.random.default_rng(1)
    a = [rng.integers(0, 256, s + (3,), dtype=np.uint8) for s in [(176, 180), (180, 176), (176, 180), (40, 40)]]
    b = [np.clip(x.astype(int) + rng.integers(-20, 21, x.shape), 0, 255).astype(np.uint8) for x in a]
    got = ms_ssim_rgb_batch(a, b)
    want = [ms_ssim_rgb(x, y) for x, y in zip(a, b)]
    np.testing.assert_allclose(got[:3], want[:3], rtol=1e-5)
    assert np.isnan(got[3]) and np.isnan(want[3])


def test_anchor_at_the_nearest_rate():
    """The Pillow quality whose file size is nearest the target, over all 100 qualities."""
    import io
    from PIL import Image
    from jaxlic.evaluation.visuals import at_rate
    rng = np.random.default_rng(4)
    img = np.clip(np.cumsum(rng.integers(-6, 7, (48, 64, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    for codec, fmt in (("jpeg", "JPEG"), ("webp", "WEBP")):
        sizes = {}
        for q in range(1, 101):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format=fmt, quality=q)
            sizes[q] = buf.tell()
        for target in (sizes[7] + 3, sizes[40], (sizes[60] + sizes[90]) // 2):
            q, n, rec = at_rate(img, codec, target)
            assert n == sizes[q] and rec.shape == img.shape
            assert abs(n - target) == min(abs(s - target) for s in sizes.values()), (codec, target, q)


def test_most_detailed_region():
    from jaxlic.evaluation.visuals import detailed_region
    img = np.full((100, 140, 3), 90, np.uint8)
    img[37:57, 81:101] = np.random.default_rng(0).integers(0, 256, (20, 20, 3))
    assert detailed_region(img, 20) == (37, 81, 20)
    assert detailed_region(img, 500)[2] == 100  # the window never exceeds the image
