"""The models, as pure Linen modules. They import neither the coders nor the checkpoint converters;
``jaxlic.registry`` joins models and converters by name."""
