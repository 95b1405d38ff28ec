"""The training loop: one jitted, donated step over a mesh (data parallel, parameters and optimizer state
optionally sharded FSDP style: ``jaxlic.training.sharding``), orbax checkpoints with the data iterator's state
(keep-N plus the best by validation loss), automatic resume, save on SIGTERM (on several processes, all at the
step JAX's preemption service has them agree on), metrics to JSONL and TensorBoard, and a frozen-table model
export at the end. The loop does not wait on the device between log and checkpoint steps: the steps' metrics are
fetched and checked for non-finite values there, in one transfer."""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm import tqdm

from jaxlic.cache import CompileCache
from jaxlic.data.pipeline import train_dataset
from jaxlic.errors import UserError
from jaxlic.export import load_model, save_model
from jaxlic.heap import trim_after_compiles
from jaxlic.registry import get_spec
from jaxlic.training import evaluators
from jaxlic.training.compute import DTYPES, REMAT_BLOCKS, cast_params, computing, init_shapes
from jaxlic.training.losses import DISTORTIONS, rd_loss
from jaxlic.training.sharding import batch_sharding, tree_shardings, MIN_SIZE
from jaxlic.training.writers import MetricWriter
from jaxlic import xla_cpu

log = logging.getLogger(__name__)


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    constants: Any
    opt_state: Any
    rng: jax.Array  # raw uint32 key, checkpointable


_BEST = dict(best_fn=lambda metrics: metrics["val_loss"], best_mode="min")  # WORKDIR/best keeps the lowest


class TrainingError(UserError):
    pass


