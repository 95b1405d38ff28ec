"""The command line: real files, two processes, bad input reported in one clear line."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import KODAK, coder_params, fixture_dir, kodak_images

pytestmark = pytest.mark.slow


def run(*args, ok=True):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    p = subprocess.run([sys.executable, "-m", "jaxlic.cli", *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=300)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    weights = fixture_dir("mbt2018_mean") / "weights.npz"
    run("convert", weights, d / "m.npz", "--model", "mbt2018-mean", "--config", "N=32,M=48")
    run("init", d / "other.npz", "--model", "mbt2018-mean", "--config", "N=32,M=48", "--seed", "3")
    return d / "m.npz", d / "other.npz"


@pytest.mark.parametrize("coder", coder_params())
def test_two_processes_byte_identical_png(tmp_path, checkpoint, coder):
    src = kodak_images()[22]
    ck = checkpoint[0]
    run("compress", src, tmp_path / "a.jlc", "--checkpoint", ck, "--coder", coder)
    run("decompress", tmp_path / "a.jlc", tmp_path / "a.png", "--checkpoint", ck)
    run("decompress", tmp_path / "a.jlc", tmp_path / "b.png", "--checkpoint", ck)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    # and the same as decoding in this process
    from jaxlic.export import load_model
    from jaxlic.codec import Codec
    name, config, model, variables, tables = load_model(str(ck))
    img = Codec(name, model, variables, tables, config).decompress((tmp_path / "a.jlc").read_bytes())
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), img)
    info = run("info", tmp_path / "a.jlc").stdout
    assert "mbt2018-mean" in info and f"coder          : {coder}" in info and "512 x 768" in info


def error_line(p) -> str:
    """The one line a user error prints (exit status 2), nothing else on stderr."""
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("jaxlic: error: "), p.stderr
    return lines[0]


def test_bad_inputs_are_reported_clearly(tmp_path, checkpoint):
    ck, other = checkpoint
    (tmp_path / "notes.txt").write_text("not an image")
    p = run("compress", tmp_path / "notes.txt", tmp_path / "x.jlc", "--checkpoint", ck, ok=False)
    assert "cannot read" in error_line(p)
    p = run("compress", tmp_path / "missing.png", tmp_path / "x.jlc", "--checkpoint", ck, ok=False)
    assert p.returncode == 2 and "no such file" in p.stderr
    p = run("decompress", tmp_path / "notes.txt", tmp_path / "x.png", "--checkpoint", ck, ok=False)
    assert p.returncode == 2 and "not a jaxlic file" in p.stderr
    p = run("compress", KODAK / "kodim01.png", tmp_path / "x.jlc", "--checkpoint", tmp_path / "nope.npz", ok=False)
    assert p.returncode == 2 and "checkpoint not found" in p.stderr
    p = run("compress", KODAK / "kodim01.png", tmp_path / "x.jlc", "--checkpoint", tmp_path / "notes.txt", ok=False)
    msg = error_line(p)
    assert "not a jaxlic model checkpoint" in msg and "pickle" not in msg
    (tmp_path / "workdir" / "checkpoints").mkdir(parents=True)
    msg = error_line(run("compress", KODAK / "kodim01.png", tmp_path / "x.jlc", "--checkpoint", tmp_path / "workdir",
                         ok=False))
    assert "training workdir" in msg and f"jaxlic export {tmp_path / 'workdir'}" in msg
    # a file decoded with another checkpoint is refused, not decoded into garbage
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "s.png")
    run("compress", tmp_path / "s.png", tmp_path / "s.jlc", "--checkpoint", ck)
    p = run("decompress", tmp_path / "s.jlc", tmp_path / "s2.png", "--checkpoint", other, ok=False)
    assert p.returncode == 2 and "other weights" in p.stderr
    assert not (tmp_path / "s2.png").exists()
    # truncated file
    data = (tmp_path / "s.jlc").read_bytes()
    (tmp_path / "t.jlc").write_bytes(data[:len(data) // 2])
    p = run("decompress", tmp_path / "t.jlc", tmp_path / "t.png", "--checkpoint", ck, ok=False)
    assert p.returncode == 2 and ("truncated" in p.stderr or "checksum" in p.stderr)


def test_output_paths_checked_before_work(tmp_path, checkpoint):
    """An output that is a folder, or in a folder that does not exist, is refused before anything is encoded,
    naming the user's path; nothing is left behind. info / decompress of a missing file name it."""
    ck = checkpoint[0]
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "s.png")
    (tmp_path / "out").mkdir()
    msg = error_line(run("compress", tmp_path / "s.png", tmp_path / "out", "--checkpoint", ck, ok=False))
    assert f"{tmp_path / 'out'} is a folder" in msg and ".tmp" not in msg
    msg = error_line(run("compress", tmp_path / "s.png", tmp_path / "nope" / "a.jlc", "--checkpoint", ck, ok=False))
    assert f"folder {tmp_path / 'nope'} does not exist" in msg and ".tmp" not in msg
    # checked before any work: before the model is even loaded
    msg = error_line(run("compress", tmp_path / "s.png", tmp_path / "out", "--checkpoint", tmp_path / "x.npz", ok=False))
    assert "is a folder" in msg
    run("compress", tmp_path / "s.png", tmp_path / "s.jlc", "--checkpoint", ck)
    msg = error_line(run("decompress", tmp_path / "s.jlc", tmp_path / "out", "--checkpoint", ck, ok=False))
    assert "is a folder" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.jlc", "s.png"]
    assert list((tmp_path / "out").iterdir()) == []
    assert error_line(run("info", tmp_path / "missing.jlc", ok=False)) == \
        f"jaxlic: error: no such file: {tmp_path / 'missing.jlc'}"
    assert "no such file" in error_line(run("decompress", tmp_path / "missing.jlc", tmp_path / "m.png", ok=False))
    assert run("--version").stdout.strip().startswith("jaxlic 0.")


