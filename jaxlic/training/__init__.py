"""Training: losses, optimizers, the jitted step, sharding, checkpoints (logic behind ``train.py``)."""
