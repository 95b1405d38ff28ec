"""CompressAI checkpoints (its image-model zoo) -> jaxlic: key maps and configurations detected from the keys."""
from __future__ import annotations

import re

import numpy as np

from jaxlic.entropy.tables import CodingTable
from jaxlic.errors import UserError

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
    return zoo_key(key, _GOOGLE_DECONV)


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


# --- CompressAI's image-model zoo -----------------------------------------------------------------------------
# The Flax modules mirror CompressAI's module tree: ``nn.Sequential`` index k is ``layers_k``, ModuleDict and
# ModuleList entries ``name_k``. A family differs only in how its latent codecs nest (prefix rewrites), which
# weights are ConvTranspose2d, and which sub-pixel convs (``Sequential(conv, PixelShuffle)``) it has.
_SUBPEL = r"^((?:g_s|h_s)\.\d+(?:\.(?:subpel_conv|upsample))?)\.0$"


def zoo_key(key: str, deconv: str = r"$^", rewrites: tuple = (), subpel: str | None = None):
    for pattern, repl in rewrites:
        key = re.sub(pattern, repl, key)
    eb = entropy_bottleneck_key(key)
    if eb:
        return eb
    if key == "gaussian_conditional.scale_table":
        return ("constants", "gaussian_conditional", "scale_table"), "copy"
    m = re.fullmatch(r"(.+)\.(weight|bias|beta|gamma)", key)
    if not m:
        return None
    inner, leaf = m.groups()
    layout = ("deconv" if re.fullmatch(deconv, inner) else "conv") if leaf == "weight" else "copy"
    if subpel:
        inner = re.sub(subpel, r"\1.conv", inner)
    parts = [f"layers_{p}" if p.isdigit() else p for p in inner.split(".")]
    return ("params", *parts, "kernel" if leaf == "weight" else leaf), layout


_GOOGLE_DECONV = r"g_s\.\d+|h_s\.[02]"
_CHECKERBOARD = ((r"^latent_codec\.hyper\.", ""), (r"^latent_codec\.y\.y\.gaussian_conditional\.", "gaussian_conditional."),
                 (r"^latent_codec\.y\.", ""))
_ELIC = ((r"^latent_codec\.hyper\.", ""), (r"^latent_codec\.y\.channel_context\.y(\d+)\.", r"channel_context_\1."),
         (r"^latent_codec\.y\.latent_codec\.y(\d+)\.(context_prediction|entropy_parameters)\.", r"\2_\1."),
         (r"^latent_codec\.y\.latent_codec\.y0\.y\.gaussian_conditional\.", "gaussian_conditional."))
_ELIC_DECONV = r"g_s\.(1|5|10|14)|h_s\.[02]"

def vbr_key(key: str):
    """The variable-rate models: the fixed-rate layout plus ``Gain`` and two small MLPs (PyTorch Linear)."""
    if key == "Gain":
        return ("params", "Gain"), "copy"
    m = re.fullmatch(r"(QuantABCD|gayn2zqstep)\.(\d+)\.(weight|bias)", key)
    if m:
        return ("params", m.group(1), f"layers_{m.group(2)}", "kernel" if m.group(3) == "weight" else "bias"), \
            "linear" if m.group(3) == "weight" else "copy"
    m = re.fullmatch(r"scale_to_context\.(weight|bias)", key)  # mbt2018-vbr's Linear(1, 2M)
    if m:
        return ("params", "scale_to_context", "kernel" if m.group(1) == "weight" else "bias"), \
            "linear" if m.group(1) == "weight" else "copy"
    return zoo_key(key, _GOOGLE_DECONV)


KEY_MAPS = {
    "bmshj2018-factorized": lambda k: zoo_key(k, _GOOGLE_DECONV),
    "bmshj2018-hyperprior": lambda k: zoo_key(k, _GOOGLE_DECONV),
    "mbt2018-mean": lambda k: zoo_key(k, _GOOGLE_DECONV),
    "mbt2018": lambda k: zoo_key(k, _GOOGLE_DECONV),
    "cheng2020-anchor": lambda k: zoo_key(k, subpel=_SUBPEL),
    "cheng2020-attn": lambda k: zoo_key(k, subpel=_SUBPEL),
    "cheng2020-anchor-checkerboard": lambda k: zoo_key(k, rewrites=_CHECKERBOARD, subpel=_SUBPEL),
    "elic2022-official": lambda k: zoo_key(k, _ELIC_DECONV + r"|h_s\.4", _ELIC),
    "elic2022-chandelier": lambda k: zoo_key(k, _ELIC_DECONV, _ELIC),
    "bmshj2018-hyperprior-vbr": vbr_key,
    "mbt2018-mean-vbr": vbr_key,
    "mbt2018-vbr": vbr_key,
}
# buffers beyond COMPRESSAI_BUFFERS: context masks (recomputed), the hyper codec's entropy-bottleneck target,
# and ELIC's per-group Gaussian tables after the first (``elic_config`` checks that they equal it)
ZOO_BUFFERS = COMPRESSAI_BUFFERS + (
    r"(.*\.)?context_prediction\.mask", r"latent_codec\.hyper\.entropy_bottleneck\.target",
    r"latent_codec\.(y\.)+(latent_codec\.y\d+\.y\.)?gaussian_conditional\.(scale_bound|lower_bound_scale\.bound|"
    r"likelihood_lower_bound\.bound)",
    r"latent_codec\.y\.latent_codec\.y[1-9]\d*\.y\.gaussian_conditional\.scale_table",
    r"lower_bound_zqstep\.bound", r"QuantOffset",  # the VBR models' constant bound; a key CompressAI deletes
)