def test_image_modes_warn_when_information_is_dropped(tmp_path):
    from jaxlic.io import read_image
    rgba = np.random.default_rng(1).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with pytest.warns(UserWarning, match="alpha"):
        out = read_image(str(tmp_path / "a.png"))
    np.testing.assert_array_equal(out, rgba[..., :3])
    g16 = (np.arange(30, dtype=np.uint16).reshape(5, 6) * 2000)
    Image.fromarray(g16).save(tmp_path / "g.png")
    with pytest.warns(UserWarning, match="8 bits"):
        out = read_image(str(tmp_path / "g.png"))
    np.testing.assert_array_equal(out[..., 0], np.round(g16 / 65535 * 255).astype(np.uint8))
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "p.png")
    with pytest.warns(UserWarning, match="palette"):
        assert read_image(str(tmp_path / "p.png")).shape == (5, 6, 3)
    Image.fromarray(rgba[..., 0], "L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "l.png")), np.repeat(rgba[..., :1], 3, -1))


def test_eval_writes_results_curve_anchors_and_bd_rate(tmp_path, checkpoint):
    """eval.py with two checkpoints: real file sizes and PSNRs per image, a two-point CompressAI curve, Pillow
    anchors, BD-rate against each anchor (recomputed here from the written curves), and the plot."""
    import csv
    import json
    rng = np.random.default_rng(2)
    imgs = {}
    for i, size in enumerate([(40, 50), (17, 64)]):
        imgs[f"im{i}.png"] = np.clip(np.cumsum(rng.integers(-9, 10, size + (3,)), axis=1) + 128, 0, 255
                                     ).astype(np.uint8)
        Image.fromarray(imgs[f"im{i}.png"]).save(tmp_path / f"im{i}.png")
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "eval.py", "--checkpoint", checkpoint[0], "--checkpoint", checkpoint[1],
                        "--images", tmp_path, "--out", out, "--quiet", "--visuals"], capture_output=True, text=True,
                       cwd=pathlib.Path(__file__).resolve().parents[1], timeout=600)
    assert p.returncode == 0, p.stderr
    assert "BD-rate" in p.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["name"] == "mbt2018-mean" and len(res["results"]["bpp"]) == 2
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == 4
    from jaxlic.codec import Codec
    from jaxlic.evaluation.bdrate import bd_rate
    from jaxlic.evaluation.metrics import psnr
    from jaxlic.export import load_model
    means = []
    for ck in checkpoint:
        name, config, model, variables, tables = load_model(str(ck))
        codec = Codec(name, model, variables, tables, config)
        mine = [r for r in rows if r["checkpoint"] == str(ck)]
        for r in mine:
            img = imgs[r["image"]]
            data = codec.compress(img)
            assert int(r["bytes"]) == len(data)
            assert abs(float(r["bpp"]) - 8 * len(data) / (img.shape[0] * img.shape[1])) < 1e-9
            assert abs(float(r["psnr-rgb"]) - float(psnr(img, codec.decompress(data)))) < 1e-4
        means.append(np.mean([float(r["bpp"]) for r in mine]))
    np.testing.assert_allclose(res["results"]["bpp"], sorted(means), rtol=1e-12)
    bd = json.loads((out / "bd_rate.json").read_text())
    assert set(bd) == {"jpeg", "webp"}  # not Kodak: no published anchors
    for a in ("jpeg", "webp"):
        c = json.loads((out / "anchors" / f"{a}.json").read_text())["results"]
        assert bd[a] == bd_rate(c["bpp"], c["psnr-rgb"], res["results"]["bpp"], res["results"]["psnr-rgb"])
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --visuals: one static page with the RD plot and a figure per image, all beside it
    page = (out / "visuals" / "index.html").read_text()
    for src in ("rd.png", "im0.png", "im1.png"):
        assert f"src='{src}'" in page
        assert (out / "visuals" / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_dataset_and_export(tmp_path, checkpoint):
    import tensorflow_datasets as tfds
    for i in range(3):
        Image.fromarray(np.full((20 + i, 30, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    run("build-dataset", "mine", "--split", f"train={tmp_path}", "--split", f"extra={tmp_path}", "--data-dir",
        tmp_path / "tfds")
    src = tfds.data_source("local_images/mine", split="extra", data_dir=str(tmp_path / "tfds"))
    assert len(src) == 3
    assert "SPLIT=DIR" in run("build-dataset", "x", "--split", "nonsense", ok=False).stderr
    # float16 export: half the size, loads as float32, still decodes what it encodes
    run("export", checkpoint[0], tmp_path / "h.npz", "--half")
    assert os.path.getsize(tmp_path / "h.npz") < 0.7 * os.path.getsize(checkpoint[0])
    img = np.asarray(Image.open(KODAK / "kodim01.png"))[:64, :96] if KODAK.exists() else \
        np.random.default_rng(0).integers(0, 256, (64, 96, 3), np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    run("compress", tmp_path / "a.png", tmp_path / "a.jlc", "--checkpoint", tmp_path / "h.npz")
    run("decompress", tmp_path / "a.jlc", tmp_path / "b.png", "--checkpoint", tmp_path / "h.npz")
    p = run("export", tmp_path, tmp_path / "x.npz", ok=False)
    assert p.returncode == 2 and "no checkpoints/ in" in p.stderr


def test_user_errors_one_line_bugs_a_traceback(capsys):
    """Bad input: one line, status 2. Anything else is a bug: the traceback and a request to report it, status 1
    (not a tidy line that hides it)."""
    from jaxlic.errors import UserError, report

    def bad_input():
        raise UserError("no such file: x.png")

    def bug():
        return {}["missing"]
    assert report("jaxlic", bad_input) == 2
    assert capsys.readouterr().err == "jaxlic: error: no such file: x.png\n"
    assert report("jaxlic", bug) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'missing'" in err and "this is a bug in jaxlic" in err


def test_init_config_errors_and_lists(tmp_path, capsys):
    """--config: a value that is not a number, a quality the model lacks, ELIC groups that do not sum to M are
    one-line errors naming the problem; a list a/b/c gives ELIC's groups."""
    from jaxlic.cli import main
    out = tmp_path / "m.npz"
    for model, config, says in (("mbt2018", "N=a", "bad --config item 'N=a'"),
                                ("mbt2018", "quality=9", "mbt2018 has qualities"),
                                ("elic2022-official", "N=8,M=16", "must be positive and sum to M=16"),
                                ("elic2022-official", "N=8,M=16,groups=2/2/x", "a list is ints separated by /")):
        assert main(["init", str(out), "--model", model, "--config", config]) == 2
        err = capsys.readouterr().err
        assert err.startswith("jaxlic: error: ") and says in err and err.count("\n") == 1, err
        assert not out.exists()
    from jaxlic.cli import _parse_config
    from jaxlic.registry import get_spec
    config = _parse_config("N=8,M=16,groups=2/2/4/8")
    assert config == {"N": 8, "M": 16, "groups": [2, 2, 4, 8]}
    assert get_spec("elic2022-official").build(**config).group_sizes == (2, 2, 4, 8)
