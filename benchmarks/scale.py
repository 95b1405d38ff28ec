"""Training at scale: per-device memory of the training step under FSDP sharding, bfloat16 and rematerialisation.

    python benchmarks/scale.py --model mlicpp --json OUT.json [--devices 8] [--crops 256,512]
        [--fsdp 1,2,4,8] [--dtypes float32,bfloat16] [--remat off,on] [--batch-per-device 8]
        [--compile MESH:DTYPE:REMAT:CROP ...] [--step-time CONFIG_ARG [--step-batch B] [--step-crop K]]
    python benchmarks/scale.py --model mlicpp --platform gpu --devices 1 --no-memory --step-time full \
        --step-batch 8 --step-crop 256 --json benchmarks/results/scale_mlicpp_gpu.json   # on an accelerator

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

``--step-time ARG``: also time the training step for ``configs/<model>.py:ARG`` (e.g. ``runlocal``; ``full``: the
official size), its own batch and crop unless ``--step-batch`` / ``--step-crop`` say otherwise, in float32 and
bfloat16, remat off and on, data parallel over ``--devices`` (pass ``--devices 1 --no-memory`` for one real
device; medians of ``--steps`` after a warm-up): seconds per step, images per second, and on an accelerator
(``--platform gpu`` or ``tpu``) the device's peak bytes in use.

JSON (a contract for scripts): ``configs``, a list of {mesh, dtype, remat, crop, batch_per_device,
param_opt_bytes_per_device, temp_bytes_per_device (null where not compiled), argument_bytes_per_device,
fits_16gib, compile_s}; ``step_time`` and ``residuals`` where measured. It is written after every configuration,
and a later run into the same file keeps the compiled figures (and step times, residuals) it does not redo, so
the slow compiles can be run one ``--compile`` entry per process.
"""
from __future__ import annotations

import argparse
import json
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
    p.add_argument("--step-batch", type=int, default=0, help="global batch for --step-time (default: the config's)")
    p.add_argument("--step-crop", type=int, default=0, help="crop for --step-time (default: the config's)")
    p.add_argument("--platform", default="cpu", help="JAX platform: cpu (simulated devices), gpu or tpu")
    p.add_argument("--no-memory", action="store_true", help="no per-mesh memory table")
    p.add_argument("--residuals", default=None, metavar="CONFIG_ARG",
                   help="also the activations kept for the backward pass, remat off and on, for "
                        "configs/<model>.py:CONFIG_ARG's model (first crop, batch-per-device)")
    return p.parse_args()


def _config(model: str, arg: str = ""):
    from jaxlic.training.config import load_config
    return load_config(str(ROOT / "configs" / f"{model}.py") + (f":{arg}" if arg else ""))


