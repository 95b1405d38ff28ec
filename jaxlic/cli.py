"""``jaxlic compress|decompress|info|convert|init|build-dataset|export``."""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

from jaxlic.errors import UserError, report

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "jaxlic", "xla")


def enable_compilation_cache(path: str | None = None) -> None:
    """JAX's persistent compilation cache, so a second run does not compile again. Process-wide: the entry
    points (the ``jaxlic`` command, eval.py) call it for their own process; importing jaxlic or calling
    ``main`` does not."""
    import jax
    path = path or os.environ.get("JAXLIC_CACHE_DIR", DEFAULT_CACHE)
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def _parse_config(s: str | None) -> dict:
    out = {}
    for item in filter(None, (s or "").split(",")):
        k, _, v = item.partition("=")
        if not _:
            raise UserError(f"bad --config item {item!r}; expected key=value")
        v = v.strip()
        if v.lower() in ("true", "false"):
            out[k.strip()] = v.lower() == "true"
        elif "/" in v:  # a list of ints, e.g. ELIC's groups=16/16/32/64/192
            try:
                out[k.strip()] = [int(p) for p in v.split("/")]
            except ValueError:
                raise UserError(f"bad --config item {item!r}; a list is ints separated by /") from None
        else:
            try:
                out[k.strip()] = int(v) if v.lstrip("-").isdigit() else float(v)
            except ValueError:
                raise UserError(f"bad --config item {item!r}; values are numbers, true/false or ints a/b/c") \
                    from None
    return out


def _codec(args):
    from jaxlic.api import load
    return load(args.checkpoint, model=args.model, trust=args.trust_pickle,
                max_pixels=getattr(args, "max_pixels", None) or None,
                coder=getattr(args, "coder", "constriction"), robust_margin=getattr(args, "robust_margin", None),
                level=getattr(args, "level", None), gain=getattr(args, "gain", None))


DRIFT_ENV = "JAXLIC_SIMULATE_DRIFT"


def drift_from_env() -> float:
    """The decoder's simulated platform (``JAXLIC_SIMULATE_DRIFT=REL``): read here, in the CLI only; the
    library takes it as an argument."""
    from jaxlic.coding.protection import check_drift
    raw = os.environ.get(DRIFT_ENV, "")
    try:
        return check_drift(raw) if raw else 0.0
    except UserError as e:
        raise UserError(f"{DRIFT_ENV}={raw!r}: {e}") from None


def _pixels(text: str) -> int:
    try:
        v = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of pixels (such as 200e6; 0: no limit)") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 0 (0: no limit)")
    return v


