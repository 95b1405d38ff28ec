"""The transformer LIC of Shen & Liu (official ``stm233/image-compression-with-swin-transformer`` layout, class
``SymmetricalTransFormer5``) state_dict keys -> jaxlic, and its configuration from them."""
from __future__ import annotations

import math
import re

import numpy as np

from jaxlic.convert.compressai import COMPRESSAI_BUFFERS, entropy_bottleneck_key
from jaxlic.convert.common import ConversionError
from jaxlic.errors import UserError
from jaxlic.layers.swin import relative_position_index

# ModuleLists: their indices join the name (``layers.2`` -> ``layers_2``; the context Swin stacks are lists of
# lists, ``mu_Swin2.5.1`` -> ``mu_Swin2_5_1``); any other index is an nn.Sequential position (``layers_4``)
_LISTS = {"layers": 1, "syn_layers": 1, "blocks": 1, "end_conv": 1, "cc_mean_transforms2": 1,
          "cc_scale_transforms2": 1, "lrp_transforms2": 1, "mu_Swin2": 2, "sigma_Swin2": 2, "LRP_Swin2": 2}
_LINEAR = r".*\.(attn\.(qkv|proj)|mlp\.fc[12]|downsample\.reduction)"
_NORM = ("norm", "norm1", "norm2")

# The official loader (``train.py``) deletes every ``h_s.*`` key before loading: an older model's single
# hyper-synthesis that this model replaced by ``h_mean_s`` / ``h_scale_s``
UNUSED = {r"h_s\..*": "the official loader drops h_s.* (a hyper-synthesis this model no longer has)"}
BUFFERS = COMPRESSAI_BUFFERS + (r".*\.attn\.relative_position_index", *UNUSED)


def stf_key(key: str):
    """Any official key -> (flax path, layout), or None for buffers."""
    if key == "gaussian_conditional.scale_table":
        return ("constants", "gaussian_conditional", "scale_table"), "copy"
    eb = entropy_bottleneck_key(key)
    if eb:
        return eb
    m = re.fullmatch(r"(.+)\.(weight|bias|relative_position_bias_table)", key)
    if not m:
        return None
    inner, leaf = m.groups()
    inner = re.sub(r"^(h_mean_s|h_scale_s)\.(\d+)\.0$", r"\1.\2.conv", inner)  # subpel: Sequential(conv, shuffle)
    parts, join = [], 0
    for tok in inner.split("."):
        if tok.isdigit() and join:
            parts[-1] += f"_{tok}"
            join -= 1
        elif tok.isdigit():
            parts.append(f"layers_{tok}")
        else:
            parts.append(tok)
            join = _LISTS.get(tok, 0)
    if leaf == "relative_position_bias_table":
        return ("params", *parts, leaf), "copy"
    if parts[-1] in _NORM:
        return ("params", *parts, "scale" if leaf == "weight" else "bias"), "copy"
    if leaf == "bias":
        return ("params", *parts, "bias"), "copy"
    return ("params", *parts, "kernel"), "linear" if re.fullmatch(_LINEAR, inner) else "conv"


def _count(sd, fmt: str) -> int:
    n = 0
    while any(k.startswith(fmt.format(n) + ".") for k in sd):
        n += 1
    return n


def _table(sd, prefix):
    """(heads, window) of a window attention, from its relative-position table ((2 ws - 1)^2, heads)."""
    rows, heads = sd[f"{prefix}.attn.relative_position_bias_table"].shape
    return int(heads), (math.isqrt(int(rows)) + 1) // 2


def check_position_indexes(sd) -> None:
    """Every stored ``relative_position_index`` must be Swin's for its window (jaxlic recomputes it)."""
    for k, v in sd.items():
        if k.endswith(".attn.relative_position_index"):
            ws = math.isqrt(int(np.asarray(v).shape[0]))
            if not np.array_equal(np.asarray(v), relative_position_index(ws)):
                raise ConversionError(f"{k} is not Swin's relative-position index for window {ws} (jaxlic "
                                      "recomputes it; a checkpoint that differs was built by other code)")


