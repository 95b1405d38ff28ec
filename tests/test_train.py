"""Training end to end on the tiny config: steps, resume with identical losses, export for the codec."""
import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxlic.errors import UserError
from jaxlic.training.config import load_config, parse_arg
from jaxlic.training.evaluators import rd_defaults
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


@pytest.fixture(scope="module")
def tfds_dir(images, tmp_path_factory):
    from jaxlic.data.tfds_images import build
    d = tmp_path_factory.mktemp("tfds")
    build("tiny", {"train": [str(images)]}, str(d))
    return d


def tiny_tfds(images, tfds_dir, **over):
    c = tiny(images, **over)
    c.data.update(source="tfds", name="local_images/tiny", data_dir=str(tfds_dir))
    c.evals.val.paths = (str(images),)  # validation every 2 steps; the best checkpoint goes to WORKDIR/best
    # a second evaluator, declared here only: every step, two images, no say in WORKDIR/best
    c.evals.two = rd_defaults(paths=(str(images),), crop=64, max_images=2, every=1)
    return c


def test_resume_continues_identically(images, tfds_dir, tmp_path):
    """The tiny config on the local TFDS builder: 3 steps, versus 2 steps + resume + 1 step."""
    full = Trainer(tiny_tfds(images, tfds_dir), str(tmp_path / "a")).run(progress=False)
    assert [h["step"] for h in full] == [1, 2, 3]
    first = Trainer(tiny_tfds(images, tfds_dir), str(tmp_path / "b")).run(steps=2, progress=False)
    rest = Trainer(tiny_tfds(images, tfds_dir), str(tmp_path / "b")).run(progress=False)
    assert [h["step"] for h in first + rest] == [1, 2, 3]
    for a, b in zip(full, first + rest):
        assert a.keys() == b.keys()
        for k in ("loss", "bpp", "psnr", "aux_loss") + tuple(k for k in a if k.startswith("val_")):
            assert a[k] == pytest.approx(b[k], rel=1e-6), (k, a, b)
    assert "val_loss" in full[1] and "val_loss" in full[2] and "val_loss" not in full[0]  # every 2 and at the end
    assert all("two_loss" in h and "two_bpp" in h for h in full) and full[0]["two_loss"] != full[1]["two_loss"]
    assert (tmp_path / "a" / "model.npz").exists() and (tmp_path / "b" / "model.npz").exists()

    # the best checkpoint by validation loss, exported for the codec
    from jaxlic.codec import Codec
    from jaxlic.export import load_model
    from jaxlic.training.trainer import export_workdir
    best_step = min((h for h in full if "val_loss" in h), key=lambda h: h["val_loss"])["step"]
    path, step = export_workdir(str(tmp_path / "a"), str(tmp_path / "best.npz"), best=True)
    assert step == best_step
    name, config, model, variables, tables = load_model(path)
    # the exported weights are the ones validated at that step: the same validation loss, recomputed from them
    t = Trainer(tiny_tfds(images, tfds_dir), str(tmp_path / "unused"))
    again = next(e for e in t.evaluators if e.name == "val").run(variables)
    logged = next(h for h in full if h["step"] == best_step)
    assert again["val_loss"] == pytest.approx(logged["val_loss"], rel=1e-5)
    codec = Codec(name, model, variables, tables, config)
    img = np.asarray(Image.open(images / "0.png"))
    from helpers import assert_8bit_matches, padded_forward
    ref = np.asarray(padded_forward(model, variables, img)["x_hat"])[0, :img.shape[0], :img.shape[1]]
    assert_8bit_matches(codec.decompress(codec.compress(img)), ref)

    # metrics.jsonl and the TensorBoard event file hold the same scalars
    import json
    logged = [json.loads(line) for line in open(tmp_path / "a" / "metrics.jsonl")]
    assert [m["step"] for m in logged if "loss" in m] == [1, 2, 3]
    events = _tensorboard_scalars(tmp_path / "a" / "tensorboard")
    for m in logged:
        for k, v in m.items():
            if k != "step":
                assert events[(k, m["step"])] == pytest.approx(v, rel=1e-6)


def _tensorboard_scalars(logdir):
    """Reads event files (TFRecord framing: length, crc, Event proto, crc) with tensorboardX's protos."""
    import struct
    from tensorboardX.proto import event_pb2
    out = {}
    for f in sorted(logdir.glob("events.out.tfevents.*")):
        data = f.read_bytes()
        i = 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            e = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            for v in e.summary.value:
                out[(v.tag, e.step)] = v.simple_value
    return out


