"""Where the training state lives on a mesh, one rule for every model.

Parameters and optimizer state are sharded FSDP style along the mesh's parameter axis (``fsdp``): each array
along its largest dimension that the axis size divides, arrays below ``min_size`` elements replicated (gathering
them would cost more than it saves). Optimizer states mirror the parameters' shapes, so the same rule shards Adam's
moments like their parameters. ``rules`` override by name: ``(regex, spec)`` pairs matched against the array's
path ("params/g_a/layers_0/kernel", "opt_state/.../mu/g_a/..."), spec a tuple of mesh axis names or None per
dimension, or ``()`` to replicate. Batches are split along every mesh axis, so data and fsdp devices alike take
their share of the batch. XLA inserts the all-gathers (forward and backward) and reduce-scatters (gradients) that
the shardings imply.
"""
from __future__ import annotations

import math
import re
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

FSDP = "fsdp"
MIN_SIZE = 2 ** 14  # elements; a smaller array is replicated


def array_spec(shape, axis_size: int, axis: str = FSDP, min_size: int = MIN_SIZE) -> P:
    """The FSDP spec of one array: its largest dimension that ``axis_size`` divides (the first of equals)."""
    if axis_size <= 1 or math.prod(shape) < min_size:
        return P()
    for d in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[d] % axis_size == 0:
            return P(*(axis if i == d else None for i in range(len(shape))))
    return P()


def _path(keys) -> str:
    parts = []
    for k in keys:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def tree_shardings(mesh: Mesh, tree: Any, min_size: int = MIN_SIZE, rules=()) -> Any:
    """NamedShardings for every array of ``tree`` (arrays or ShapeDtypeStructs) on ``mesh``."""
    size = mesh.shape.get(FSDP, 1)
    compiled = [(re.compile(pattern), spec) for pattern, spec in rules]

    def one(keys, leaf):
        name = _path(keys)
        for pattern, spec in compiled:
            if pattern.search(name):
                return NamedSharding(mesh, P(*spec))
        return NamedSharding(mesh, array_spec(leaf.shape, size, FSDP, min_size))

    return jax.tree_util.tree_map_with_path(one, tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The batch dimension over every mesh axis."""
    return NamedSharding(mesh, P(tuple(mesh.axis_names)))


def bytes_per_device(tree: Any, shardings: Any) -> int:
    """Bytes one device holds of ``tree`` under ``shardings`` (the largest shard of each array)."""
    leaves = jax.tree_util.tree_leaves(tree)
    specs = jax.tree_util.tree_leaves(shardings, is_leaf=lambda s: isinstance(s, NamedSharding))
    return sum(math.prod(s.shard_shape(x.shape)) * x.dtype.itemsize for x, s in zip(leaves, specs))
