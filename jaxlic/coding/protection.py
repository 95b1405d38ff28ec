"""The cross-platform protection of a file's coding-table indexes (docs/DESIGN.md, decision 3; docs/format.md).

Two mechanisms and a way to test them, kept apart from the codec's orchestration:
- the **repair** (``jaxlic.coding.repair``) makes a decoder whose scales differ from the encoder's by less than
  the file's robust margin compute the encoder's index for every element;
- the **index checks** (``jaxlic.coding.checks``) stop a decoder whose indexes still differ before the step is
  decoded (``IndexMismatch``), so a mismatch never becomes an image;
- a **simulated platform** (``simulate_drift``) puts a relative error on every scale before its table index, so
  both can be exercised on one machine.

``Protection`` is one file's: the encoder ``record``s every step and ``pack``s the side information into the
header; the decoder, built from that header, ``resolve``s every step's indexes (repaired, then checked) and
``finish``es with the whole-file check.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.coding.checks import IndexChecks
from jaxlic.coding.repair import DECODER_MARGIN, ENCODER_MARGIN, Repair, key
from jaxlic.errors import IndexMismatch, UserError

DEFAULT_ROBUST_MARGIN = 1e-5
_DRIFT_SEED = 20261203


def simulate_drift(scales: jax.Array, rel: float, group: int, t) -> jax.Array:
    """A simulated platform: every scale times ``1 + rel * u``, u uniform in [-1, 1] from a fixed seed per step,
    before its table index (``Codec.decode(..., drift=REL)``; the CLI's ``JAXLIC_SIMULATE_DRIFT``). Indexes
    pass through unchanged."""
    if jnp.issubdtype(scales.dtype, jnp.integer):
        return scales
    k = jax.random.fold_in(jax.random.fold_in(jax.random.key(_DRIFT_SEED), group), t)
    u = jax.random.uniform(k, scales.shape, scales.dtype, -1.0, 1.0)
    return scales * (1 + jnp.asarray(rel, scales.dtype) * u)


def check_drift(rel) -> float:
    """A simulated platform's relative scale error, checked: a number in [0, 1)."""
    try:
        rel = float(rel)
    except (TypeError, ValueError):
        raise UserError(f"simulated drift {rel!r} is not a number (a relative drift such as 1e-5)") from None
    if not 0 <= rel < 1:
        raise UserError(f"simulated drift {rel!r}: the relative drift must be in [0, 1)")
    return rel


class Protection:
    """One file's protection. ``margin`` is the relative distance to a table boundary within which a step's
    prediction must report its elements (``near``: the boundary, or -1): wider on the encoder's side, which
    cannot see the decoder's set, only a superset of it (``jaxlic.coding.repair``)."""

    def __init__(self, checks: IndexChecks | None, repair: Repair, margin: float):
        self.checks, self.repair, self.margin = checks, repair, float(margin)

    @classmethod
    def for_encoder(cls, steps: int, robust_margin: float | None = None, spacing: float = np.inf) -> "Protection":
        """``robust_margin``: the repair's delta (``DEFAULT_ROBUST_MARGIN`` if None; 0 switches the repair off);
        ``spacing``: the smallest relative distance between two boundaries of the model's scale tables, which
        the margin must stay below."""
        repair = Repair(DEFAULT_ROBUST_MARGIN if robust_margin is None else float(robust_margin))  # checks range
        if repair.on and 2 * ENCODER_MARGIN * repair.delta >= spacing:
            raise ValueError(f"robust margin {robust_margin} is too wide for this model's scale table "
                             f"(boundaries {spacing:.3g} apart, relatively)")
        return cls(IndexChecks(steps), repair, ENCODER_MARGIN * repair.delta)

    @classmethod
    def for_decoder(cls, checks: bytes, repair: bytes, steps: int, version: int) -> "Protection":
        """From a file's header; ``ValueError`` if it does not fit ``steps`` coding steps. Files before format 3
        carry no checks."""
        r = Repair.unpack(repair)
        return cls(IndexChecks.unpack(checks, steps) if version >= 3 else None, r, DECODER_MARGIN * r.delta)

    @property
    def delta(self) -> float:
        return self.repair.delta

    @property
    def checked(self) -> bool:
        return self.checks is not None

    def record(self, step: int, idx: np.ndarray, valid: np.ndarray, near) -> None:
        """Encoder: step ``step``'s indexes (flat, padding included, ``valid`` marking the real elements) and,
        per element, the boundary its scale lies near (or -1)."""
        if self.repair.on:
            near = np.asarray(near)
            flagged = np.flatnonzero((near >= 0) & valid)
            self.repair.store(key(step, flagged), idx[flagged] - near[flagged])
        self.checks.add(idx if valid.all() else idx[valid])

    def resolve(self, step: int, idx: np.ndarray, valid: np.ndarray, near, where: str) -> np.ndarray:
        """Decoder: this machine's indexes of step ``step`` made the encoder's where the repair knows its side
        of a boundary, then checked against the file; ``IndexMismatch`` naming ``where`` if they fail."""
        if self.repair.on:
            near = np.asarray(near)
            flagged = np.flatnonzero((near >= 0) & valid)
            if len(flagged):
                idx = idx.copy()
                idx[flagged] = near[flagged] + self.repair.lookup(key(step, flagged))
        if self.checks is not None and not self.checks.verify(idx if valid.all() else idx[valid]):
            raise IndexMismatch(where, self.delta)
        return idx

    def mismatch(self, where: str) -> IndexMismatch:
        return IndexMismatch(where, self.delta)

    def finish(self) -> None:
        """Decoder, after the last step: the check over all steps together (before anything is reconstructed)."""
        if self.checks is not None and not self.checks.verify_all():
            raise IndexMismatch("the file's coding steps taken together", self.delta)

    def pack(self) -> tuple[bytes, bytes]:
        """Encoder: the header's (index checks, repair table)."""
        return self.checks.pack(), self.repair.pack()
