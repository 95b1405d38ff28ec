"""PyTorch's default initialisers (kaiming_uniform(a=sqrt(5)) and its bias rule), so fresh models train alike."""
import math

import jax
import jax.numpy as jnp


def torch_conv_kernel_init(fan_in: int):
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


torch_conv_bias_init = torch_conv_kernel_init
