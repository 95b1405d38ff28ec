"""Training end to end on the tiny config: steps, resume with identical losses, export for the codec."""
import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxlic.training.config import load_config, parse_arg
from jaxlic.training.trainer import Trainer, TrainingError

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, size in enumerate([(70, 90), (64, 64), (50, 80), (100, 70), (66, 66)]):  # (50, 80) is smaller than the crop
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(d / f"{i}.png")
    return d


def tiny(images, **over):
    c = load_config(str(ROOT / "configs" / "mbt2018_mean.py") + ":tiny")
    c.data.paths = (str(images),)
    for k, v in over.items():
        setattr(c, k, v)
    return c


def test_resume_continues_identically(images, tmp_path):
    full = Trainer(tiny(images), str(tmp_path / "a")).run(progress=False)
    assert [h["step"] for h in full] == [1, 2, 3]
    first = Trainer(tiny(images), str(tmp_path / "b")).run(steps=2, progress=False)
    rest = Trainer(tiny(images), str(tmp_path / "b")).run(progress=False)
    assert [h["step"] for h in first + rest] == [1, 2, 3]
    for a, b in zip(full, first + rest):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6), (a, b)
        assert a["bpp"] == pytest.approx(b["bpp"], rel=1e-6)
    assert (tmp_path / "a" / "model.npz").exists() and (tmp_path / "b" / "model.npz").exists()

    # the exported model compresses and decompresses
    from jaxlic.codec import Codec
    from jaxlic.export import load_model
    name, config, model, variables, tables = load_model(str(tmp_path / "a" / "model.npz"))
    codec = Codec(name, model, variables, tables, config)
    img = np.asarray(Image.open(images / "0.png"))
    out, sym = codec.decode_latents(codec.compress(img))
    assert out.shape == img.shape


def test_workdir_of_another_model_is_refused(images, tmp_path):
    Trainer(tiny(images), str(tmp_path)).run(steps=1, progress=False)
    other = tiny(images, model_config={"N": 8, "M": 16})
    with pytest.raises(TrainingError, match="another --workdir"):
        Trainer(other, str(tmp_path)).run(progress=False)


def test_parse_arg():
    a = parse_arg("lmbda=0.0067,runlocal", lmbda=0.013, runlocal=False, name="x")
    assert a.lmbda == 0.0067 and a.runlocal is True and a.name == "x"
    with pytest.raises(ValueError, match="unknown config argument"):
        parse_arg("bogus=1", lmbda=0.1)


_ONE_STEP = """
import json, sys
from jaxlic.training.config import load_config
from jaxlic.training.trainer import Trainer
import jax
c = load_config(sys.argv[1] + ":tiny")
c.data.paths = (sys.argv[2],)
c.batch_size = 8
h = Trainer(c, sys.argv[3]).run(steps=2, progress=False)
print(json.dumps({"devices": jax.device_count(), "loss": [m["loss"] for m in h], "bpp": [m["bpp"] for m in h]}))
"""


def test_eight_devices_match_one(images, tmp_path):
    """Data parallel over 8 simulated CPU devices gives the same losses as 1 device for the same global batch."""
    import json
    import os
    import subprocess
    import sys
    out = {}
    for n in (1, 8):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu"}
        p = subprocess.run([sys.executable, "-c", _ONE_STEP, str(ROOT / "configs" / "mbt2018_mean.py"), str(images),
                            str(tmp_path / f"w{n}")], capture_output=True, text=True, env=env, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        out[n] = json.loads(p.stdout.strip().splitlines()[-1])
    assert out[1]["devices"] == 1 and out[8]["devices"] == 8
    np.testing.assert_allclose(out[8]["loss"], out[1]["loss"], rtol=1e-5)
    np.testing.assert_allclose(out[8]["bpp"], out[1]["bpp"], rtol=1e-5)


def test_sigkill_resumes_from_last_committed_checkpoint(images, tmp_path):
    """A run killed with SIGKILL mid-training leaves only complete checkpoints and resumes from the newest."""
    import os
    import signal
    import subprocess
    import sys
    import time
    wd = tmp_path / "w"
    cmd = [sys.executable, str(ROOT / "train.py"), f"--config={ROOT / 'configs' / 'mbt2018_mean.py'}:tiny",
           f"--config.data.paths=('{images}',)", "--config.total_steps=400", "--config.ckpt_every=3",
           f"--workdir={wd}"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            steps = [d for d in (wd / "checkpoints").glob("*") if d.name.isdigit()] if (wd / "checkpoints").exists() else []
            if len(steps) >= 2:
                break
            time.sleep(0.2)
        assert len(steps) >= 2, "no checkpoints written in time"
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()
    committed = sorted(int(d.name) for d in (wd / "checkpoints").iterdir() if d.name.isdigit())
    c = tiny(images, total_steps=committed[-1] + 1, ckpt_every=3)
    history = Trainer(c, str(wd)).run(progress=False)  # restores the newest committed step, then one more
    assert [h["step"] for h in history] == [committed[-1] + 1]
