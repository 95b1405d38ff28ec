"""The exceptions that mean "bad input" (reported as one line by the CLI), as opposed to bugs."""
from jaxlic.codec import DecodeError
from jaxlic.coding.coders import CodingError
from jaxlic.coding.container import ContainerError
from jaxlic.convert.common import ConversionError
from jaxlic.export import CheckpointError
from jaxlic.io import ImageReadError

USER_ERRORS = (DecodeError, CodingError, ContainerError, ConversionError, CheckpointError, ImageReadError,
               ValueError, ImportError, OSError)