def _margin(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (a relative error such as 1e-5)") from None
    if not 0 <= v < 0.01:
        raise argparse.ArgumentTypeError(f"{text}: must be in [0, 0.01) (a relative error such as 1e-5; 0: off)")
    return v


def cmd_compress(args):
    from jaxlic.io import check_output_path, read_image, write_bytes
    t0 = time.perf_counter()
    check_output_path(args.output)  # before the work, not after
    image = read_image(args.input)
    codec = _codec(args)
    data = codec.compress(image)
    write_bytes(args.output, data)
    h, w = image.shape[:2]
    print(f"{args.input} -> {args.output}: {len(data)} bytes, {8 * len(data) / (h * w):.4f} bpp "
          f"({codec.name}, {args.coder}, {time.perf_counter() - t0:.2f} s)")


def cmd_decompress(args):
    from jaxlic.coding.container import check_pixels, read_container
    from jaxlic.io import check_output_path, read_bytes, write_image
    t0 = time.perf_counter()
    data = read_bytes(args.input)
    check_output_path(args.output)
    # a bad file, or one declaring more pixels than the limit, is reported before any model is loaded
    check_pixels(read_container(data), args.max_pixels or None)
    drift = drift_from_env()
    codec = _codec(args)
    image = codec.decompress(data, drift=drift)
    write_image(args.output, image)
    print(f"{args.input} -> {args.output}: {image.shape[0]} x {image.shape[1]} (H x W) "
          f"({time.perf_counter() - t0:.2f} s)")


def cmd_info(args):
    from jaxlic.coding.container import read_container
    from jaxlic.io import read_bytes
    data = read_bytes(args.input)
    c = read_container(data)
    print(f"file           : {args.input} ({len(data)} bytes)")
    print(c.describe())
    h, w = c.image_size
    print(f"bits per pixel : {8 * len(data) / (h * w):.4f}")


def cmd_init(args):
    import jax
    from jaxlic.export import init_variables, save_model
    from jaxlic.registry import get_spec
    given = _parse_config(args.config)
    if "quality" in given:  # CompressAI's architecture size of that quality
        from jaxlic.zoo import published_config
        given = {**published_config(args.model, int(given.pop("quality"))), **given}
    config = {**get_spec(args.model).defaults, **given}
    model, variables, tables = init_variables(args.model, config, jax.random.key(args.seed))
    save_model(args.output, args.model, config, variables, tables)
    print(f"wrote {args.output}: {args.model} {config} with random weights (seed {args.seed})")


def cmd_convert(args):
    from jaxlic.export import convert_checkpoint
    notes = []
    name, config, _, variables, _ = convert_checkpoint(args.input, args.output, args.model,
                                                       _parse_config(args.config), args.tables, notes,
                                                       trust=args.trust_pickle)
    for line in notes:
        print(f"note: {line}")
    import jax
    n = sum(v.size for v in jax.tree_util.tree_leaves(variables["params"]))
    print(f"wrote {args.output}: {name} {config}, {n:,} parameters, tables "
          f"{'from the checkpoint' if args.tables == 'checkpoint' else 'rebuilt from the weights'}")


def cmd_build_dataset(args):
    from jaxlic.data.tfds_images import build
    folders = {}
    for item in args.split:
        split, eq, d = item.partition("=")
        if not eq or not split or not d:
            raise UserError(f"--split {item!r}: expected SPLIT=DIR")
        folders.setdefault(split, []).append(d)
    name = build(args.name, folders, os.path.expanduser(args.data_dir))
    print(f"wrote {name} to {args.data_dir}: splits {sorted(folders)}; train with --config.data.source=tfds "
          f"--config.data.name={name} --config.data.data_dir={args.data_dir}")


def cmd_export(args):
    import jax
    from jaxlic.export import load_model, round_to_half, save_model
    if os.path.isdir(args.source):
        from jaxlic.training.trainer import export_workdir
        path, step = export_workdir(args.source, args.output, args.step, args.best, args.half)
        print(f"wrote {path} from {'the best' if args.best else 'step'} {step} of {args.source}"
              + (" (best by validation loss)" if args.best else ""))
        return
    name, config, model, variables, tables = load_model(args.source)
    if args.half:
        variables = round_to_half(variables)
        tables = model.build_tables(jax.device_get(variables))
    save_model(args.output, name, config, variables, tables, half=args.half)
    print(f"wrote {args.output}: {name} {config}" + (", float16 weights, tables rebuilt" if args.half else ""))


def build_parser():
    from jaxlic import assets
    from jaxlic.coding.protection import DEFAULT_ROBUST_MARGIN
    from jaxlic.coding.container import DEFAULT_MAX_PIXELS
    from jaxlic.registry import REGISTRY
    from jaxlic import __version__
    p = argparse.ArgumentParser(prog="jaxlic", description="Learned image compression in JAX.")
    p.add_argument("--version", action="version", version=f"jaxlic {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def trust_arg(q):
        q.add_argument("--trust-pickle", action="store_true",
                       help="load a .pth whose pickle needs more than tensors and numbers; it runs the code the "
                       "file holds: only for files you made or whose source you trust")

    def model_args(q):
        q.add_argument("--model", choices=sorted(REGISTRY), help="check the checkpoint holds this model")
        q.add_argument("--checkpoint", help="a jaxlic model file (.npz), a shipped model's name "
                       f"({', '.join(assets.SHIPPED)}) or an official .pth / .pth.tar checkpoint (converted on the "
                       f"fly; needs PyTorch); default: {assets.DEFAULT}")
        trust_arg(q)

    c = sub.add_parser("compress", help="image -> .jlc file")
    c.add_argument("input")
    c.add_argument("output")
    model_args(c)
    c.add_argument("--coder", default="constriction", choices=["constriction", "tfc"])
    c.add_argument("--robust-margin", type=_margin, default=None, metavar="DELTA",
                   help="decoders whose entropy parameters differ from this machine's by a relative error below "
                   "DELTA decode the file exactly: the side of every coding-table index within DELTA of a table "
                   "boundary is sent (about 1.2 bits each); 0 switches this off (default: "
                   f"{DEFAULT_ROBUST_MARGIN:g})")
    rate = c.add_mutually_exclusive_group()
    rate.add_argument("--level", type=int, default=None,
                      help="variable-rate models: one of the learned rates, 0 (lowest) .. levels - 1 (default 1)")
    rate.add_argument("--gain", type=float, default=None,
                      help="variable-rate models: any rate, as the gain (1 / y's quantization step)")
    c.set_defaults(fn=cmd_compress)
    d = sub.add_parser("decompress", help=".jlc file -> image (PNG unless the extension says otherwise)")
    d.add_argument("input")
    d.add_argument("output")
    model_args(d)
    d.add_argument("--max-pixels", type=_pixels, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help="refuse a file declaring an image of more than N pixels, before any work (default: "
                   f"{DEFAULT_MAX_PIXELS:,}, Pillow's decompression-bomb limit; 0: no limit)")
    d.set_defaults(fn=cmd_decompress)
    i = sub.add_parser("info", help="print a .jlc file's header")
    i.add_argument("input")
    i.set_defaults(fn=cmd_info)
    v = sub.add_parser("convert", help="official PyTorch checkpoint (.pth/.pth.tar/.npz state_dict) -> jaxlic")
    v.add_argument("input")
    v.add_argument("output")
    v.add_argument("--model", choices=sorted(REGISTRY), help="default: detected from the checkpoint's keys")
    v.add_argument("--config", help="model config overrides, e.g. N=32,M=48 (default: detected from the shapes)")
    v.add_argument("--tables", choices=["rebuild", "checkpoint"], default="rebuild",
                   help="rebuild the coding tables from the weights, or take the checkpoint's CDF buffers")
    trust_arg(v)
    v.set_defaults(fn=cmd_convert)
    n = sub.add_parser("init", help="a checkpoint with random weights (for tests and benchmarks)")
    n.add_argument("output")
    n.add_argument("--model", required=True, choices=sorted(REGISTRY))
    n.add_argument("--config", help="e.g. N=128,M=192, or quality=Q (CompressAI's size of that quality)")
    n.add_argument("--seed", type=int, default=0)
    n.set_defaults(fn=cmd_init)
    b = sub.add_parser("build-dataset", help="image folders -> a TFDS dataset local_images/NAME (array_record)")
    b.add_argument("name")
    b.add_argument("--split", action="append", required=True, help="SPLIT=DIR; repeat (also to merge folders)")
    b.add_argument("--data-dir", default="~/tensorflow_datasets")
    b.set_defaults(fn=cmd_build_dataset)
    e = sub.add_parser("export", help="training workdir (or model .npz) -> model .npz for the codec")
    e.add_argument("source", help="a train.py --workdir, or a model .npz")
    e.add_argument("output")
    e.add_argument("--best", action="store_true", help="the checkpoint with the lowest validation loss")
    e.add_argument("--step", type=int, help="this step's checkpoint (default: the newest)")
    e.add_argument("--half", action="store_true", help="float16 weights (half the size; tables rebuilt from them)")
    e.set_defaults(fn=cmd_export)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"jaxlic: warning: {msg}\n"
    return report("jaxlic", args.fn, args)


def run() -> None:
    """The ``jaxlic`` command."""
    enable_compilation_cache()
    sys.exit(main())


if __name__ == "__main__":
    run()