def test_init_from_another_run(images, tmp_path):
    from jaxlic.export import init_variables, save_model
    c = tiny(images)
    model, variables, tables = init_variables(c.model, dict(c.model_config), __import__("jax").random.key(7))
    save_model(str(tmp_path / "m.npz"), c.model, dict(c.model_config), variables, tables)
    t = Trainer(tiny(images, init_from=str(tmp_path / "m.npz")), str(tmp_path / "w"))
    state = t._init_from(t.init_state(), str(tmp_path / "m.npz"))
    for a, b in zip(__import__("jax").tree_util.tree_leaves(state.params),
                    __import__("jax").tree_util.tree_leaves(variables["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = Trainer(tiny(images, model_config={"N": 8, "M": 16}), str(tmp_path / "x"))
    with pytest.raises(TrainingError, match="init_from .* holds"):
        other._init_from(other.init_state(), str(tmp_path / "m.npz"))


def test_ms_ssim_loss_and_checks(images):
    import jax.numpy as jnp
    from jaxlic.evaluation.metrics import ms_ssim
    from jaxlic.training.losses import rd_loss
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((2, 176, 176, 3), np.float32))
    x_hat = jnp.clip(x + 0.05 * jnp.asarray(rng.standard_normal(x.shape), jnp.float32), 0, 1)
    lik = {"y": jnp.full((2, 11, 11, 4), 0.25), "z": jnp.full((2, 3, 3, 2), 0.5)}
    loss, m = rd_loss(x, {"x_hat": x_hat, "likelihoods": lik}, 8.73, "ms-ssim")
    bpp = (2 * 11 * 11 * 4 * 2 + 2 * 3 * 3 * 2) / (2 * 176 * 176)
    want = 8.73 * (1 - float(jnp.mean(ms_ssim(x, x_hat)))) + bpp
    assert float(loss) == pytest.approx(want, rel=1e-6) and float(m["bpp"]) == pytest.approx(bpp, rel=1e-6)
    with pytest.raises(ValueError, match="MS-SSIM .* needs crops of at least 161"):
        Trainer(tiny(images, loss="ms-ssim"), "/tmp/unused")
    with pytest.raises(ValueError, match="loss must be one of"):
        Trainer(tiny(images, loss="l1"), "/tmp/unused")
    c = tiny(images)
    c.data.crop = 96
    with pytest.raises(ValueError, match="data.crop 96 must be a multiple of 64 for mbt2018-mean"):
        Trainer(c, "/tmp/unused")


def test_workdir_of_another_model_is_refused(images, tmp_path):
    Trainer(tiny(images), str(tmp_path)).run(steps=1, progress=False)
    other = tiny(images, model_config={"N": 8, "M": 16})
    with pytest.raises(TrainingError, match="another --workdir"):
        Trainer(other, str(tmp_path)).run(progress=False)


def test_stream_does_not_depend_on_run_length(images):
    """The documented two-stage recipe resumes with other steps: the batches (fresh, and after restoring the
    iterator's state in a run of another length) are the same whatever total_steps is."""
    short, long = (Trainer(tiny(images, total_steps=n), "/tmp/unused") for n in (3, 10 ** 7))
    a, b = iter(short.dataset()), iter(long.dataset())
    first = [next(a) for _ in range(7)]  # 7 batches of 2 from 5 images: three epochs
    for x in first:
        np.testing.assert_array_equal(x, next(b))
    state = a.get_state()
    want = [next(a) for _ in range(3)]
    c = iter(Trainer(tiny(images, total_steps=2 * 10 ** 6), "/tmp/unused").dataset())
    c.set_state(state)
    for x in want:
        np.testing.assert_array_equal(x, next(c))


def test_evaluators_declared_in_config():
    """``config.evals``: evaluators without images are off, an unknown type or two choosers of WORKDIR/best are
    refused by name, and a config from before ``evals`` (``val`` + ``eval_every``) still validates as ``val``."""
    import ml_collections
    from jaxlic.training.evaluators import declared
    c = load_config(str(ROOT / "configs" / "mbt2018_mean.py") + ":tiny")
    assert declared(c) == {}
    c.evals.val.paths = ("a",)
    c.evals.more = rd_defaults(paths=("b",), every=7)
    got = declared(c)
    assert sorted(got) == ["more", "val"] and got["val"].best and not got["more"].best and got["more"].every == 7
    c.evals.more.best = True
    with pytest.raises(UserError, match="at most one evaluator may set best"):
        declared(c)
    c.evals.more.update(best=False, type="psnr")
    with pytest.raises(UserError, match=r"evals.more.type must be one of \['rd'\]"):
        declared(c)
    old = ml_collections.ConfigDict({"val": {"paths": ("c",), "crop": 128, "max_images": 4}, "eval_every": 50})
    got = declared(old)["val"]
    assert (got.paths, got.crop, got.max_images, got.every, got.best) == (("c",), 128, 4, 50, True)


def test_two_stage_run_matches_one_run(images, tmp_path):
    """total_steps=2, then the same workdir resumed with total_steps=3, gives the losses of one 3-step run."""
    full = Trainer(tiny(images), str(tmp_path / "a")).run(progress=False)
    first = Trainer(tiny(images, total_steps=2), str(tmp_path / "b")).run(progress=False)
    rest = Trainer(tiny(images, total_steps=3), str(tmp_path / "b")).run(progress=False)
    assert [h["step"] for h in first + rest] == [1, 2, 3]
    for a, b in zip(full, first + rest):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6) and a["bpp"] == pytest.approx(b["bpp"], rel=1e-6)


def test_non_finite_loss_stops_with_step_and_term(images, tmp_path):
    """A NaN distortion weight makes the loss (and so the gradient) non-finite at the first step: the run stops
    there, naming the step and the terms, and the finite terms are not blamed."""
    import re
    with pytest.raises(TrainingError, match="non-finite") as e:
        Trainer(tiny(images, lmbda=float("nan")), str(tmp_path)).run(progress=False)
    m = re.search(r"non-finite ([\w, ]+) at step (\d+)", str(e.value))
    terms = m.group(1).split(", ")
    assert m.group(2) == "1" and "loss" in terms and "bpp" not in terms and "psnr" not in terms, str(e.value)


def test_sigterm_saves_exits_and_resumes(images, tmp_path):
    """SIGTERM mid-run: train.py saves the current step, exits cleanly (status 0) without exporting, and the
    same command resumes from that step."""
    import json
    import os
    import re
    import signal
    import subprocess
    import sys
    import time
    wd = tmp_path / "w"
    cmd = [sys.executable, str(ROOT / "train.py"), f"--config={ROOT / 'configs' / 'mbt2018_mean.py'}:tiny",
           f"--config.data.paths=('{images}',)", "--config.total_steps=100000", "--config.ckpt_every=100000",
           "--config.tensorboard=False", f"--workdir={wd}"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"})
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not ((wd / "metrics.jsonl").exists() and
                                              len((wd / "metrics.jsonl").read_text().splitlines()) >= 3):
            time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=300)
    finally:
        p.kill()
    assert p.returncode == 0, err[-3000:]
    saved = int(re.search(r"SIGTERM: saving step (\d+)", err).group(1))
    logged = [json.loads(line)["step"] for line in (wd / "metrics.jsonl").read_text().splitlines()]
    assert saved >= 3 and logged[-1] == saved
    assert max(int(d.name) for d in (wd / "checkpoints").iterdir() if d.name.isdigit()) == saved
    assert not (wd / "model.npz").exists()  # not finished: nothing exported
    history = Trainer(tiny(images, total_steps=saved + 2), str(wd)).run(progress=False)
    assert [h["step"] for h in history] == [saved + 1, saved + 2]


def test_config_steps_and_train_py_flags(tmp_path):
    """``steps`` is honoured by every preset; train.py --help exits 0; a bad config argument is one line, 2."""
    import subprocess
    import sys
    path = str(ROOT / "configs" / "mbt2018_mean.py")
    for preset in ("tiny", "runlocal", "cpu"):
        c = load_config(f"{path}:{preset},steps=50")
        assert c.total_steps == 50 and max(c.optim.decay_steps) < 50, preset
    assert subprocess.run([sys.executable, str(ROOT / "train.py"), "--help"], capture_output=True).returncode == 0
    p = subprocess.run([sys.executable, str(ROOT / "train.py"), f"--config={path}:tiny,bogus=1",
                        f"--workdir={tmp_path}"], capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "unknown config argument 'bogus'" in lines[0], p.stderr


def test_parse_arg():
    a = parse_arg("lmbda=0.0067,runlocal", lmbda=0.013, runlocal=False, name="x")
    assert a.lmbda == 0.0067 and a.runlocal is True and a.name == "x"
    with pytest.raises(ValueError, match="unknown config argument"):
        parse_arg("bogus=1", lmbda=0.1)


_FIVE_STEPS = """
import json, sys
import jax
from jaxlic.training.config import load_config
from jaxlic.training.sharding import bytes_per_device
from jaxlic.training.trainer import Trainer, export_workdir
config, images, workdir, mesh = sys.argv[1:5]
c = load_config(config + ":tiny")
c.data.paths = (images,)
c.batch_size, c.total_steps, c.ckpt_every = 8, 5, 5
if mesh == "fsdp":
    c.mesh = (("data", 2), ("fsdp", 4))
    c.sharding.min_size = 64  # the tiny model's arrays are small: shard all but biases and the like
t = Trainer(c, workdir)
h = t.run(progress=False)
out = {"devices": jax.device_count(), "loss": [m["loss"] for m in h], "bpp": [m["bpp"] for m in h]}
state = t.init_state()
out["param_opt_bytes"] = bytes_per_device((state.params, state.opt_state), (t.shardings.params, t.shardings.opt_state))
out["sharded"] = sum(any(a is not None for a in s.spec) for s in jax.tree_util.tree_leaves(t.shardings.params))
if len(sys.argv) > 5:  # another run's checkpoint on this mesh: resume it for one step, and export it
    c.total_steps = 6
    out["resumed"] = [m["step"] for m in Trainer(c, sys.argv[5]).run(progress=False)]
    out["exported"] = export_workdir(sys.argv[5], sys.argv[6])[1]
print(json.dumps(out))
"""


def test_fsdp_on_eight_devices_matches_one_device_and_restores_there(images, tmp_path):
    """Mesh data=2 x fsdp=4 on 8 simulated CPU devices: parameters and Adam's moments sharded four ways (a quarter
    of the bytes per device, small arrays replicated), the same losses as one device for the same global batch
    over 5 steps; its checkpoint resumes on one device and exports a model that compresses and decompresses with
    the jaxlic command."""
    import json
    import os
    import subprocess
    import sys
    config = str(ROOT / "configs" / "mbt2018_mean.py")
    run = lambda n, *args: subprocess.run(
        [sys.executable, "-c", _FIVE_STEPS, config, str(images), *map(str, args)], capture_output=True, text=True,
        timeout=600, env={**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}",
                          "JAX_PLATFORMS": "cpu"})
    p8 = run(8, tmp_path / "w8", "fsdp")
    assert p8.returncode == 0, p8.stderr[-3000:]
    p1 = run(1, tmp_path / "w1", "replicated", tmp_path / "w8", tmp_path / "m.npz")
    assert p1.returncode == 0, p1.stderr[-3000:]
    fsdp, one = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (p8, p1))
    assert fsdp["devices"] == 8 and one["devices"] == 1
    np.testing.assert_allclose(fsdp["loss"], one["loss"], rtol=1e-5)
    np.testing.assert_allclose(fsdp["bpp"], one["bpp"], rtol=1e-5)
    assert fsdp["sharded"] >= 10
    assert 0.25 <= fsdp["param_opt_bytes"] / one["param_opt_bytes"] < 0.27, (fsdp, one)
    assert one["resumed"] == [6] and one["exported"] == 6
    for args in (("compress", images / "1.png", tmp_path / "f.jlc"), ("decompress", tmp_path / "f.jlc",
                                                                       tmp_path / "out.png")):
        q = subprocess.run([sys.executable, "-m", "jaxlic.cli", *map(str, args), "--checkpoint", str(tmp_path / "m.npz")],
                           capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
        assert q.returncode == 0, q.stderr[-3000:]
    # the file decodes to the exported model's own evaluation forward (rounded latents) of the 64x64 image
    from jaxlic.codec import to_uint8
    from jaxlic.export import load_model
    _, _, model, variables, _ = load_model(str(tmp_path / "m.npz"))
    x = np.asarray(Image.open(images / "1.png"), np.float32)[None] / 255.0
    expected = to_uint8(np.asarray(model.apply(variables, x)["x_hat"][0]))
    decoded = np.asarray(Image.open(tmp_path / "out.png"))
    assert decoded.shape == expected.shape and np.abs(decoded.astype(int) - expected).max() <= 1


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


def _two_processes(images, wd, tmp_path, *flags):
    """train.py with --multihost on 2 CPU processes of one device each (gloo), coordinator on a free port."""
    import os
    import socket
    import subprocess
    import sys
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    return [subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), f"--config={ROOT / 'configs' / 'mbt2018_mean.py'}:tiny",
         f"--config.data.paths=('{images}',)", "--config.batch_size=4", "--config.tensorboard=False",
         f"--workdir={wd}", "--multihost", f"--coordinator=localhost:{port}", "--num_processes=2",
         f"--process_id={i}", f"--history={tmp_path / f'h{i}.json'}", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]


