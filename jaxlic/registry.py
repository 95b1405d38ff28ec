"""Explicit model registry: name -> how to build, convert and code it (no string imports).

It joins the two layers that must not know each other: the models (``jaxlic.models``) and the key maps of the
official checkpoints (``jaxlic.convert``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from jaxlic.convert import compressai as _cai
from jaxlic.convert import cwam as _cwam_keys
from jaxlic.convert import hpcm as _hpcm_keys
from jaxlic.convert import mlicpp as _mlicpp_keys
from jaxlic.convert.common import convert_state_dict, strip_prefixes
from jaxlic.convert import stf as _stf_keys
from jaxlic.convert import tcm as _tcm_keys
from jaxlic.errors import UserError
from jaxlic.models import cheng2020, cwam, elic, hpcm, hyperprior, mlicpp, stf, tcm, vbr


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., Any]              # config kwargs -> flax module
    defaults: dict                         # default config
    key_map: Callable[[str], tuple | None]  # PyTorch key -> (flax path, layout)
    ignore: tuple[str, ...]                # PyTorch buffers that carry no learned state
    description: str = ""
    # official state_dict (prefixes stripped) -> config; raises ValueError if it is not this model
    detect_config: Callable[[Mapping], dict] | None = None
    # keys of official modules that the official forward never calls: regex -> why they are dropped
    unused: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # state_dict -> (state_dict, key map): re-keying that needs the configuration (parameters stacked or split)
    prepare: Callable[[Mapping], tuple] | None = None

    def convert(self, state_dict: Mapping, template) -> dict:
        """Variables shaped as ``template`` from an official state_dict (strict: see ``convert_state_dict``)."""
        sd, key_map = strip_prefixes(state_dict), self.key_map
        if self.prepare is not None:
            sd, key_map = self.prepare(sd)
        return convert_state_dict(sd, key_map, template, self.ignore)


def _cheng(cls):
    return lambda N=192, precision=None: cls(N=N, M=N, precision=precision)


def _elic(chandelier: bool):
    def build(N=192, M=320, groups=None, precision=None):
        return elic.Elic2022(N=N, M=M, groups=None if groups is None else tuple(groups), chandelier=chandelier,
                             precision=precision)
    return build


def _fields(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.name not in ("parent", "name", "precision")}


def _tuples(cls):
    """Config values may come as lists (ml_collections, JSON): the module's tuple fields take tuples."""
    return lambda precision=None, **c: cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()},
                                          precision=precision)


def _zoo(name, build, defaults, description):
    return ModelSpec(name, build, defaults, _cai.KEY_MAPS[name], _cai.ZOO_BUFFERS, description, _cai.DETECT[name])


