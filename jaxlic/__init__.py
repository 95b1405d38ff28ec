"""jaxlic: learned image compression in JAX/Flax, with real range coding.

Entry points: ``jaxlic.codec.Codec`` (compress/decompress with a model), ``jaxlic.export.load_model``
(checkpoints), ``jaxlic.registry.REGISTRY`` (the models), the ``jaxlic`` command line (``jaxlic.cli``).
"""
__version__ = "0.1.0"
