"""Train a jaxlic model.

    python train.py --config configs/mbt2018_mean.py:runlocal --workdir out/mbt_local [--config.lmbda=0.0067]
    # multi-host (run the same command on every host):
    python train.py --config ... --workdir gs://... --multihost

Resumes automatically from the newest checkpoint in --workdir; writes metrics.jsonl and, at the end,
model.npz (weights + frozen coding tables) for the CLI and eval.py.
"""
import logging
import sys

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "config file, e.g. configs/mbt2018_mean.py:runlocal")
flags.DEFINE_string("workdir", None, "where checkpoints, metrics and the exported model go")
flags.DEFINE_bool("multihost", False, "call jax.distributed.initialize() first (one process per host); on TPU "
                  "pods, SLURM and Kubernetes it finds its peers, elsewhere give the three flags below")
flags.DEFINE_string("coordinator", None, "multihost: address:port of process 0")
flags.DEFINE_integer("num_processes", None, "multihost: how many processes")
flags.DEFINE_integer("process_id", None, "multihost: this process's index")
flags.DEFINE_integer("steps", None, "stop after this many more steps (default: the config's total_steps)")
flags.DEFINE_string("history", None, "write every step's metrics (this process's view) to this JSON file")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import jax
    if FLAGS.multihost:
        # CPU-only processes need a cross-process collectives backend; GPU and TPU ignore this
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id)
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every checkpoint step at INFO
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("jaxlic").setLevel(logging.INFO)
    from jaxlic.errors import report
    from jaxlic.training.trainer import Trainer

    def train():
        history = Trainer(FLAGS.config, FLAGS.workdir).run(steps=FLAGS.steps)
        if FLAGS.history:
            import json
            with open(FLAGS.history, "w") as f:
                json.dump(history, f)
    status = report("train.py", train)
    if status:
        sys.exit(status)


def _parse_flags(argv):
    """absl exits 1 on --help and prints a traceback for a bad config argument; here --help exits 0 and a bad
    flag or config argument is one line, exit status 2."""
    if any(a in ("-h", "--help") for a in argv[1:]):
        print(__doc__)
        print(FLAGS.main_module_help())
        sys.exit(0)
    try:
        return FLAGS(argv)
    except flags.Error as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        print(f"train.py: error: {lines[-1] if lines else e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
