"""Config helpers (big_vision style): argument parsing for get_config and loading config files."""
from jaxlic.errors import UserError
import ml_collections


def parse_arg(arg, lazy=False, **spec):
    """Parses ``"lmbda=0.013,runlocal"`` into a ConfigDict with the types of ``spec``'s defaults.

    A bare name sets a boolean to True. Unknown names are an error unless ``lazy``.
    """
    out = ml_collections.ConfigDict(dict(spec))
    for item in filter(None, (arg or "").split(",")):
        name, eq, value = item.partition("=")
        name = name.strip()
        if name not in spec and not lazy:
            raise UserError(f"unknown config argument {name!r}; known: {sorted(spec)}")
        default = spec.get(name)
        if not eq:
            out[name] = True
        elif isinstance(default, bool):
            out[name] = value.lower() in ("1", "true", "yes")
        elif default is None:
            out[name] = value
        else:
            out[name] = type(default)(value)
    return out


def load_config(spec: str) -> ml_collections.ConfigDict:
    """``path/to/config.py[:arg]`` -> ``get_config(arg)``, as ``--config`` takes it (ml_collections config_flags)."""
    import importlib.util
    import os
    path, _, arg = spec.partition(":")
    if not os.path.exists(path):
        raise UserError(f"config file not found: {path}")
    module_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def make_tiny(c: ml_collections.ConfigDict, model_config: dict, steps: int = 0) -> ml_collections.ConfigDict:
    """The tests' preset of every model: ``model_config`` (the model's smallest), 64^2 crops, batch 2, ``steps``
    (default 3) steps, logging every step, checkpoints every 2, validation every 2 when evals.val.paths is set."""
    c.model_config = dict(model_config)
    c.data.crop = c.evals.val.crop = 64
    c.batch_size = 2
    c.total_steps = steps or 3
    c.optim.decay_steps = (max(c.total_steps - 1, 1),)
    c.log_every = 1
    c.ckpt_every = 2
    c.evals.val.every = 2
    return c


def make_runlocal(c: ml_collections.ConfigDict, model_config: dict, shared: str,
                  steps: int) -> ml_collections.ConfigDict:
    """A CPU-sized check that training works (not a useful model): ``model_config``, 128^2 crops of BSDS500 train
    with its test split held out for validation, batch 4, ``steps`` steps of Adam 3e-4 (higher than the official
    1e-4 so a short run gets somewhere) with 50 warm-up steps and x0.1 at 90 %."""
    import os
    c.model_config = dict(model_config)
    c.data.crop = c.evals.val.crop = 128
    c.batch_size = 4
    c.total_steps = steps
    c.optim.lr = 3e-4
    c.optim.warmup_steps = 50
    c.optim.decay_steps = (int(c.total_steps * 0.9),)
    c.log_every = 25
    c.ckpt_every = 100
    c.data.paths = (os.path.join(shared, "datasets", "bsds500", "train"),)
    c.evals.val.paths = (os.path.join(shared, "datasets", "bsds500", "test"),)
    c.evals.val.max_images = 8
    c.evals.val.every = 100
    return c