def make_mesh(spec) -> Mesh:
    names = [n for n, _ in spec]
    sizes = [s for _, s in spec]
    devices = np.array(jax.devices())
    if sizes.count(-1) > 1:
        raise UserError(f"mesh {spec}: at most one axis may be -1")
    known = math.prod(s for s in sizes if s != -1)
    sizes = [devices.size // known if s == -1 else s for s in sizes]
    if math.prod(sizes) != devices.size:
        raise UserError(f"mesh {spec} does not fit {devices.size} devices")
    return Mesh(devices.reshape(sizes), names)


def _labels(params):
    """'aux' for the factorized prior's quantiles (trained by the aux loss with their own Adam), else 'main'."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({k: "aux" if k[-1] == "quantiles" else "main" for k in flat})


STEPS = CompileCache(maxsize=8)  # the default cache of compiled steps (Trainer(cache=...) takes another)


def _compiled(cache, model, lmbda, loss, optim, crop, mesh, sharding, compute, tx, schedule):
    """The jitted training step, evaluation step and initialisation, the state's shardings, and its abstract
    value (shapes, dtypes, shardings: what ``lower`` needs to compile the step without a state). Trainers that
    agree on everything these depend on (the model, the loss and its lambda, the optimizer settings that ``tx``
    and ``schedule`` are built from, the crop, the mesh and its sharding rules) share them, so a second run in one
    process (a resume, a sweep, a notebook) does not compile them again."""
    min_size, rules = int(sharding.get("min_size", MIN_SIZE)), tuple(
        (str(p), tuple(s) if s is not None else ()) for p, s in sharding.get("rules", ()))
    key = (model, tuple(map(float, np.ravel(lmbda))), loss, json.dumps(optim.to_dict(), sort_keys=True, default=str),
           int(crop), mesh, min_size, rules, tuple(sorted(compute.items())))
    return cache.get(key, lambda: _build(model, lmbda, loss, crop, mesh, min_size, rules, compute, tx, schedule))


def _build(model, lmbda, loss, crop, mesh, min_size, rules, compute, tx, schedule):
    dtype = DTYPES[compute["dtype"]]
    # one trace of init: the variables' shapes, and the entropy models' parameters kept float32 under bfloat16
    abstract, keep = init_shapes(model, jnp.zeros((1, crop, crop, 3), jnp.float32))
    keep = keep if dtype != jnp.float32 else frozenset()

    rated = getattr(model, "rated", False)
    lambdas = jnp.asarray(lmbda, jnp.float32) if rated else None

    def train_step(state: TrainState, batch):
        x = batch.astype(jnp.float32) / 255.0
        rng = jax.random.fold_in(state.rng, state.step)
        rate, lam = {}, lmbda
        if rated:  # a variable-rate model: a random level per batch, trained at that level's lambda
            level = jax.random.randint(jax.random.fold_in(rng, 1), (), 0, lambdas.shape[0])
            rate, lam = {"level": level}, lambdas[level]

        def loss_fn(params):
            variables = {"params": cast_params(params, dtype, keep), **state.constants}
            with computing(dtype, compute["remat"], compute["remat_blocks"], compute["remat_policy"]):
                out = model.apply(variables, x, training=True, rng=rng, **rate)
            out = {**out, "x_hat": out["x_hat"].astype(jnp.float32)}
            total, metrics = rd_loss(x, out, lam, loss)
            aux = model.apply(variables, method="aux_loss")
            return total + aux, {**metrics, "aux_loss": aux}

        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        main_grads = jax.tree_util.tree_map(lambda g, l: g if l == "main" else jnp.zeros_like(g),
                                            grads, _labels(grads))
        metrics = {**metrics, "grad_norm": optax.tree.norm(main_grads), "lr": schedule(state.step)}
        if rated:
            metrics["level"] = rate["level"]
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    def eval_step(variables, batch):
        x = batch.astype(jnp.float32) / 255.0
        out = model.apply(variables, x)  # evaluation: rounding, as when coding (a rated model: its default level)
        return rd_loss(x, out, lambdas[model.default_level] if rated else lmbda, loss)[1]

    def init(rng):
        return model.init(rng, jnp.zeros((1, crop, crop, 3), jnp.float32))

    replicated, batch = NamedSharding(mesh, P()), batch_sharding(mesh)
    variables = tree_shardings(mesh, abstract, min_size, rules)
    opt = jax.eval_shape(tx.init, abstract["params"])
    shardings = TrainState(step=replicated, params=variables["params"],
                           constants={k: v for k, v in variables.items() if k != "params"},
                           opt_state=tree_shardings(mesh, opt, min_size, rules), rng=replicated)
    rng = jax.eval_shape(lambda: jax.random.PRNGKey(0))
    state = TrainState(step=jax.ShapeDtypeStruct((), jnp.int32), params=abstract["params"],
                       constants={k: v for k, v in abstract.items() if k != "params"}, opt_state=opt,
                       rng=jax.ShapeDtypeStruct(rng.shape, rng.dtype))
    state = jax.tree_util.tree_map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings)
    return (xla_cpu.jit(train_step, donate_argnums=(0,), in_shardings=(shardings, batch),
                              out_shardings=(shardings, replicated)),
                      xla_cpu.jit(eval_step, in_shardings=(variables, batch), out_shardings=replicated),
                      jax.jit(init, out_shardings=variables),
                      jax.jit(tx.init, out_shardings=shardings.opt_state),
                      shardings, state)


def compute_options(c: ml_collections.ConfigDict) -> dict:
    """The config's compute dtype and rematerialisation (``jaxlic.training.compute``), checked."""
    options = dict(dtype=c.get("dtype", "float32"), remat=bool(c.get("remat", False)),
                   remat_blocks=tuple(c.get("remat_blocks") or REMAT_BLOCKS),
                   remat_policy=c.get("remat_policy", "nothing_saveable"))
    if options["dtype"] not in DTYPES:
        raise UserError(f"dtype must be one of {sorted(DTYPES)}, got {options['dtype']!r}")
    if options["remat_policy"] != "nothing_saveable" and not hasattr(jax.checkpoint_policies,
                                                                       options["remat_policy"]):
        raise UserError(f"remat_policy {options['remat_policy']!r} is not in jax.checkpoint_policies")
    return options


def make_optimizer(c: ml_collections.ConfigDict):
    o = c.optim
    factor = o.get("decay_factor", 0.1)  # configs written before the field existed decayed x0.1
    # one factor for every decay, or one per decay (``decay_factors``: HPCM's 1e-4 -> 3e-5 -> 1e-5 -> 1e-6)
    factors = list(o.get("decay_factors") or [factor] * len(o.decay_steps))
    if len(factors) != len(o.decay_steps):
        raise UserError(f"optim.decay_factors has {len(factors)} factors for {len(o.decay_steps)} decay_steps")
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, o.lr, max(o.warmup_steps, 1)),
         optax.piecewise_constant_schedule(o.lr, {int(s) - o.warmup_steps: f
                                                  for s, f in zip(o.decay_steps, factors)})],
        [o.warmup_steps]) if o.warmup_steps else optax.piecewise_constant_schedule(
        o.lr, {int(s): f for s, f in zip(o.decay_steps, factors)})
    main = optax.chain(optax.clip_by_global_norm(o.clip_norm), optax.adam(schedule)) if o.clip_norm else optax.adam(schedule)
    return optax.multi_transform({"main": main, "aux": optax.adam(o.aux_lr)}, _labels), schedule


