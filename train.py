"""Train a jaxlic model.

    python train.py --config configs/mbt2018_mean.py:runlocal --workdir out/mbt_local [--config.lmbda=0.0067]
    # multi-host (run the same command on every host):
    python train.py --config ... --workdir gs://... --multihost

Resumes automatically from the newest checkpoint in --workdir; writes metrics.jsonl and, at the end,
model.npz (weights + frozen coding tables) for the CLI and eval.py.
"""
import logging

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "config file, e.g. configs/mbt2018_mean.py:runlocal")
flags.DEFINE_string("workdir", None, "where checkpoints, metrics and the exported model go")
flags.DEFINE_bool("multihost", False, "call jax.distributed.initialize() first (one process per host)")
flags.DEFINE_integer("steps", None, "stop after this many more steps (default: the config's total_steps)")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import jax
    if FLAGS.multihost:
        jax.distributed.initialize()
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every checkpoint step at INFO
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("jaxlic").setLevel(logging.INFO)
    from jaxlic.training.trainer import Trainer
    Trainer(FLAGS.config, FLAGS.workdir).run(steps=FLAGS.steps)


if __name__ == "__main__":
    app.run(main)