def base_config(model: str, model_config: dict, shared: str) -> ml_collections.ConfigDict:
    """The fields every model's config has, at CompressAI-style defaults (``configs/*.py`` adjust them)."""
    import os
    c = ml_collections.ConfigDict()
    c.model = model
    c.model_config = dict(model_config)
    c.seed = 0

    c.loss = "mse"           # "mse": lmbda * 255^2 * MSE + bpp; "ms-ssim": lmbda * (1 - MS-SSIM) + bpp
    c.lmbda = 0.0130

    c.data = ml_collections.ConfigDict()
    c.data.source = "folder"  # "folder": image folders (paths); "tfds": a TFDS dataset in array_record form
    c.data.name = ""          # tfds: e.g. "clic", "div2k", or "local_images/bsds500" from `jaxlic build-dataset`
    c.data.split = "train"
    c.data.data_dir = ""      # tfds: default ~/tensorflow_datasets
    c.data.manual_dir = ""    # tfds: prepare a missing dataset from archives here
    c.data.image_key = "image"  # tfds feature holding the image (div2k: "hr")
    c.data.paths = (os.path.join(shared, "datasets", "bsds500", "train"),
                    os.path.join(shared, "datasets", "bsds500", "test"))
    c.data.crop = 256
    c.data.flip = True
    c.data.small = "pad"      # images smaller than the crop: "pad" (edge) or "skip"
    c.batch_size = 8          # global batch, split over devices and hosts

    # Evaluators (jaxlic.training.evaluators), name -> settings: "val", the eval-mode RD loss on centre crops
    # every 5000 steps, keeps the best checkpoint in WORKDIR/best. Off while paths is empty: do not validate on
    # the test set (Kodak) you report on. Add more under other names (their metrics are prefixed with it).
    from jaxlic.training.evaluators import rd_defaults
    c.evals = ml_collections.ConfigDict({"val": rd_defaults(best=True)})
    c.init_from = ""          # an exported model.npz to start from (e.g. fine-tuning another lambda)
    c.tensorboard = True      # event files in WORKDIR/tensorboard (metrics.jsonl is always written)

    c.total_steps = 1_000_000
    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-4
    c.optim.warmup_steps = 0
    c.optim.decay_steps = (900_000,)  # learning rate x decay_factor at each
    c.optim.decay_factor = 0.1
    c.optim.clip_norm = 1.0
    c.optim.aux_lr = 1e-3             # the factorized prior's quantiles (aux loss), own Adam

    # Device mesh: (name, size) axes, one size -1 for the rest. Add ("fsdp", n) to shard parameters and optimizer
    # state over n devices (e.g. (("data", -1), ("fsdp", 4))); batches split over every axis.
    c.mesh = (("data", -1),)
    # FSDP rule (jaxlic.training.sharding): arrays of at least min_size elements along their largest dimension
    # that the fsdp size divides; rules: (regex on the array's path, spec) pairs that override it.
    c.sharding = ml_collections.ConfigDict(dict(min_size=2 ** 14, rules=()))
    # Compute (jaxlic.training.compute): "bfloat16" runs the networks in bf16 with float32 parameters, optimizer
    # state, quantization, likelihoods and rate; remat recomputes the heavy blocks (remat_blocks: module class
    # names, empty for jaxlic.training.compute.REMAT_BLOCKS) in the backward pass.
    c.dtype = "float32"
    c.remat = False
    c.remat_blocks = ()
    c.remat_policy = "nothing_saveable"
    c.log_every = 100
    c.ckpt_every = 5000
    c.keep = 3
    return c


def zoo_config(arg, shared: str) -> ml_collections.ConfigDict:
    """A CompressAI zoo model's config (``configs/compressai.py``): ``model=NAME`` (default mbt2018-mean),
    ``quality=Q`` picks CompressAI's size and lambda for that quality (``loss=ms-ssim`` its MS-SSIM lambda),
    ``lmbda=`` overrides the lambda; ``runlocal`` and ``tiny`` as in every config. CompressAI's recipe: 256^2
    crops, batch 16, Adam 1e-4, aux 1e-3, clipping 1.0."""
    from jaxlic.zoo import MSE_LAMBDAS, TINY, VARIABLE_RATE, lmbda, published_config
    a = parse_arg(arg, model="mbt2018-mean", quality=3, loss="mse", lmbda=0.0, runlocal=False, tiny=False,
                  steps=0)
    if a.model not in TINY:
        raise UserError(f"model={a.model}: not one of CompressAI's zoo models {sorted(TINY)}")
    if a.model in VARIABLE_RATE:
        # one model for every rate: each batch at a random level, with that level's lambda (CompressAI's eight
        # MSE training points; ``quality`` and ``lmbda`` do not apply)
        if a.loss != "mse":
            raise UserError(f"model={a.model}: CompressAI trains its variable-rate models for MSE only")
        c = base_config(a.model, dict(VARIABLE_RATE[a.model]), shared)
        c.rate_lambdas = tuple(MSE_LAMBDAS[q] for q in sorted(MSE_LAMBDAS))
        c.lmbda = c.rate_lambdas[1]  # the default level's, which validation reports
    else:
        c = base_config(a.model, published_config(a.model, a.quality), shared)
        c.lmbda = a.lmbda or lmbda(a.quality, a.loss)
    c.loss = a.loss
    c.batch_size = 16
    if a.runlocal:
        c.data.crop = 128
        c.batch_size = 4
        c.total_steps = a.steps or 2000
        c.optim.decay_steps = (int(c.total_steps * 0.9),)
    if a.tiny:
        make_tiny(c, dict(TINY[a.model]), a.steps)
    return c