class Trainer:
    def __init__(self, c: ml_collections.ConfigDict, workdir: str, cache: CompileCache | None = None):
        """``cache``: where the jitted steps are kept and looked up (default ``STEPS``, shared by the process's
        trainers: a resume or a second run of the same computation compiles nothing again)."""
        self.c, self.workdir = c, workdir
        trim_after_compiles()
        self.spec = get_spec(c.model)
        self.model = self.spec.build(**dict(c.model_config))
        self.mesh = make_mesh(c.mesh)
        self.tx, self.schedule = make_optimizer(c)
        n_dev = self.mesh.devices.size
        if c.batch_size % n_dev or c.batch_size % jax.process_count():
            raise UserError(f"batch_size {c.batch_size} must divide over {n_dev} devices and "
                             f"{jax.process_count()} processes")
        if c.loss not in DISTORTIONS:
            raise UserError(f"loss must be one of {DISTORTIONS}, got {c.loss!r}")
        if c.data.crop % self.model.downsampling:
            raise UserError(f"data.crop {c.data.crop} must be a multiple of {self.model.downsampling} for {c.model} "
                            "(its latents' downsampling)")
        if c.loss == "ms-ssim" and c.data.crop < 161:
            raise UserError(f"MS-SSIM (5 scales, 11x11 window) needs crops of at least 161, got {c.data.crop}")
        self.local_batch = c.batch_size // jax.process_count()
        self.batch_sharding = batch_sharding(self.mesh)
        self.replicated = NamedSharding(self.mesh, P())
        lmbda = c.lmbda
        if getattr(self.model, "rated", False):  # one lambda per learned level (``configs/compressai.py``)
            lmbda = tuple(c.get("rate_lambdas") or ())
            if len(lmbda) != self.model.levels:
                raise UserError(f"{c.model}: a variable-rate model trains with config.rate_lambdas, one lambda for "
                                f"each of its {self.model.levels} levels (got {len(lmbda)})")
        self._step, self._eval, self._init, self._opt_init, self.shardings, self._abstract = _compiled(
            STEPS if cache is None else cache, self.model, lmbda, c.loss, c.optim, c.data.crop, self.mesh,
            c.get("sharding") or {}, compute_options(c), self.tx, self.schedule)
        self.evaluators = evaluators.build(c, self)  # checked now; their images are read when first run

    # --- state -------------------------------------------------------------------------------------
    def init_state(self) -> TrainState:
        c = self.c
        variables = self._init(jax.random.PRNGKey(c.seed))
        params = variables["params"]
        constants = {k: v for k, v in variables.items() if k != "params"}
        return TrainState(jax.device_put(jnp.zeros((), jnp.int32), self.replicated), params, constants,
                          self._opt_init(params), jax.device_put(jax.random.PRNGKey(c.seed + 1), self.replicated))

    def abstract_state(self) -> TrainState:
        """The state's shapes, dtypes and shardings, without computing it (from ``jax.eval_shape``)."""
        return self._abstract

    def compile_step(self):
        """The training step compiled for the config's global batch and crop, without running it (for its
        ``memory_analysis()`` and cost)."""
        c = self.c
        batch = jax.ShapeDtypeStruct((c.batch_size, c.data.crop, c.data.crop, 3), jnp.uint8,
                                     sharding=self.batch_sharding)
        return self._step.lower(self.abstract_state(), batch).compile()

    def _init_from(self, state: TrainState, path: str) -> TrainState:
        """Starts from the weights of an exported model (e.g. another lambda's), with a fresh optimizer."""
        name, config, _, variables, _ = load_model(path)
        if (name, config) != (self.c.model, dict(self.c.model_config)):
            raise TrainingError(f"init_from {path} holds {name} {config}, not {self.c.model} "
                                f"{dict(self.c.model_config)}")
        params = jax.device_put(variables["params"], self.shardings.params)
        constants = jax.device_put({k: v for k, v in variables.items() if k != "params"}, self.shardings.constants)
        log.info("initialised from %s", path)
        return state.replace(params=params, constants=constants, opt_state=self._opt_init(params))

    # --- checkpoints -------------------------------------------------------------------------------
    def _manager(self):
        opts = ocp.CheckpointManagerOptions(max_to_keep=self.c.keep, save_interval_steps=self.c.ckpt_every,
                                            enable_async_checkpointing=True)
        return ocp.CheckpointManager(os.path.abspath(os.path.join(self.workdir, "checkpoints")), options=opts)

    def _best_manager(self):
        opts = ocp.CheckpointManagerOptions(max_to_keep=1, **_BEST,
                                            enable_async_checkpointing=False)
        return ocp.CheckpointManager(os.path.abspath(os.path.join(self.workdir, "best")), options=opts)

    def _meta(self):
        return {"model": self.c.model, "model_config": dict(self.c.model_config)}

    def _save(self, mngr, state, data_it, step: int, force=False):
        return mngr.save(step, force=force, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_it.get_state()),
            meta=ocp.args.JsonSave(self._meta())))

    def _restore(self, mngr, state, data_it):
        step = mngr.latest_step()
        if step is None:
            return state
        meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if meta != self._meta():
            raise TrainingError(f"{self.workdir} holds checkpoints of {meta}, not {self._meta()}; "
                                "use another --workdir")
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
        r = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                       data=ocp.args.JsonRestore()))
        data_it.set_state(r["data"])
        log.info("resumed from step %d", step)
        return r["state"]

    # --- the loop ---------------------------------------------------------------------------------------
    def dataset(self):
        """This host's endless stream of training batches: fixed by the data config and the seed alone, so a run
        resumed with other ``total_steps`` or ``steps`` continues the same stream."""
        return train_dataset(self.c.data, self.local_batch, self.c.seed, jax.process_index(), jax.process_count())

    def run(self, steps: int | None = None, progress: bool = True) -> list[dict]:
        """Trains to total_steps (or ``steps`` more); returns each step's metrics (this process's view)."""
        c = self.c
        os.makedirs(self.workdir, exist_ok=True)
        lead = jax.process_index() == 0
        data_it = iter(self.dataset())
        mngr = self._manager()
        resuming = mngr.latest_step() is not None
        state = self.init_state()
        if not resuming and c.get("init_from"):  # a resumed run's weights come from its checkpoint
            state = self._init_from(state, c.init_from)
        if lead:
            _parameter_overview(state.params)
        state = self._restore(mngr, state, data_it)
        chooser = next((e for e in self.evaluators if e.best), None)  # its loss picks WORKDIR/best
        best = self._best_manager() if chooser is not None else None
        step = int(state.step)  # the one read of the device's counter: from here on the host counts
        total = c.total_steps if steps is None else min(c.total_steps, step + steps)
        # One process: SIGTERM sets a flag. Several: JAX's preemption service (started by jax.distributed) takes
        # SIGTERM on any process and has all agree on the step at which every one saves (orbax asks it); a Python
        # handler here would replace its own.
        multi = jax.process_count() > 1
        stop = {"sigterm": False}
        old = signal.signal(signal.SIGTERM, lambda *_: stop.update(sigterm=True)) \
            if not multi and _main_thread() else None
        history, window, pending = [], [], []
        writer = MetricWriter(self.workdir, c.get("tensorboard", True)) if lead else None
        bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not progress or not lead)
        t0, s0 = time.perf_counter(), step

        def flush():
            """The steps' metrics since the last flush, fetched in one transfer and checked: nothing waits on the
            device between flushes (at log, checkpoint and validation steps, and at the end)."""
            for n, m in zip([n for n, _ in pending], jax.device_get([m for _, m in pending])):
                m = {k: float(v) for k, v in m.items()}
                bad = [k for k, v in m.items() if not math.isfinite(v)]
                if bad:
                    last = mngr.latest_step()
                    raise TrainingError(f"non-finite {', '.join(bad)} at step {n} (the last checkpoint, "
                                        f"{'none' if last is None else f'step {last}'}, precedes it); metrics: {m}")
                m["step"] = n
                history.append(m)
                window.append(m)
            pending.clear()

        preempted = False
        try:
            while step < total and not stop["sigterm"]:
                local = next(data_it)
                batch = jax.make_array_from_process_local_data(self.batch_sharding, local)
                state, metrics = self._step(state, batch)
                step += 1
                pending.append((step, metrics))
                bar.update(1)
                done = step == total
                validating = [e for e in self.evaluators if step % e.every == 0 or done]
                preempted = multi and mngr.reached_preemption(step)
                if step % c.log_every == 0 or step % c.ckpt_every == 0 or done or validating or preempted \
                        or stop["sigterm"]:
                    flush()  # before any checkpoint: none holds a state past a non-finite step
                if window and (step % c.log_every == 0 or done):
                    rate = (step - s0) / (time.perf_counter() - t0)
                    report = {k: float(np.mean([m[k] for m in window])) for k in window[0] if k != "step"}
                    report.update(steps_per_s=rate, images_per_s=rate * c.batch_size,
                                  eta_s=(total - step) / rate if rate else 0.0)
                    window = []
                    bar.set_postfix(loss=f"{report['loss']:.4f}", bpp=f"{report['bpp']:.3f}",
                                    psnr=f"{report['psnr']:.2f}")
                    if writer:
                        writer.write(step, report)
                for e in validating:
                    variables = {"params": state.params, **state.constants}
                    v = e.run(variables)
                    if writer:
                        writer.write(step, v)
                    history[-1].update(v)
                    if e is chooser:
                        best.save(step, metrics={"val_loss": v[f"{e.name}_loss"]}, args=ocp.args.Composite(
                            variables=ocp.args.StandardSave(variables), meta=ocp.args.JsonSave(self._meta())))
                self._save(mngr, state, data_it, step)
                if preempted:
                    break
            flush()
            if stop["sigterm"] or preempted:
                log.warning("%s: saving step %d and exiting", "SIGTERM" if stop["sigterm"] else "preemption", step)
            mngr.wait_until_finished()
            if step not in mngr.all_steps():
                self._save(mngr, state, data_it, step, force=True)
            mngr.wait_until_finished()
        finally:
            bar.close()
            if writer:
                writer.close()
            if old is not None:
                signal.signal(signal.SIGTERM, old)
            mngr.close()
            if best is not None:
                best.close()
        if step >= total:
            self.export(state, os.path.join(self.workdir, "model.npz"))
        return history

    def export(self, state: TrainState, path: str) -> None:
        """Freezes the coding tables and writes a checkpoint the CLI and eval.py use (process 0 writes; every
        process must call it, as the sharded arrays are gathered collectively)."""
        variables = jax.jit(lambda t: t, out_shardings=self.replicated)({"params": state.params, **state.constants})
        variables = jax.tree_util.tree_map(lambda a: np.asarray(a.addressable_data(0)), variables)
        if jax.process_index() != 0:
            return
        save_model(path, self.c.model, dict(self.c.model_config), variables, self.model.build_tables(variables))
        log.info("exported %s", path)


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _parameter_overview(params) -> None:
    flat = traverse_util.flatten_dict(params)
    total = sum(int(np.prod(v.shape)) for v in flat.values())
    by_top = {}
    for k, v in flat.items():
        by_top[k[0]] = by_top.get(k[0], 0) + int(np.prod(v.shape))
    log.info("parameters: %s total; %s", f"{total:,}", ", ".join(f"{k} {n:,}" for k, n in by_top.items()))