REGISTRY: dict[str, ModelSpec] = {s.name: s for s in [
    _zoo("bmshj2018-factorized", lambda **c: hyperprior.FactorizedPrior(**c), {"N": 128, "M": 192},
         "Factorized prior, Balle et al. 2018 (CompressAI bmshj2018-factorized)"),
    _zoo("bmshj2018-hyperprior", lambda **c: hyperprior.ScaleHyperprior(**c), {"N": 128, "M": 192},
         "Scale hyperprior, Balle et al. 2018 (CompressAI bmshj2018-hyperprior)"),
    _zoo("mbt2018-mean", lambda **c: hyperprior.MeanScaleHyperprior(**c), {"N": 128, "M": 192},
         "Mean-scale hyperprior, Minnen et al. 2018 (CompressAI mbt2018-mean layout)"),
    _zoo("mbt2018", lambda **c: hyperprior.JointAutoregressive(**c), {"N": 192, "M": 192},
         "Joint autoregressive and hierarchical priors, Minnen et al. 2018 (CompressAI mbt2018; wavefront codec)"),
    _zoo("cheng2020-anchor", _cheng(cheng2020.Cheng2020Anchor), {"N": 128},
         "Cheng et al. 2020 anchor (CompressAI cheng2020-anchor; wavefront codec)"),
    _zoo("cheng2020-attn", _cheng(cheng2020.Cheng2020Attention), {"N": 128},
         "Cheng et al. 2020 with attention (CompressAI cheng2020-attn; wavefront codec)"),
    _zoo("cheng2020-anchor-checkerboard", lambda **c: cheng2020.Cheng2020AnchorCheckerboard(**c), {"N": 192},
         "Cheng et al. 2020 anchor with He et al. 2021's checkerboard context (CompressAI)"),
    _zoo("elic2022-official", _elic(False), {"N": 192, "M": 320, "groups": None},
         "ELIC, He et al. 2022 (CompressAI elic2022-official)"),
    _zoo("elic2022-chandelier", _elic(True), {"N": 192, "M": 320, "groups": None},
         "ELIC as re-implemented by Chandelier 2023 (CompressAI elic2022-chandelier)"),
    _zoo("bmshj2018-hyperprior-vbr", lambda **c: vbr.VariableRateHyperprior(**c, means=False),
         {"N": 192, "M": 320, "vr_entbttlnck": True},
         "Variable-rate scale hyperprior, Kamisli et al. 2024 (CompressAI bmshj2018-hyperprior-vbr)"),
    _zoo("mbt2018-mean-vbr", lambda **c: vbr.VariableRateHyperprior(**c, means=True),
         {"N": 192, "M": 320, "vr_entbttlnck": True},
         "Variable-rate mean-scale hyperprior, Kamisli et al. 2024 (CompressAI mbt2018-mean-vbr)"),
    _zoo("mbt2018-vbr", lambda **c: vbr.VariableRateJointAutoregressive(**c), {"N": 192, "M": 320},
         "Variable-rate joint autoregressive model, Kamisli et al. 2024 (CompressAI mbt2018-vbr; wavefront "
         "forward and codec)"),
    ModelSpec(
        "mlicpp", lambda **c: mlicpp.MLICPlusPlus(**c),
        {"N": 192, "M": 320, "slice_num": 10, "context_window": 5, "old_g_s": False, "old_lrp": False},
        _mlicpp_keys.mlicpp_key, _cai.COMPRESSAI_BUFFERS + _mlicpp_keys.MLICPP_BUFFERS,
        "MLIC++, Jiang & Wang 2023 (official JiangWeibeta/MLIC layout; current and Old modules)",
        _mlicpp_keys.mlicpp_config),
    ModelSpec(
        "cwam", lambda N=192, precision=None: cwam.CWAM(N=N, M=N, precision=precision), {"N": 192},
        _cwam_keys.cwam_key, _cwam_keys.BUFFERS,
        "CWAM, Mudgal & Liu 2024 (official prmudgal/CWAM_IC_ISVC layout; Cheng2020's entropy model, wavefront codec)",
        _cwam_keys.cwam_config, _cwam_keys.UNUSED),
    ModelSpec(
        "stf-zigzag", _tuples(stf.STFZigzag), _fields(stf.STFZigzag), _stf_keys.stf_key, _stf_keys.BUFFERS,
        "Transformer LIC, Shen & Liu 2023 (official stm233/image-compression-with-swin-transformer layout: Swin "
        "transforms, 24 spatial-channel chunks with a sliding window; real codec, one step per chunk)",
        _stf_keys.stf_config, _stf_keys.UNUSED, _stf_keys.prepare),
    ModelSpec(
        "tcm", _tuples(tcm.TCM), _fields(tcm.TCM), _tcm_keys.tcm_key, _tcm_keys.BUFFERS,
        "TCM, Liu et al. 2023 (official jmliu206/LIC_TCM layout: Transformer-CNN mixture blocks, channel slices "
        "with Swin attention; real codec, one step per slice)", _tcm_keys.tcm_config),
    ModelSpec(
        "hpcm", _tuples(hpcm.HPCM), _fields(hpcm.HPCM), _hpcm_keys.hpcm_key, _hpcm_keys.BUFFERS,
        "HPCM, Li et al. 2025 (official lyq133/LIC-HPCM layout, Base and Large: hierarchical progressive context "
        "over three scales, generalized Gaussian entropy model; real codec, 11 steps)", _hpcm_keys.hpcm_config),
]}


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise UserError(f"unknown model {name!r}; available: {sorted(REGISTRY)}")
    return REGISTRY[name]


def detect_model(state_dict: Mapping) -> tuple[str, dict]:
    """(model name, config) of an official state_dict, from its keys and shapes."""
    found = []
    for spec in REGISTRY.values():
        try:
            found.append((spec.name, {**spec.defaults, **spec.detect_config(state_dict)}))
        except ValueError:
            pass
    if len(found) != 1:
        raise UserError("cannot tell which model this checkpoint holds "
                        f"({'none' if not found else ', '.join(n for n, _ in found)} of {sorted(REGISTRY)} "
                        "match its keys); pass --model")
    return found[0]