def _shape(sd, key, what):
    try:
        return tuple(int(d) for d in sd[key].shape)
    except KeyError:
        raise UserError(f"not a {what} state_dict: no {key!r}") from None


def _reject(what, cond, why):
    if cond:
        raise UserError(f"not a {what} state_dict ({why})")


def factorized_config(sd) -> dict:
    what = "bmshj2018-factorized"
    _reject(what, "h_a.0.weight" in sd or "g_a.0.conv1.weight" in sd, "it has a hyperprior or residual blocks")
    return {"N": _shape(sd, "g_a.0.weight", what)[0], "M": _shape(sd, "g_a.6.weight", what)[0]}


def _google_hyper(sd, what, means: bool, context: bool, vbr: bool = False) -> dict:
    N, M = _shape(sd, "g_a.0.weight", what)[0], _shape(sd, "g_a.6.weight", what)[0]
    _reject(what, ("Gain" in sd) != vbr, "it is a variable-rate model" if not vbr else "it has no rate gains")
    out = _shape(sd, "h_s.4.weight", what)[0]
    _reject(what, out != (2 * M if means else M), f"its hyper-synthesis gives {out} channels")
    _reject(what, ("context_prediction.weight" in sd) != context,
            "it has an autoregressive context" if not context else "it has no autoregressive context")
    return {"N": N, "M": M}


def scale_hyperprior_config(sd) -> dict:
    return _google_hyper(sd, "bmshj2018-hyperprior", means=False, context=False)


def mean_scale_config(sd) -> dict:
    return _google_hyper(sd, "mbt2018-mean", means=True, context=False)


def joint_config(sd) -> dict:
    return _google_hyper(sd, "mbt2018", means=True, context=True)


def _vbr(sd, what, means: bool) -> dict:
    return {**_google_hyper(sd, what, means=means, context=False, vbr=True),
            "vr_entbttlnck": "gayn2zqstep.0.weight" in sd}


def joint_vbr_config(sd) -> dict:
    what = "mbt2018-vbr"
    _reject(what, "gayn2zqstep.0.weight" in sd, "it has a variable-step hyper-latent, which mbt2018-vbr lacks")
    _shape(sd, "scale_to_context.weight", what)
    return _google_hyper(sd, what, means=True, context=True, vbr=True)


def scale_hyperprior_vbr_config(sd) -> dict:
    return _vbr(sd, "bmshj2018-hyperprior-vbr", means=False)


def mean_scale_vbr_config(sd) -> dict:
    return _vbr(sd, "mbt2018-mean-vbr", means=True)


def _cheng(sd, what, attention: bool, checkerboard: bool) -> dict:
    N = _shape(sd, "g_a.0.conv1.weight", what)[0]
    ctx = "latent_codec.y.context_prediction.weight" if checkerboard else "context_prediction.weight"
    _shape(sd, ctx, what)
    _reject(what, ("g_a.3.conv_a.0.conv.0.weight" in sd) != attention,
            "it has attention blocks" if not attention else "it has no attention blocks")
    return {"N": N}


def cheng_anchor_config(sd) -> dict:
    return _cheng(sd, "cheng2020-anchor", attention=False, checkerboard=False)


def cheng_attn_config(sd) -> dict:
    return _cheng(sd, "cheng2020-attn", attention=True, checkerboard=False)


def cheng_checkerboard_config(sd) -> dict:
    return _cheng(sd, "cheng2020-anchor-checkerboard", attention=False, checkerboard=True)


def _elic(sd, what, chandelier: bool) -> dict:
    N = _shape(sd, "g_a.0.weight", what)[0]
    groups, k = [], 0
    while f"latent_codec.y.latent_codec.y{k}.context_prediction.weight" in sd:
        groups.append(int(sd[f"latent_codec.y.latent_codec.y{k}.context_prediction.weight"].shape[1]))
        k += 1
    _reject(what, not groups, "no channel groups")
    last = _shape(sd, "latent_codec.hyper.h_s.4.weight", what)
    # official: ConvTranspose2d(3N/2, 2N) stored (in, out, k, k); Chandelier: Conv2d(3N/2, 2M) stored (out, in, k, k)
    _reject(what, (last[1] == N * 3 // 2) != chandelier, "its hyper-synthesis ends differently")
    table = sd.get("latent_codec.y.latent_codec.y0.y.gaussian_conditional.scale_table")
    for j in range(1, len(groups)):
        other = sd.get(f"latent_codec.y.latent_codec.y{j}.y.gaussian_conditional.scale_table")
        if table is not None and other is not None and not np.array_equal(np.asarray(table), np.asarray(other)):
            raise UserError(f"{what}: channel group {j} has its own Gaussian scale table; jaxlic codes every "
                            "group with one (CompressAI's default gives all groups the same)")
    return {"N": N, "M": sum(groups), "groups": tuple(groups)}


def elic_official_config(sd) -> dict:
    return _elic(sd, "elic2022-official", chandelier=False)


def elic_chandelier_config(sd) -> dict:
    return _elic(sd, "elic2022-chandelier", chandelier=True)


DETECT = {
    "bmshj2018-factorized": factorized_config, "bmshj2018-hyperprior": scale_hyperprior_config,
    "mbt2018-mean": mean_scale_config, "mbt2018": joint_config, "cheng2020-anchor": cheng_anchor_config,
    "cheng2020-attn": cheng_attn_config, "cheng2020-anchor-checkerboard": cheng_checkerboard_config,
    "elic2022-official": elic_official_config, "elic2022-chandelier": elic_chandelier_config,
    "bmshj2018-hyperprior-vbr": scale_hyperprior_vbr_config, "mbt2018-mean-vbr": mean_scale_vbr_config,
    "mbt2018-vbr": joint_vbr_config,
}
