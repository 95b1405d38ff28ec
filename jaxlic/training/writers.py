"""Metric writers: a JSONL file (one object per report) and TensorBoard event files.

clu.metric_writers would be the usual choice, but importing it imports TensorFlow (clu 0.0.12:
``metric_writers/__init__.py`` -> ``summary_writer`` -> ``import tensorflow``), and training must run without
TensorFlow (docs/DESIGN.md, decision 6); tensorboardX writes the same event files from plain Python.
"""
from __future__ import annotations

import json
import os


class MetricWriter:
    """``write(step, {name: float})``; only process 0 should create one."""

    def __init__(self, workdir: str, tensorboard: bool = True):
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), flush_secs=30)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
