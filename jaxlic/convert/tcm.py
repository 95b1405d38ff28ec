"""TCM (official ``jmliu206/LIC_TCM`` layout, class ``TCM``) state_dict keys -> jaxlic, and its configuration
from them."""
from __future__ import annotations

import re

from jaxlic.convert.compressai import COMPRESSAI_BUFFERS, entropy_bottleneck_key
from jaxlic.errors import UserError

_PER_SLICE = r"atten_mean|atten_scale|cc_mean_transforms|cc_scale_transforms|lrp_transforms"
# the official Swin block (``Block`` / ``WMSA``) -> ``jaxlic.layers.swin.SwinBlock``
_REWRITES = (
    (rf"^({_PER_SLICE})\.(\d+)\.", r"\1_\2."), (r"^(atten_(?:mean|scale)_\d+)\.0\.", r"\1."),
    (r"\.(subpel_conv|upsample)\.0\.", r".\1.conv."), (r"^((?:g_s|h_mean_s|h_scale_s)\.\d+)\.0\.", r"\1.conv."),
    (r"\.ln([12])\.weight$", r".norm\1.scale"), (r"\.ln([12])\.bias$", r".norm\1.bias"),
    (r"\.msa\.embedding_layer\.", ".attn.qkv."), (r"\.msa\.linear\.", ".attn.proj."),
    (r"\.msa\.relative_position_params$", ".attn.relative_position_bias_table"),
    (r"\.mlp\.0\.", ".mlp.fc1."), (r"\.mlp\.2\.", ".mlp.fc2."),
)
BUFFERS = COMPRESSAI_BUFFERS


def tcm_key(key: str):
    """Any official TCM state_dict key -> (flax path, layout), or None (buffers)."""
    if key == "gaussian_conditional.scale_table":
        return ("constants", "gaussian_conditional", "scale_table"), "copy"
    eb = entropy_bottleneck_key(key)
    if eb:
        return eb
    for pattern, repl in _REWRITES:
        key = re.sub(pattern, repl, key)
    parts = [f"layers_{p}" if p.isdigit() else p for p in key.split(".")]
    inner, leaf = parts[:-1], parts[-1]
    if leaf == "relative_position_bias_table":
        return ("params", *parts), "relative_bias"
    if leaf not in ("weight", "bias", "beta", "gamma", "scale"):
        return None
    if leaf != "weight":
        return ("params", *parts), "copy"
    linear = inner[-1] in ("qkv", "proj", "fc1", "fc2")
    return ("params", *inner, "kernel"), "linear" if linear else "conv"


def _stage_depths(sd, net: str) -> tuple[list[int], list[int]]:
    """(blocks per stage, heads per stage) of an official transform: ConvTransBlocks between its other layers."""
    idx = sorted({int(k.split(".")[1]) for k in sd if k.startswith(net + ".")})
    depths, heads, run = [], [], 0
    for i in idx[1:]:
        if f"{net}.{i}.conv1_1.weight" in sd:
            if run == 0:
                heads.append(int(sd[f"{net}.{i}.trans_block.msa.relative_position_params"].shape[0]))
            run += 1
        else:
            depths.append(run)
            run = 0
    return depths, heads


def tcm_config(sd) -> dict:
    """The configuration of an official TCM state_dict, from its shapes and keys."""
    if "g_a.1.conv1_1.weight" not in sd or "atten_mean.0.0.in_conv.weight" not in sd:
        raise UserError("not a TCM state_dict (no ConvTransBlock at g_a.1 or no SWAtten at atten_mean.0)")
    N = int(sd["g_a.0.conv1.weight"].shape[0]) // 2
    da, ha = _stage_depths(sd, "g_a")
    ds, hs = _stage_depths(sd, "g_s")
    if len(da) != 3 or len(ds) != 3:
        raise UserError(f"not a TCM state_dict: its transforms have {len(da)} / {len(ds)} stages, not 3 / 3")
    M = int(sd[f"g_a.{sum(da) + 3}.weight"].shape[0])
    h_last = max(int(k.split(".")[1]) for k in sd if k.startswith("h_a."))
    num_slices = len({k.split(".")[1] for k in sd if k.startswith("cc_mean_transforms.")})
    s = M // num_slices
    support = (int(sd[f"atten_mean.{num_slices - 1}.0.in_conv.weight"].shape[1]) - M) // s
    atten_dim = int(sd["atten_mean.0.0.in_conv.weight"].shape[0])
    atten_heads = int(sd["atten_mean.0.0.non_local_block.block_1.msa.relative_position_params"].shape[0])
    return {"N": N, "M": M, "z_ch": int(sd[f"h_a.{h_last}.weight"].shape[0]), "depths": tuple(da + ds),
            "head_dims": tuple(N // h for h in ha + hs),
            "hyper_head_dim": N // int(sd["h_a.1.trans_block.msa.relative_position_params"].shape[0]),
            "atten_dim": atten_dim, "atten_head_dim": atten_dim // atten_heads,
            "cc_widths": (int(sd["cc_mean_transforms.0.0.weight"].shape[0]),
                          int(sd["cc_mean_transforms.0.2.weight"].shape[0])),
            "num_slices": num_slices, "max_support_slices": support if support < num_slices - 1 else 5}
