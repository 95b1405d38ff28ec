"""Entropy models: quantization, bounds, the factorized prior, the Gaussian conditional and coding tables."""
from jaxlic.entropy.bounds import lower_bound
from jaxlic.entropy.quantization import quantize, ste_round, symbols_of
from jaxlic.entropy.factorized import EntropyBottleneck
from jaxlic.entropy.gaussian import GaussianConditional, gaussian_likelihood, build_indexes, default_scale_table
from jaxlic.entropy.tables import CodingTable, pmf_to_quantized_cdf

__all__ = [
    "lower_bound", "quantize", "ste_round", "symbols_of", "EntropyBottleneck", "GaussianConditional",
    "gaussian_likelihood", "build_indexes", "default_scale_table", "CodingTable", "pmf_to_quantized_cdf",
]
