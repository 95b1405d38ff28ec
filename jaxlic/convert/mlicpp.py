"""MLIC++ (official ``JiangWeibeta/MLIC`` layout) state_dict keys -> jaxlic, and its configuration from them."""
from __future__ import annotations

import re

from jaxlic.convert.compressai import entropy_bottleneck_key
from jaxlic.errors import UserError

_CONTEXTS = ("local_context", "channel_context", "global_inter_context", "global_intra_context",
             "entropy_parameters_anchor", "entropy_parameters_nonanchor", "lrp_anchor", "lrp_nonanchor")
_LINEAR = ("qkv_proj", "proj", "fc1", "fc2")

def context_key(key: str):
    """Official key of a per-slice context module -> (flax path, layout), or None. ``name.{k}`` becomes
    ``name_k``; Linear weights are transposed, LayerNorm weights are Flax's ``scale``."""
    m = re.fullmatch(r"(%s)\.(\d+)\.(.+)\.(weight|bias)|(%s)\.(\d+)\.(relative_position_table)"
                     % ("|".join(_CONTEXTS), "local_context"), key)
    if not m:
        return None
    if m.group(7):
        return ("params", f"local_context_{m.group(6)}", "relative_position_table"), "copy"
    module, i, inner, leaf = m.group(1), m.group(2), m.group(3), m.group(4)
    parts = re.sub(r"(\w+)\.(\d+)", r"\1_\2", inner).split(".")
    path = ("params", f"{module}_{i}", *parts)
    if parts[-1].startswith("norm"):
        return path + ("scale" if leaf == "weight" else "bias",), "copy"
    if leaf == "bias":
        return path + ("bias",), "copy"
    return path + ("kernel",), "linear" if parts[-1] in _LINEAR else "conv"

_INDEXED = r"(analysis_transform|synthesis_transform|reduction|increase)\.(\d+)"

def transform_key(key: str):
    """Official state_dict key of a transform -> (flax path, layout), or None."""
    m = re.fullmatch(r"(g_a|g_s|h_a|h_s)\.(.+)\.(weight|bias|beta|gamma)", key)
    if not m:
        return None
    net, inner, leaf = m.groups()
    inner = re.sub(_INDEXED + r"\.0$", r"\1_\2.conv", inner)            # top-level subpel: Sequential(conv, shuffle)
    inner = re.sub(r"(subpel_conv|upsample)\.0$", r"\1.conv", inner)   # inside ResidualBlockUpsample
    inner = re.sub(r"(subpel_conv|upsample)\.0\.", r"\1.conv.", inner)
    inner = re.sub(_INDEXED, r"\1_\2", inner)
    path = ("params", net, *inner.split("."))
    if leaf == "weight":
        return path + ("kernel",), "conv"
    return path + (leaf,), "copy"

def mlicpp_key(key: str):
    """Any official MLIC++ state_dict key -> (flax path, layout), or None (buffers)."""
    if key == "gaussian_conditional.scale_table":
        return ("constants", "gaussian_conditional", "scale_table"), "copy"
    return transform_key(key) or context_key(key) or entropy_bottleneck_key(key)

MLICPP_BUFFERS = (r".*relative_position_index",)

def mlicpp_config(state_dict) -> dict:
    """N, M, slice_num and the Old-module flags of an official MLIC++ state_dict, from its shapes and keys."""
    sd = state_dict
    try:
        N = sd["h_a.reduction.0.weight"].shape[0]
        M = sd["g_a.analysis_transform.6.weight"].shape[0]
        slice_ch = sd["lrp_anchor.0.lrp_transform.4.weight"].shape[0] if "lrp_anchor.0.lrp_transform.6.weight" \
            not in sd else sd["lrp_anchor.0.lrp_transform.6.weight"].shape[0]
        old_g_s = sd["g_s.synthesis_transform.0.conv1.weight"].shape[0] != M
    except KeyError as e:
        raise UserError(f"not an MLIC++ state_dict: no {e}") from None
    return {"N": int(N), "M": int(M), "slice_num": int(M // slice_ch), "old_g_s": bool(old_g_s),
            "old_lrp": "lrp_anchor.0.lrp_transform.6.weight" in sd}
