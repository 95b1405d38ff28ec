"""CWAM (official ``prmudgal/CWAM_IC_ISVC`` layout, class ``InvCompress``) state_dict keys -> jaxlic, and its
configuration from them."""
from __future__ import annotations

import re

from jaxlic.convert.compressai import _SUBPEL, ZOO_BUFFERS, zoo_key
from jaxlic.errors import UserError

# the official module tree -> the Flax one: the feature encoding, WACNN and attention modules of each direction
# live in the analysis (g_a) or the synthesis (g_s)
_REWRITES = ((r"^enh\.forw_enh\.", "g_a.forw_enh."), (r"^cnn\.g_a\.", "g_a.cnn."), (r"^attention\.forw_att\.", "g_a.forw_att."),
             (r"^attention\.back_att\.", "g_s.back_att."), (r"^cnn\.g_s\.", "g_s.cnn."), (r"^enh\.back_enh\.", "g_s.back_enh."))
_DECONV = r"g_s\.cnn\.[1368]"
_LINEAR = r".*\.attn\.(qkv|kv|merge1|merge2|proj)"

# ``enh1`` (a CFEMEnhModule with BatchNorm) is built by the official constructor but never called
UNUSED = {r"enh1\..*": "the official InvCompress builds a CFEMEnhModule 'enh1' that its forward never calls"}
BUFFERS = ZOO_BUFFERS + (r".*\.attn\.relative_position_index", *UNUSED)


def cwam_key(key: str):
    for pattern, repl in _REWRITES:
        key = re.sub(pattern, repl, key)
    m = re.fullmatch(r"(.+\.attn)\.(relative_position_bias_table_[xy])", key)
    if m:
        parts = [f"layers_{p}" if p.isdigit() else p for p in m.group(1).split(".")]
        return ("params", *parts, m.group(2)), "copy"
    out = zoo_key(key, _DECONV, subpel=_SUBPEL)
    if out and key.endswith(".weight") and re.fullmatch(_LINEAR, key[:-len(".weight")]):
        return out[0], "linear"
    return out


def cwam_config(sd) -> dict:
    """N from ``h_a.0.weight`` (as the official ``from_state_dict``); a CWAM state_dict has the cross
    window-based attention in its analysis."""
    if "cnn.g_a.4.conv_b.0.attn.kv.weight" not in sd or "h_a.0.weight" not in sd:
        raise UserError("not a CWAM state_dict (no cross window-based attention at cnn.g_a.4)")
    return {"N": int(sd["h_a.0.weight"].shape[0])}
