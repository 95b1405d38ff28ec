"""HPCM (official ``lyq133/LIC-HPCM`` layout, class ``HPCM`` of ``HPCM_Base.py`` / ``HPCM_Large.py``) state_dict keys
-> jaxlic, and its configuration from them."""
from __future__ import annotations

import re

import numpy as np

from jaxlic.errors import UserError

_REWRITES = ((r"\.branch\.(\d+)", r".branch_\1"),
             (r"^(y_spatial_prior_adaptor_list_s[123]|context_net)\.(\d+)\.", r"\1_\2."))
# the CDF buffers (rebuilt from the weights) and the GGM's constants (beta is read into the configuration)
BUFFERS = (r"(quantized_cdf|cdf_length|offset)_[yz]", r"entropy_estimation\.(beta|scale_lower_bound\.bound|"
           r"likelihood_lower_bound\.bound)")


def hpcm_key(key: str):
    """Any official HPCM state_dict key -> (flax path, layout), or None (buffers)."""
    fixed = {"scale_table": (("constants", "ggm", "scale_table"), "copy"),
             "means_hyper": (("params", "hyper_prior", "means"), "copy"),
             "scales_hyper": (("params", "hyper_prior", "scales"), "copy")}
    if key in fixed:
        return fixed[key]
    m = re.fullmatch(r"adaptive_params_list\.(\d+)", key)
    if m:
        return ("params", "adaptive_params_list", f"p{m.group(1)}"), "copy"
    for pattern, repl in _REWRITES:
        key = re.sub(pattern, repl, key)
    m = re.fullmatch(r"(.+)\.(weight|bias)", key)
    if not m:
        return None
    parts = [f"layers_{p}" if p.isdigit() else p for p in m.group(1).split(".")]
    if m.group(2) == "bias":
        return ("params", *parts, "bias"), "copy"
    # the transposed convs: the upsampling layers of g_s and h_s (their other layers are residual blocks)
    deconv = re.fullmatch(r"(g_s|h_s)\.branch_\d+", m.group(1)) is not None
    return ("params", *parts, "kernel"), "deconv" if deconv else "conv"


def _count(sd, pattern: str) -> int:
    return len({k.split(".")[pattern.count(".")] for k in sd if k.startswith(pattern)})


def hpcm_config(sd) -> dict:
    """The configuration of an official HPCM state_dict (Base or Large), from its shapes and keys."""
    if "attn_s1.conv_q.weight" not in sd or "means_hyper" not in sd:
        raise UserError("not an HPCM state_dict (no cross-attention attn_s1 or no means_hyper)")
    downs = sorted(int(k.split(".")[2]) for k in sd if re.fullmatch(r"g_a\.branch\.\d+\.weight", k))
    if len(downs) != 4:
        raise UserError(f"not an HPCM state_dict: its g_a has {len(downs)} resampling layers, not 4")
    shape = lambda k: tuple(int(d) for d in sd[k].shape)
    depth = lambda prior, branch: _count(sd, f"{prior}.{branch}.") - (branch == "branch_2")
    out = {"M": shape(f"g_a.branch.{downs[3]}.weight")[0], "N": shape("means_hyper")[1],
           "widths": tuple(shape(f"g_a.branch.{d}.weight")[0] for d in downs[:3]),
           "hyper_width": shape("h_a.branch.1.weight")[0], "deep": downs[3] - downs[2] - 1,
           "prior_depths": (depth("y_spatial_prior_s1_s2", "branch_1"), depth("y_spatial_prior_s1_s2", "branch_2"),
                            depth("y_spatial_prior_s3", "branch_1"), depth("y_spatial_prior_s3", "branch_2"))}
    if "entropy_estimation.beta" in sd:
        out["beta"] = float(np.asarray(sd["entropy_estimation.beta"]).reshape(-1)[0])
    return out