def _finish(procs, timeout=600):
    import subprocess
    errs = []
    for p in procs:
        try:
            errs.append(p.communicate(timeout=timeout)[1])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, err in zip(procs, errs):
        assert p.returncode == 0, err[-3000:]
    return errs


def test_two_processes_preempted_on_one_save_the_same_step_and_resume(images, tmp_path):
    """jax.distributed with 2 CPU processes (gloo collectives), each feeding its half of the global batch from its
    own slice of the images: both see the same losses. SIGTERM to process 1 (not the one that logs): JAX's
    preemption service has both agree on a step, both save it in the shared checkpoint and exit cleanly without
    exporting; the same two commands resume from that step and export at the end."""
    import json
    import re
    import signal
    import time
    wd = tmp_path / "w"
    procs = _two_processes(images, wd, tmp_path, "--config.total_steps=100000", "--config.ckpt_every=100000")
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not ((wd / "metrics.jsonl").exists() and
                                              len((wd / "metrics.jsonl").read_text().splitlines()) >= 3):
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGTERM)
        errs = _finish(procs)
    finally:
        for p in procs:
            p.kill()
    saved = [int(re.search(r"preemption: saving step (\d+)", err).group(1)) for err in errs]
    assert saved[0] == saved[1] >= 3, saved
    h = [json.loads((tmp_path / f"h{i}.json").read_text()) for i in range(2)]
    assert [m["step"] for m in h[0]] == [m["step"] for m in h[1]] == list(range(1, saved[0] + 1))
    for a, b in zip(*h):
        assert a["loss"] == b["loss"] and a["bpp"] == b["bpp"]
    assert max(int(d.name) for d in (wd / "checkpoints").iterdir() if d.name.isdigit()) == saved[0]
    assert not (wd / "model.npz").exists()
    _finish(_two_processes(images, wd, tmp_path, f"--config.total_steps={saved[0] + 2}"))
    for i in range(2):
        assert [m["step"] for m in json.loads((tmp_path / f"h{i}.json").read_text())] == [saved[0] + 1, saved[0] + 2]
    assert (wd / "model.npz").exists()


