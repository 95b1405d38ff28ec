"""Lower bound with CompressAI's straight-through gradient."""
import jax
import jax.numpy as jnp


@jax.custom_vjp
def lower_bound(x: jax.Array, bound) -> jax.Array:
    """max(x, bound); the gradient passes where x >= bound or where it pushes x upwards (grad < 0).

    A plain ``maximum`` would zero the gradient below the bound and parameters stuck there could never
    recover (CompressAI ``LowerBoundFunction``).
    """
    return jnp.maximum(x, jnp.asarray(bound, x.dtype))


def _fwd(x, bound):
    return lower_bound(x, bound), (x, bound)


def _bwd(res, g):
    x, bound = res
    pass_through = (x >= bound) | (g < 0)
    return jnp.where(pass_through, g, jnp.zeros_like(g)), jnp.zeros_like(jnp.asarray(bound, x.dtype))


lower_bound.defvjp(_fwd, _bwd)