def _mesh(fsdp: int, devices: int) -> tuple:
    """Replicated over data (fsdp 1), else data = devices / fsdp x fsdp."""
    return (("data", devices // fsdp), ("fsdp", fsdp)) if fsdp > 1 else (("data", devices),)


def _trainer(c, fsdp: int, devices: int, dtype: str, remat: bool, crop: int, batch_per_device: int, workdir: str):
    from jaxlic.training.trainer import Trainer
    c.mesh = _mesh(fsdp, devices)
    c.dtype, c.remat = dtype, remat
    c.data.crop = crop
    c.batch_size = batch_per_device * devices
    return Trainer(c, workdir)


def _key(row: dict) -> tuple:
    return row["fsdp"], row["dtype"], row["remat"], row["crop"], row["batch_per_device"]


def memory(args, tmp: str, save) -> list[dict]:
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
    # compiled figures of an earlier run (the same JSON) are kept for the configurations not compiled now: each
    # full-size compile takes minutes, so they can be run one per process, and an interrupted run keeps its rows
    old = {_key(r): r for r in args.previous.get("configs", []) if r.get("temp_bytes_per_device") is not None}
    rows = []
    todo = [(f, d, r, k) for k in crops for f in fsdps for d in dtypes for r in remats]
    for f, d, r, k in tqdm(todo, desc=args.model):
        mesh = _mesh(f, args.devices)
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
        elif _key(row) in old and old[_key(row)]["param_opt_bytes_per_device"] == row["param_opt_bytes_per_device"]:
            row = old[_key(row)]
        rows.append(row)
        print(_line(row), flush=True)
        save(_merged(rows, old))  # an interrupted run loses nothing
    return _merged(rows, old)


def _merged(rows: list[dict], old: dict) -> list[dict]:
    done = {_key(r) for r in rows}
    return rows + [r for k, r in old.items() if k not in done]


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
    arg = "" if args.step_time == "full" else args.step_time
    for dtype in ("float32", "bfloat16"):
        for remat in (False, True):
            c = _config(args.model, arg)
            batch, crop = args.step_batch or c.batch_size, args.step_crop or c.data.crop
            t = _trainer(c, 1, args.devices, dtype, remat, crop, batch // args.devices, tmp)
            state = t.init_state()
            images = jax.device_put(np.random.default_rng(0).integers(0, 256, (batch, crop, crop, 3), np.uint8),
                                    t.batch_sharding)
            times, losses = [], []
            for i in range(args.steps + 1):
                t0 = time.perf_counter()
                state, m = t._step(state, images)
                losses.append(float(m["loss"]))  # waits for the step
                if i:
                    times.append(time.perf_counter() - t0)
            stats = jax.devices()[0].memory_stats() or {}
            row = {"config": f"{args.model}:{args.step_time}", "platform": jax.devices()[0].platform,
                   "device": jax.devices()[0].device_kind, "devices": args.devices, "dtype": dtype, "remat": remat,
                   "batch": batch, "crop": crop, "step_s": statistics.median(times),
                   "images_per_s": batch / statistics.median(times), "loss": losses,
                   "peak_bytes_in_use": stats.get("peak_bytes_in_use")}
            print(f"step time {row['config']} {dtype} remat {remat}, batch {batch} at {crop}^2: {row['step_s']:.3f} s "
                  f"({row['images_per_s']:.1f} images/s"
                  + (f", peak {row['peak_bytes_in_use'] / GIB:.2f} GiB" if row["peak_bytes_in_use"] else "")
                  + f"; losses {', '.join(f'{x:.3f}' for x in losses)})", flush=True)
            out.append(row)
            del state
    return out


def residuals(args, tmp: str) -> list[dict]:
    """Bytes of activations JAX keeps from the forward pass for the backward (``print_saved_residuals``; the
    parameters and the batch not counted), remat off and on: what rematerialisation saves before any compiler
    scheduling. One device's share of the batch."""
    import jax
    import jax.numpy as jnp
    from jaxlic.training.compute import cast_params, computing, float32_paths, saved_residual_bytes
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

            total = saved_residual_bytes(loss, state.params, x)
            row = {"config": f"{args.model}:{args.residuals}", "dtype": dtype, "remat": remat, "crop": crop,
                   "batch": args.batch_per_device, "residual_bytes": total}
            print(f"residuals {row['config']} {dtype} remat {remat}: {total / 2 ** 30:.3f} GiB", flush=True)
            out.append(row)
    return out


def main():
    args = _args()
    if args.platform == "cpu":
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.devices}").strip()
        # XLA:CPU schedules for parallelism by default; the memory-minimising scheduler is what TPU and GPU
        # compilers approximate, and it lets rematerialisation show in the temporaries
        os.environ["XLA_FLAGS"] += " --xla_cpu_enable_concurrency_optimized_scheduler=false"
    os.environ["JAX_PLATFORMS"] = args.platform
    from common import RESULTS, write
    out = pathlib.Path(args.json) if args.json else RESULTS / f"scale_{args.model}.json"
    args.previous = json.loads(out.read_text()) if out.exists() else {}
    if args.previous.get("model", args.model) != args.model or args.previous.get("devices", args.devices) != \
            args.devices:
        args.previous = {}
    # what an earlier run measured and this one does not redo is kept
    result = {k: v for k, v in args.previous.items() if k in ("step_time", "residuals")}
    result.update(model=args.model, devices=args.devices)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_memory:
            result["configs"] = memory(args, tmp, lambda rows: write({**result, "configs": rows}, str(out), ""))
        else:
            result.setdefault("configs", args.previous.get("configs", []))
        if args.step_time:
            result["step_time"] = step_time(args, tmp)
        if args.residuals is not None:
            result["residuals"] = residuals(args, tmp)
    write(result, str(out), "")


if __name__ == "__main__":
    main()