def export_workdir(workdir: str, out: str, step: int | None = None, best: bool = False,
                   half: bool = False) -> tuple[str, int]:
    """Writes a model checkpoint (.npz, frozen tables) from a training workdir's newest (or ``step``'s, or the
    best-by-validation) checkpoint; returns (path, step)."""
    from jaxlic.export import round_to_half
    sub = "best" if best else "checkpoints"
    directory = os.path.abspath(os.path.join(workdir, sub))
    if not os.path.isdir(directory):
        raise TrainingError(f"no {sub}/ in {workdir}" + (" (was val set in the config?)" if best else ""))
    with ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(**(_BEST if best else {}))) as mngr:
        step = (mngr.best_step() if best else mngr.latest_step()) if step is None else step
        if step is None or step not in mngr.all_steps():
            raise TrainingError(f"{directory}: no checkpoint {'' if step is None else step} "
                                f"(have {list(mngr.all_steps())})")
        key = "variables" if best else "state"
        r = mngr.restore(step, args=ocp.args.Composite(**{
            key: ocp.args.StandardRestore(_on_one_device(os.path.join(directory, str(step), key))),
            "meta": ocp.args.JsonRestore()}))
    meta = r["meta"]
    tree = r[key]
    variables = dict(tree) if best else {"params": tree["params"], **tree["constants"]}
    model = get_spec(meta["model"]).build(**meta["model_config"])
    if half:
        variables = round_to_half(variables)
    variables = jax.tree_util.tree_map(np.asarray, variables)
    save_model(out, meta["model"], dict(meta["model_config"]), variables, model.build_tables(variables), half=half)
    return out, int(step)


def _on_one_device(path: str):
    """The saved tree's arrays as targets on this process's first device: a checkpoint written on any mesh (say
    8 devices, FSDP-sharded) restores here, where orbax would otherwise look for the devices that wrote it."""
    from etils import epath  # orbax's own path type (a dependency of orbax)
    metadata = ocp.StandardCheckpointHandler().metadata(epath.Path(path))
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree_util.tree_map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                                  getattr(metadata, "item_metadata", metadata))