def test_compile_cache_keeps_the_most_recently_used():
    """The bounded cache of compiled steps: a hit moves an entry to the back, the oldest goes first, and a
    Trainer given its own cache builds into it (and nothing into the process's default)."""
    from jaxlic.cache import CompileCache
    built = []
    cache = CompileCache(maxsize=2)
    get = lambda k: cache.get(k, lambda: built.append(k) or k.upper())
    assert [get("a"), get("b"), get("a"), get("c")] == ["A", "B", "A", "C"]
    assert "a" in cache and "b" not in cache and "c" in cache and built == ["a", "b", "c"]
    get("b")
    assert "a" not in cache and built == ["a", "b", "c", "b"] and (cache.hits, cache.misses) == (1, 4)


def test_runs_share_compiled_steps_only_when_they_compute_the_same(images):
    """A second Trainer with the same model, loss, lambda, optimizer settings, crop and mesh reuses the first's
    jitted step, evaluation and initialisation (a resume in one process compiles nothing again); a change in
    any of them gets its own."""
    base = Trainer(tiny(images), "/tmp/unused")
    same = Trainer(tiny(images, total_steps=7, seed=3), "/tmp/unused")  # neither enters a compiled function
    assert (same._step, same._eval, same._init) == (base._step, base._eval, base._init)
    c = tiny(images)
    c.optim.lr *= 2
    others = [tiny(images, lmbda=0.5), tiny(images, loss="ms-ssim"), c, tiny(images, model_config={"N": 8, "M": 16})]
    others[1].data.crop = 192
    for other in others:
        t = Trainer(other, "/tmp/unused")
        assert t._step is not base._step and t._eval is not base._eval
