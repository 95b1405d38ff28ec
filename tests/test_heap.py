import jax
import jax.numpy as jnp
import numpy as np

from jaxlic import heap


def test_each_compilation_trims_glibcs_heap(monkeypatch):
    """The listener fires once per XLA compilation (not per call) and calls glibc's malloc_trim."""
    assert heap.trim_after_compiles()  # Linux with glibc: the platform CI and the benchmarks run on
    calls = []
    monkeypatch.setattr(heap, "_trim", lambda: calls.append(1))
    f = jax.jit(lambda x: jnp.sin(x) * 3.25 + 0.125)
    x = np.arange(7.0, dtype=np.float32)
    f(x).block_until_ready()
    f(x).block_until_ready()
    assert len(calls) == 1
    f(x[:5]).block_until_ready()  # a new shape compiles again
    assert len(calls) == 2
