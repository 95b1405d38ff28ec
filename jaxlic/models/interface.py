"""The model interface: exactly what the codec, the trainer, model files and the front door use of a model.

Every registered model is a Flax Linen module with these members (``tests/test_interface.py`` checks each of
them, and that they agree with one another, for every registered model):

- ``downsampling``: inputs are padded to a multiple of this (the coarsest latent's stride);
- ``__call__(x, training=False, rng=None)``: the training / evaluation forward of images in [0, 1], NHWC:
  a dict with ``x_hat`` and ``likelihoods`` (latent name -> likelihoods of its elements), and the latents;
  ``training`` replaces rounding by noise (``rng`` needed);
- ``analysis(x)``: the latents the codec codes (``{"y": ..., "z": ...}``), ``synthesis(y_hat)``: the image;
- ``latent_shapes(batch, height, width)``: their NHWC shapes for a padded input;
- ``plan(shapes)``: the coding steps (``jaxlic.plan.Plan``), whose groups name their entropy models as objects
  (``StepGroup.entropy``); the codec runs it;
- ``aux_loss()``: the factorized priors' quantile loss, trained beside the rate-distortion loss;
- ``build_tables(variables)`` (static): the integer coding tables, keyed by the plan groups' ``table``;
- ``rated``: False, or True for a variable-rate model, which also has ``levels`` (its learned rates), takes
  ``level=`` / ``gain=`` in ``__call__``, ``analysis(x, gain)`` (the latents scaled as its codec codes them),
  starts its plan from the state ``{"gain": g}`` and builds the tables that follow the rate with
  ``rate_tables(variables, gain)`` (``jaxlic.models.vbr``).

The converters of official checkpoints know none of these: they map state-dict keys to the variables' names.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

from jaxlic.entropy.tables import CodingTable
from jaxlic.plan import Plan


@runtime_checkable
class CompressionModel(Protocol):
    downsampling: int
    rated: bool

    def __call__(self, x, training: bool = False, rng: Any = None) -> dict: ...

    def analysis(self, x) -> dict: ...

    def synthesis(self, y_hat) -> Any: ...

    def latent_shapes(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]: ...

    def plan(self, shapes: Mapping[str, tuple[int, ...]]) -> Plan: ...

    def aux_loss(self) -> Any: ...

    @staticmethod
    def build_tables(variables) -> dict[str, CodingTable]: ...
