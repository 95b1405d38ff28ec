"""PyTorch state_dict -> Flax variables (numpy in, numpy out; torch only to read .pth files)."""
from jaxlic.convert.common import ConversionError, convert_state_dict, load_torch_state_dict, strip_prefixes

__all__ = ["ConversionError", "convert_state_dict", "load_torch_state_dict", "strip_prefixes"]
