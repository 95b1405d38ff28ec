"""CompressAI checkpoints (``mbt2018-mean``) -> jaxlic."""
from __future__ import annotations

import re

import numpy as np

from jaxlic.entropy.tables import CodingTable

# Buffers of CompressAI modules that carry no learned state (recomputed from constants).
COMPRESSAI_BUFFERS = (
    r".*\.(beta|gamma)_reparam\.(pedestal|lower_bound\.bound)",
    r".*likelihood_lower_bound\.bound", r"entropy_bottleneck\.target",
    r"gaussian_conditional\.(scale_bound|lower_bound_scale\.bound)",
    r".*\.(_quantized_cdf|_offset|_cdf_length)",
)


def entropy_bottleneck_key(key: str, prefix: str = "entropy_bottleneck"):
    """Both CompressAI namings: ``_matrix0`` (<= 1.2.0b3) and ``matrices.0`` (later)."""
    m = re.fullmatch(re.escape(prefix) + r"\.(?:_(matrix|bias|factor)(\d+)|(matrices|biases|factors)\.(\d+)|(quantiles))", key)
    if not m:
        return None
    if m.group(5):
        return ("params", prefix, "quantiles"), "copy"
    kind = m.group(1) or {"matrices": "matrix", "biases": "bias", "factors": "factor"}[m.group(3)]
    return ("params", prefix, f"{kind}{m.group(2) or m.group(4)}"), "copy"


def mbt2018_mean_key(key: str):
    eb = entropy_bottleneck_key(key)
    if eb:
        return eb
    if key == "gaussian_conditional.scale_table":
        return ("constants", "gaussian_conditional", "scale_table"), "copy"
    m = re.fullmatch(r"(g_a|g_s|h_a|h_s)\.(\d+)\.(weight|bias|beta|gamma)", key)
    if not m:
        return None
    net, i, leaf = m.group(1), int(m.group(2)), m.group(3)
    if leaf == "weight":
        deconv = net == "g_s" or (net == "h_s" and i in (0, 2))
        return ("params", net, f"layers_{i}", "kernel"), "deconv" if deconv else "conv"
    return ("params", net, f"layers_{i}", leaf), "copy"


def compressai_tables(state_dict, prefix: str) -> CodingTable | None:
    """CompressAI's own CDF buffers as a table (rows are zero-padded there; re-padded here)."""
    keys = [f"{prefix}._quantized_cdf", f"{prefix}._cdf_length", f"{prefix}._offset"]
    if not all(k in state_dict for k in keys):
        return None
    cdf, length, offset = (np.asarray(state_dict[k]) for k in keys)
    if cdf.size == 0:
        return None
    table = CodingTable.from_cdfs([cdf[i, :n] for i, n in enumerate(length)], offset, 16)
    table.validate()
    return table