def stf_config(sd) -> dict:
    """The configuration of an official state_dict, from its shapes (the chunk order is not stored: official)."""
    if "patch_embed.proj.weight" not in sd or "mu_Swin2.0.0.blocks.0.attn.qkv.weight" not in sd:
        raise UserError("not a Shen & Liu (SymmetricalTransFormer5) state_dict (no patch_embed / mu_Swin2)")
    try:
        embed, _, patch, _ = (int(d) for d in sd["patch_embed.proj.weight"].shape)
        stages = _count(sd, "layers.{}")
        depths = tuple(_count(sd, f"layers.{i}.blocks.{{}}") for i in range(stages))
        heads = tuple(_table(sd, f"layers.{i}.blocks.0")[0] for i in range(stages))
        window = _table(sd, "layers.0.blocks.0")[1]
        hidden = int(sd["layers.0.blocks.0.mlp.fc1.weight"].shape[0])
        hyper = tuple(int(sd[f"h_a.{i}.weight"].shape[0]) for i in (2, 4, 6))
        z_ch = int(sd["h_a.8.weight"].shape[0])
        K = _count(sd, "cc_mean_transforms2.{}")
        cw = int(sd["cc_mean_transforms2.0.8.weight"].shape[0])
        widths = tuple(int(sd[f"cc_mean_transforms2.0.{i}.weight"].shape[0]) for i in (0, 2, 4, 6))
        ins = [int(sd[f"cc_mean_transforms2.{k}.0.weight"].shape[1]) for k in range(K)]
        ctx_heads, ctx_window = _table(sd, "mu_Swin2.0.0.blocks.0")
        swin_depths = {name: tuple(_count(sd, f"{name}.0.{j}.blocks.{{}}") for j in range(_count(sd, f"{name}.0.{{}}")))
                       for name in ("mu_Swin2", "sigma_Swin2", "LRP_Swin2")}
    except KeyError as e:
        raise UserError(f"not a Shen & Liu (SymmetricalTransFormer5) state_dict: no {e}") from None
    M = embed * 2 ** (stages - 1)
    slices = M // cw
    grid = math.isqrt(K // slices)
    if slices * grid * grid != K or M % cw:
        raise UserError(f"{K} chunks of {cw} channels do not tile a {M}-channel latent on a square grid")
    if ins[0] != M * grid * grid:
        raise UserError(f"the first chunk's context sees {ins[0]} channels, not the whole hyperprior ({M * grid * grid})")
    return {"embed_dim": embed, "depths": depths, "heads": heads, "window": window, "patch": patch,
            "mlp_ratio": hidden / embed, "hyper_widths": hyper, "z_ch": z_ch, "num_slices": slices, "grid": grid,
            "max_support": (max(ins) - ins[0]) // cw, "context_widths": widths, "context_heads": ctx_heads,
            "context_window": ctx_window, "mu_depths": swin_depths["mu_Swin2"],
            "sigma_depths": swin_depths["sigma_Swin2"], "lrp_depths": swin_depths["LRP_Swin2"]}


# The per-chunk networks are stored stacked over chunks (``chunks/...``, index k) and their first convolutions
# split: the part that sees the hyperprior is stacked over chunks too (``cc_mean_hyper`` ...), the part that sees
# the decoded chunks goes into a ragged store of min(k, W) (LRP: + 1) slots per chunk, chunk after chunk (see
# ``jaxlic.models.stf``)
_NETS = {"cc_mean_transforms2": ("cc_mean", "cc_mean_support", 0),
         "cc_scale_transforms2": ("cc_scale", "cc_scale_support", 0),
         "lrp_transforms2": ("lrp", "lrp_support", 1)}


def prepare(sd):
    """(state_dict with each chunk's first convolution split into its hyperprior and support parts, the key
    map for it): the conversion's model-specific step, which needs the configuration."""
    from jaxlic.models.stf import support_slots

    cfg = stf_config(sd)
    check_position_indexes(sd)
    M = cfg["embed_dim"] * 2 ** (len(cfg["depths"]) - 1)
    cw = M // cfg["num_slices"]
    K = cfg["num_slices"] * cfg["grid"] ** 2
    W = min(cfg["max_support"], K - 1)
    slots = {extra: support_slots(K, W, extra) for extra in (0, 1)}
    out = {}
    for key, v in sd.items():
        m = re.fullmatch(r"(%s)\.(\d+)\.0\.weight" % "|".join(_NETS), key)
        if not m:
            out[key] = v
            continue
        v = np.asarray(v)
        out[f"{key}#hyper"] = v[:, :K * cw].transpose(0, 2, 3, 1)  # (out, 3, 3, in): jaxlic's stored layout
        support = v[:, K * cw:]
        n = support.shape[1] // cw
        if support.shape[1]:
            out[f"{key}#support"] = support.reshape(v.shape[0], n, cw, *v.shape[2:]).transpose(1, 3, 4, 2, 0)

    def key_map(key):
        m = re.fullmatch(r"(%s)\.(\d+)\.(\d+)\.(weight|bias)(#hyper|#support)?" % "|".join(_NETS), key)
        if m:
            net, store, extra = _NETS[m.group(1)]
            k, layer, leaf, part = int(m.group(2)), int(m.group(3)), m.group(4), m.group(5)
            if part == "#support":
                start, count = slots[extra][0][k], slots[extra][1][k]
                return ("params", store), "copy", slice(start, start + count)
            if layer == 0 and part:
                return ("params", f"{net}_hyper"), "copy", k
            if layer == 0:
                return ("params", "chunks", net, "bias"), "copy", k
            return ("params", "chunks", net, f"layers_{layer}", "kernel" if leaf == "weight" else "bias"), \
                "conv" if leaf == "weight" else "copy", k
        m = re.fullmatch(r"(mu_Swin2|sigma_Swin2|LRP_Swin2)\.(\d+)\.(\d+)\.(.+)", key)
        if m:
            inner = stf_key(f"stage.{m.group(4)}")
            if inner is None:
                return None
            path, layout = inner
            return ("params", "chunks", f"{m.group(1)}_{m.group(3)}", *path[2:]), layout, int(m.group(2))
        return stf_key(key)

    return out, key_map
