"""Parity with the official models: max relative error of every forward output per fixture, float32, HIGHEST.

    python benchmarks/parity.py [--shared ../shared] [--json OUT.json]

For each fixture of a registered model in ``$JAXLIC_SHARED/fixtures`` (the model and its configuration are
detected from the official state_dict): max |ours - official| / max |official| per output of the evaluation
forward on the fixture's input and, where the fixture has them, of the real codec (the latent g_s receives
after decoding, and the decoded image). The tests (``pytest -m parity``) assert these stay <= 1e-5 and also check the
codec's symbols and indexes; this writes the numbers the README quotes.
"""
from __future__ import annotations

import argparse
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from common import write
from jaxlic import xla_cpu
from jaxlic.registry import detect_model, get_spec

# our forward's output -> the fixtures' outputs.npz key
OUTPUTS = {"y": "y", "z": "z", "z_hat": "z_hat", "hyper": "hyper_params", "scales": "scales_hat",
           "means": "means_hat", "y_hat": "y_hat", "x_hat": "x_hat"}


def rel_err(a, ref) -> float:
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-30))


def fixture_errors(d: pathlib.Path) -> dict:
    with np.load(d / "weights.npz") as f:
        sd = {k: f[k] for k in f.files}
    with np.load(d / "outputs.npz") as f:
        out = {k: f[k].transpose(0, 2, 3, 1) if f[k].ndim == 4 else f[k] for k in f.files}
    name, config = detect_model(sd)
    spec = get_spec(name)
    model = spec.build(**config, precision=jax.lax.Precision.HIGHEST)
    x = out["x"]
    template = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(x.shape, jnp.float32))
    variables = spec.convert(sd, template)
    if getattr(model, "rated", False):  # a variable-rate model: every recorded rate, the worst of them
        errors = rated_errors(name, config, model, variables, out)
        return {"model": name, "config": config, "input": list(x.shape), "max_relative_error": errors}
    with jax.default_matmul_precision("highest"):
        got = xla_cpu.jit(model.apply)(variables, jnp.asarray(x))
    if "zigzag_order" in out:  # Shen & Liu: per-chunk outputs (B, K, C, h, w), y likelihoods in chunk order
        errors = chunked_errors(model, variables, got, out)
    else:
        errors = {k: rel_err(got[k], out[ref]) for k, ref in OUTPUTS.items() if k in got and ref in out}
        for k in got["likelihoods"]:
            errors[f"{k}_likelihoods"] = rel_err(got["likelihoods"][k], out[f"{k}_likelihoods"])
    if "codec_dec_y_hat" in out:  # CompressAI's real codec: the latent its g_s receives, the decoded image
        errors.update(codec_errors(name, config, model, variables, out))
    return {"model": name, "config": config, "input": list(x.shape), "max_relative_error": errors}


def rated_errors(name, config, model, variables, out) -> dict:
    """Per output, the largest error over the fixture's rates (``rK_``): the forward at each rate's gain and
    the real codec at that gain (the latent g_s receives after decoding, and the decoded image)."""
    from jaxlic.codec import Codec
    codec = Codec(name, model, variables, model.build_tables(variables), config)
    forward = xla_cpu.jit(lambda v, x, g: model.apply(v, x, gain=g))
    pairs = dict(OUTPUTS, offsets="quant_offset_raw")
    errors: dict = {}
    worst = lambda k, e: errors.__setitem__(k, max(errors.get(k, 0.0), e))
    for r in sorted(int(k[1:-5]) for k in out if k.startswith("r") and k.endswith("_gain")):
        g = np.float32(out[f"r{r}_gain"].reshape(()))
        with jax.default_matmul_precision("highest"):
            got = forward(variables, jnp.asarray(out["x"]), g)
        # what depends on the rate is recorded per rate (rK_), the rest (y, z; mbt2018-vbr's z_hat) once
        at = lambda ref: f"r{r}_{ref}" if f"r{r}_{ref}" in out else ref
        for k, ref in pairs.items():
            if k in got and at(ref) in out:
                worst(k, rel_err(got[k], out[at(ref)]))
        for k in got["likelihoods"]:
            worst(f"{k}_likelihoods", rel_err(got["likelihoods"][k], out[at(f"{k}_likelihoods")]))
        for b in range(out["x"].shape[0]):
            img = np.round(out["x"][b] * 255).astype(np.uint8)
            d = codec.decode(codec.compress(img, gain=float(g)), details=True)
            worst("codec_y_hat", rel_err(d.latents["y_hat"][0], out[f"r{r}_codec_dec_y_hat"][b]))
            worst("codec_x_hat", rel_err(np.clip(d.x_hat, 0, 1), out[f"r{r}_codec_x_hat"][b]))
    return errors


def chunked_errors(model, variables, got, out) -> dict:
    split = lambda t: np.asarray(model.apply(variables, t, method=lambda m, t: jnp.stack(m.contexts.split(t))))
    chunks = lambda a: np.moveaxis(a, [1, 2], [0, 4])  # (B, K, C, h, w) -> (K, B, h, w, C)
    errors = {k: rel_err(got[k], out[k]) for k in ("y", "z", "z_hat", "y_hat", "x_hat")}
    errors.update({k: rel_err(split(got[k]), chunks(out[ref])) for k, ref in (("means", "means_hat"),
                                                                             ("scales", "scales_hat"))})
    b, h, w, _ = out["y_likelihoods"].shape
    K = len(model.chunk_keys)
    lik = out["y_likelihoods"].reshape(b, h, w, K, -1).transpose(3, 0, 1, 2, 4)
    errors["y_likelihoods"] = rel_err(split(got["likelihoods"]["y"]), lik)
    errors["z_likelihoods"] = rel_err(got["likelihoods"]["z"], out["z_likelihoods"])
    return errors


def codec_errors(name, config, model, variables, out) -> dict:
    from jaxlic.codec import Codec
    codec = Codec(name, model, variables, model.build_tables(variables), config)
    y_err = x_err = 0.0
    for b in range(out["x"].shape[0]):
        img = np.round(out["x"][b] * 255).astype(np.uint8)
        d = codec.decode(codec.compress(img), details=True)
        x_hat, dec = d.x_hat, d.latents
        y_err = max(y_err, rel_err(dec["y_hat"][0], out["codec_dec_y_hat"][b]))
        ref = out["codec_x_hat"][b]
        clamped = ref.min() >= 0 and ref.max() <= 1  # CompressAI clamps its decoded image, MLIC++ does not
        x_err = max(x_err, rel_err(np.clip(x_hat, 0, 1) if clamped else x_hat, ref))
    return {"codec_y_hat": y_err, "codec_x_hat": x_err}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = pathlib.Path(__file__).resolve().parents[1]
    p.add_argument("--shared", default=os.environ.get("JAXLIC_SHARED", str(root.parent / "shared")))
    p.add_argument("--json", default=None, help="default: benchmarks/results/parity.json")
    args = p.parse_args(argv)
    res = {}
    for d in sorted((pathlib.Path(args.shared) / "fixtures").iterdir()):
        if not (d / "weights.npz").exists():
            continue
        try:
            res[d.name] = fixture_errors(d)
        except ValueError as e:  # a fixture of a model jaxlic does not implement yet
            print(f"{d.name:24s} skipped: {str(e).splitlines()[0]}")
            continue
        errs = res[d.name]["max_relative_error"]
        print(f"{d.name:24s} " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    write({"fixtures": res}, args.json, "parity.json")


if __name__ == "__main__":
    main()
