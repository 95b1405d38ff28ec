"""Training at scale: per-device memory of the training step under FSDP sharding, bfloat16 and rematerialisation.

    python benchmarks/scale.py --model mlicpp --json OUT.json [--devices 8] [--crops 256,512]
        [--fsdp 1,2,4,8] [--dtypes float32,bfloat16] [--remat off,on] [--batch-per-device 8]
        [--compile MESH:DTYPE:REMAT:CROP ...] [--step-time CONFIG_ARG]

Runs on ``--devices`` simulated CPU devices (``--xla_force_host_platform_device_count``, set before JAX starts).
The model is the config's official size (``configs/<model>.py``); the global batch is ``batch-per-device`` times
the devices. For every mesh (``fsdp`` 1: replicated over data; f: data = devices / f x fsdp = f), dtype, remat
and crop:

- ``param_opt_bytes_per_device``: parameters plus optimizer state one device holds (exact, from the shardings);
- ``temp_bytes_per_device``: the compiled step's temporaries (``compiled.memory_analysis()``; nothing runs),
  only for the configurations given by ``--compile`` (default: replicated and fsdp = devices, each dtype and remat,
  at every crop; a full-size step takes a minute or more to compile on a CPU);
- ``fits_16gib``: parameters, optimizer state, one batch and the temporaries within 16 GiB.

``--residuals ARG``: the bytes of activations JAX keeps for the backward pass (``print_saved_residuals``), remat
off and on, for ``configs/<model>.py:ARG``'s model at the first crop and ``batch-per-device`` images: what
rematerialisation saves before the compiler schedules anything.

``--step-time ARG``: also time the training step on this CPU for ``configs/<model>.py:ARG`` (e.g. ``runlocal``,
its own batch and crop) in float32 and bfloat16, remat off and on, data parallel over ``--devices`` (pass
``--devices 1 --no-memory`` for a real CPU's figure; medians of ``--steps`` after a warm-up).

JSON (a contract for scripts): ``configs``, a list of {mesh, dtype, remat, crop, batch_per_device,
param_opt_bytes_per_device, temp_bytes_per_device (null where not compiled), argument_bytes_per_device,
fits_16gib, compile_s}; ``step_time`` and ``residuals`` where measured.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
GIB = 2 ** 30


def _args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a config in configs/ (mlicpp, stf, ...)")
    p.add_argument("--json")
    p.add_argument("--devices", type=int, default=8)
    p.add_argument("--crops", default="256")
    p.add_argument("--fsdp", default="1,2,4,8")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--remat", default="off,on")
    p.add_argument("--batch-per-device", type=int, default=8)
    p.add_argument("--compile", nargs="*", default=None,
                   help="FSDP:DTYPE:REMAT:CROP entries to compile (default: fsdp 1 and devices, every dtype, "
                        "remat and crop)")
    p.add_argument("--step-time", default=None, metavar="CONFIG_ARG")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--no-memory", action="store_true", help="no per-mesh memory table")
    p.add_argument("--residuals", default=None, metavar="CONFIG_ARG",
                   help="also the activations kept for the backward pass, remat off and on, for "
                        "configs/<model>.py:CONFIG_ARG's model (first crop, batch-per-device)")
    return p.parse_args()


def _config(model: str, arg: str = ""):
    from jaxlic.training.config import load_config
    return load_config(str(ROOT / "configs" / f"{model}.py") + (f":{arg}" if arg else ""))


def _trainer(c, fsdp: int, devices: int, dtype: str, remat: bool, crop: int, batch_per_device: int, workdir: str):
    from jaxlic.training.trainer import Trainer
    c.mesh = (("data", devices // fsdp), ("fsdp", fsdp)) if fsdp > 1 else (("data", devices),)
    c.dtype, c.remat = dtype, remat
    c.data.crop = crop
    c.batch_size = batch_per_device * devices
    return Trainer(c, workdir)


def memory(args, tmp: str) -> list[dict]:
    from tqdm import tqdm
    from jaxlic.training.sharding import MIN_SIZE, bytes_per_device, tree_shardings
    from jaxlic.training.trainer import make_mesh
    crops = [int(x) for x in args.crops.split(",")]
    fsdps = [int(x) for x in args.fsdp.split(",") if args.devices % int(x) == 0]
    dtypes = args.dtypes.split(",")
    remats = [x == "on" for x in args.remat.split(",")]
    compile_set = ({(1, d, r, k) for d in dtypes for r in remats for k in crops} |
                   {(args.devices, d, r, k) for d in dtypes for r in remats for k in crops}) \
        if args.compile is None else {(int(f), d, r == "on", int(k)) for f, d, r, k in
                                      (e.split(":") for e in args.compile)}
    # parameters and optimizer state have one shape whatever the mesh, dtype, remat and crop: traced once
    t = _trainer(_config(args.model), 1, args.devices, "float32", False, crops[0], args.batch_per_device, tmp)
    state = t.abstract_state()
    tree = (state.params, state.opt_state)
    min_size, rules = t.c.sharding.min_size or MIN_SIZE, tuple(t.c.sharding.rules)
    rows = []
    todo = [(f, d, r, k) for k in crops for f in fsdps for d in dtypes for r in remats]
    for f, d, r, k in tqdm(todo, desc=args.model):
        mesh = (("data", args.devices // f), ("fsdp", f)) if f > 1 else (("data", args.devices),)
        row = {"mesh": [list(a) for a in mesh], "fsdp": f, "dtype": d, "remat": r, "crop": k,
               "batch_per_device": args.batch_per_device,
               "param_opt_bytes_per_device": bytes_per_device(tree, tree_shardings(make_mesh(mesh), tree, min_size,
                                                                                   rules)),
               "temp_bytes_per_device": None, "argument_bytes_per_device": None, "fits_16gib": None,
               "compile_s": None}
        if (f, d, r, k) in compile_set:
            t0 = time.perf_counter()
            trainer = _trainer(_config(args.model), f, args.devices, d, r, k, args.batch_per_device, tmp)
            assert bytes_per_device(tree, (trainer.shardings.params, trainer.shardings.opt_state)) == \
                row["param_opt_bytes_per_device"]  # the trainer shards as computed above
            analysis = trainer.compile_step().memory_analysis()
            row["compile_s"] = time.perf_counter() - t0
            row["temp_bytes_per_device"] = int(analysis.temp_size_in_bytes)
            row["argument_bytes_per_device"] = int(analysis.argument_size_in_bytes)
            row["fits_16gib"] = analysis.argument_size_in_bytes + analysis.temp_size_in_bytes <= 16 * GIB
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def _line(row: dict) -> str:
    gib = lambda b: "-" if b is None else f"{b / GIB:.2f}"
    return (f"fsdp {row['fsdp']}  {row['dtype']:8s}  remat {'on ' if row['remat'] else 'off'}  crop {row['crop']}: "
            f"params+opt {gib(row['param_opt_bytes_per_device'])} GiB, temp {gib(row['temp_bytes_per_device'])} "
            f"GiB, arguments {gib(row['argument_bytes_per_device'])} GiB"
            + ("" if row["fits_16gib"] is None else f", fits 16 GiB: {row['fits_16gib']}"))


def step_time(args, tmp: str) -> list[dict]:
    import statistics
    import jax
    import numpy as np
    out = []
    for dtype in ("float32", "bfloat16"):
        for remat in (False, True):
            c = _config(args.model, args.step_time)
            t = _trainer(c, 1, args.devices, dtype, remat, c.data.crop, c.batch_size // args.devices, tmp)
            state = t.init_state()
            batch = jax.device_put(np.random.default_rng(0).integers(
                0, 256, (c.batch_size, c.data.crop, c.data.crop, 3), np.uint8), t.batch_sharding)
            times, losses = [], []
            for i in range(args.steps + 1):
                t0 = time.perf_counter()
                state, m = t._step(state, batch)
                losses.append(float(m["loss"]))
                if i:
                    times.append(time.perf_counter() - t0)
            row = {"config": f"{args.model}:{args.step_time}", "dtype": dtype, "remat": remat,
                   "batch": c.batch_size, "crop": c.data.crop, "step_s": statistics.median(times), "loss": losses}
            print(f"step time {row['config']} {dtype} remat {remat}: {row['step_s']:.3f} s "
                  f"(losses {', '.join(f'{x:.3f}' for x in losses)})", flush=True)
            out.append(row)
    return out


def residuals(args, tmp: str) -> list[dict]:
    """Bytes of activations JAX keeps from the forward pass for the backward (``print_saved_residuals``; the
    parameters and the batch not counted), remat off and on: what rematerialisation saves before any compiler
    scheduling. One device's share of the batch."""
    import contextlib
    import io
    import re
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.ad_checkpoint import print_saved_residuals
    from jaxlic.training.compute import cast_params, computing, float32_paths
    crop = int(args.crops.split(",")[0])
    out = []
    for dtype in args.dtypes.split(","):
        for remat in (False, True):
            t = _trainer(_config(args.model, args.residuals), 1, args.devices, dtype, remat, crop,
                         args.batch_per_device, tmp)
            state = t.abstract_state()
            x = jax.ShapeDtypeStruct((args.batch_per_device, crop, crop, 3), jnp.float32)
            dt = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
            keep = float32_paths(t.model, jnp.zeros((1, crop, crop, 3))) if dtype == "bfloat16" else frozenset()

            def loss(params, x):
                with computing(dt, remat):
                    o = t.model.apply({"params": cast_params(params, dt, keep), **state.constants}, x,
                                      training=True, rng=jax.random.PRNGKey(0))
                return sum(jnp.sum(jnp.log(v)) for v in o["likelihoods"].values()) + jnp.sum(o["x_hat"])

            text = io.StringIO()
            with contextlib.redirect_stdout(text):
                print_saved_residuals(loss, state.params, x)
            total = 0
            for kind, shape, source in re.findall(r"^(bf16|f32|f16|i32|u32|bool)\[([\d,]*)\](.*)$",
                                                  text.getvalue(), re.M):
                if "from the argument" not in source:
                    total += int(np.prod([int(d) for d in shape.split(",") if d])) * (2 if kind in ("bf16", "f16")
                                                                                      else 4)
            row = {"config": f"{args.model}:{args.residuals}", "dtype": dtype, "remat": remat, "crop": crop,
                   "batch": args.batch_per_device, "residual_bytes": total}
            print(f"residuals {row['config']} {dtype} remat {remat}: {total / 2 ** 30:.3f} GiB", flush=True)
            out.append(row)
    return out


def main():
    args = _args()
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}").strip()
    # XLA:CPU schedules for parallelism by default; the memory-minimising scheduler is what TPU and GPU
    # compilers approximate, and it lets rematerialisation show in the temporaries
    os.environ["XLA_FLAGS"] += " --xla_cpu_enable_concurrency_optimized_scheduler=false"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from common import write
    with tempfile.TemporaryDirectory() as tmp:
        result = {"model": args.model, "devices": args.devices,
                  "configs": [] if args.no_memory else memory(args, tmp)}
        if args.step_time:
            result["step_time"] = step_time(args, tmp)
        if args.residuals is not None:
            result["residuals"] = residuals(args, tmp)
    write(result, args.json, f"scale_{args.model}.json")


if __name__ == "__main__":
    main()
