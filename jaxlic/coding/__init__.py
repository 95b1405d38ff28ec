"""Range coding behind one small interface, and the file container."""
from jaxlic.coding.coders import Coder, available_coders, get_coder, CodingError
from jaxlic.coding.container import Container, ContainerError, read_container, write_container

__all__ = ["Coder", "available_coders", "get_coder", "CodingError", "Container", "ContainerError",
           "read_container", "write_container"]
