"""Every script in examples/ runs, as a user would run it (a fresh process, the shipped or tiny models), and says
what it should; README's quickstart is examples/quickstart.py verbatim."""
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, ROOT, SHARED, fixture_dir, kodak_images

EXAMPLES = ROOT / "examples"


def _run(*args, cwd=None, timeout=600):
    p = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def _unseen_image(tmp_path) -> pathlib.Path:
    """A photo no other test uses: the last BSDS500 test image, cropped to an odd size, as PNG."""
    from PIL import Image
    files = sorted((SHARED / "datasets" / "bsds500" / "test").glob("*.jpg"))
    if not files:
        pytest.fail(f"no BSDS500 test images in {SHARED / 'datasets' / 'bsds500' / 'test'}")
    with Image.open(files[-1]) as im:
        im.convert("RGB").crop((3, 5, 3 + 301, 5 + 203)).save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


def test_quickstart_equals_the_command_line(tmp_path):
    """The quickstart on an image no test has seen gives the bytes, bpp and PSNR of ``jaxlic compress`` /
    ``decompress`` on the same file."""
    photo = _unseen_image(tmp_path)
    out = _run(EXAMPLES / "quickstart.py", photo)
    n, bpp, psnr = re.fullmatch(r"(\d+) bytes, ([\d.]+) bpp, PSNR ([\d.]+) dB\n", out).groups()
    cli = _run("-m", "jaxlic.cli", "compress", photo, tmp_path / "photo.jlc")
    assert f": {n} bytes, {bpp} bpp" in cli, (out, cli)
    _run("-m", "jaxlic.cli", "decompress", tmp_path / "photo.jlc", tmp_path / "decoded.png")
    import jaxlic
    a, b = jaxlic.read_image(str(photo)), jaxlic.read_image(str(tmp_path / "decoded.png"))
    assert f"{float(jaxlic.psnr(a, b)):.2f}" == psnr
    codec = jaxlic.load()
    assert codec.compress(a) == (tmp_path / "photo.jlc").read_bytes()


def test_readme_quickstart_is_the_example():
    readme = (ROOT / "README.md").read_text()
    assert (EXAMPLES / "quickstart.py").read_text().strip() in readme


def test_convert_compressai_checkpoint(tmp_path):
    """A CompressAI zoo file (a state_dict saved by torch) converts on the fly, codes, and saves a model file
    that loads without torch to the same bytes."""
    torch = pytest.importorskip("torch")
    with np.load(fixture_dir("mbt2018_mean") / "weights.npz") as f:
        torch.save({k: torch.from_numpy(f[k].copy()) for k in f.files}, tmp_path / "mbt2018-mean-1-e522738d.pth.tar")
    photo = _unseen_image(tmp_path)
    out = _run(EXAMPLES / "convert_compressai.py", tmp_path / "mbt2018-mean-1-e522738d.pth.tar", photo,
               tmp_path / "model.npz")
    assert "jaxlic.Codec('mbt2018-mean'" in out and re.search(r"\d+ bytes, [\d.]+ bpp, PSNR", out), out
    assert (tmp_path / "model.npz").exists() and "wrote" in out


def test_inspect_entropy_model(tmp_path):
    """The shipped model's likelihoods and bits (their totals agree with the file), the bit-allocation picture;
    MLIC++ (the parity fixture's official weights, converted on the fly) adds its per-slice table."""
    img = kodak_images()[3]
    out = _run(EXAMPLES / "inspect_entropy_model.py", img, "--out", tmp_path / "bits.png")
    file_bpp, est = map(float, re.search(r"file: ([\d.]+) bpp \(([\d.]+) estimated\)", out).groups())
    assert abs(file_bpp - est) < 0.05 * file_bpp, out
    assert (tmp_path / "bits.png").stat().st_size > 10_000
    if not (FIXTURES / "mlicpp" / "weights.npz").exists():
        fixture_dir("mlicpp")  # fails where JAXLIC_SHARED is set
    from PIL import Image
    with Image.open(img) as im:
        im.crop((0, 0, 192, 128)).save(tmp_path / "small.png")
    out = _run(EXAMPLES / "inspect_entropy_model.py", tmp_path / "small.png", "--checkpoint",
               FIXTURES / "mlicpp" / "weights.npz", "--out", tmp_path / "bits2.png")
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+hyperprior", out, re.M)
    assert [int(r[0]) for r in rows] == [0, 1, 2], out
    y_bpp = float(re.search(r"^y: ([\d.]+) bpp;", out, re.M).group(1))
    assert abs(sum(float(a) + float(b) for _, a, b in rows) - y_bpp) < 1e-3 * len(rows) + 1e-3, out


def test_training_loop_learns(tmp_path):
    """Twenty-odd lines of model + RD loss + optax: the loss falls within 60 steps, and the result codes."""
    out = _run(EXAMPLES / "train_loop.py", SHARED / "datasets" / "bsds500" / "train", 60)
    losses = [float(v) for v in re.findall(r"loss ([\d.]+)", out)]
    assert len(losses) == 3 and losses[-1] < 0.5 * losses[0], out
    assert re.search(r"\d+ bytes \([\d.]+ bpp\), PSNR [\d.]+ dB", out), out
