"""jaxlic: learned image compression in JAX/Flax, with real range coding.

    import jaxlic
    codec = jaxlic.load()                      # the default shipped model (or a model file, an official .pth)
    data = codec.compress(image)               # (H, W, 3) uint8 -> bytes
    image2 = codec.decompress(data)            # -> (H, W, 3) uint8

``jaxlic.models()`` lists the registered models, ``jaxlic.model(name, **config)`` gives one's Flax module and
``jaxlic.init(name)`` a codec with random weights. The ``jaxlic`` command line and ``eval.py`` are written on the
same calls.
"""
__version__ = "0.1.0"

from jaxlic.api import (DEFAULT_MAX_PIXELS, Codec, Encoded, Forward, describe, init, load, model,  # noqa: E402
                        models)
from jaxlic.codec import DecodeError, IndexMismatch  # noqa: E402
from jaxlic.errors import UserError  # noqa: E402
from jaxlic.evaluation.metrics import psnr  # noqa: E402
from jaxlic.io import read_image, write_image  # noqa: E402
from jaxlic.training.losses import rd_loss  # noqa: E402
from jaxlic.xla_cpu import jit  # noqa: E402

__all__ = ["Codec", "Encoded", "Forward", "load", "init", "model", "models", "describe", "DEFAULT_MAX_PIXELS",
           "UserError", "DecodeError", "IndexMismatch", "read_image", "write_image", "psnr", "rd_loss", "jit",
           "__version__"]
