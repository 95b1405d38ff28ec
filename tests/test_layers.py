"""Layers against direct (loop) definitions of the PyTorch operations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic.entropy.bounds import lower_bound
from jaxlic.layers import GDN, Conv, ConvTranspose, DepthwiseConv, SubpelConv, pixel_shuffle


def torch_conv2d(x, w, b, stride, pad):
    """NCHW / (O, I, k, k) cross-correlation with zero padding, as torch.nn.functional.conv2d."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = np.einsum("ncij,ocij->no", patch, w)
    return out + b[None, :, None, None]


def torch_conv_transpose2d(x, w, b, stride, pad, out_pad):
    """ConvTranspose2d by its scatter definition: out[i*s - p + k] += x[i] * w[k]; w is (I, O, k, k)."""
    n, c, h, wd = x.shape
    _, o, k, _ = w.shape
    oh, ow = (h - 1) * stride - 2 * pad + k + out_pad, (wd - 1) * stride - 2 * pad + k + out_pad
    full = np.zeros((n, o, (h - 1) * stride + k + out_pad, (wd - 1) * stride + k + out_pad))
    for i in range(h):
        for j in range(wd):
            full[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += np.einsum("nc,cokl->nokl", x[:, :, i, j], w)
    return full[:, :, pad:pad + oh, pad:pad + ow] + b[None, :, None, None]


@pytest.mark.parametrize("k,stride,size", [(5, 2, (7, 6)), (3, 1, (5, 4)), (3, 2, (6, 5)), (1, 2, (4, 4))])
def test_conv_matches_torch_definition(k, stride, size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3) + size)
    layer = Conv(4, k, stride, padding=None if k > 1 else 0)
    v = layer.init(jax.random.key(0), jnp.zeros((2,) + size + (3,)))
    w = rng.normal(size=(4, 3, k, k))
    b = rng.normal(size=4)
    v = {"params": {"kernel": jnp.asarray(w.transpose(2, 3, 1, 0), jnp.float32), "bias": jnp.asarray(b, jnp.float32)}}
    got = layer.apply(v, jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32))
    ref = torch_conv2d(x, w, b, stride, k // 2 if k > 1 else 0)
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("features", [4, 96])  # 96: on CPU one convolution per phase (EXACT_PHASES_MIN_FEATURES)
@pytest.mark.parametrize("k,stride,pad,out_pad,size", [(5, 2, 2, 1, (4, 3)), (3, 2, 1, 1, (3, 5)), (5, 2, 2, 1, (1, 1)),
                                                       (4, 2, 1, 0, (3, 3)), (3, 3, 1, 2, (2, 3)), (2, 4, 0, 1, (2, 3))])
def test_conv_transpose_matches_torch_definition(k, stride, pad, out_pad, size, features):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3) + size)
    w = rng.normal(size=(3, features, k, k))
    b = rng.normal(size=features)
    layer = ConvTranspose(features, k, stride, pad, out_pad)
    v = {"params": {"kernel": jnp.asarray(w.transpose(2, 3, 0, 1), jnp.float32), "bias": jnp.asarray(b, jnp.float32)}}
    got = layer.apply(v, jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32))
    ref = torch_conv_transpose2d(x, w, b, stride, pad, out_pad)
    assert got.shape == (2,) + ref.shape[2:] + (features,)
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), ref, rtol=1e-5, atol=1e-5)
    jitted = jax.jit(layer.apply)(v, jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32))
    np.testing.assert_allclose(np.asarray(jitted).transpose(0, 3, 1, 2), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("features", [4, 96])
def test_conv_transpose_gradients_match_lax_definition(features):
    """The phase form (one convolution, or one per phase) must have the textbook transposed convolution's gradients."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 5, 6, 3)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(5, 5, 3, features)), jnp.float32)
    layer = ConvTranspose(features, 5, 2, use_bias=False)

    def ours(kernel, x):
        return jnp.sum(jnp.sin(layer.apply({"params": {"kernel": kernel}}, x)))

    def textbook(kernel, x):  # dilate by the stride, pad k-1-p (+ output padding), flipped kernel
        y = jax.lax.conv_general_dilated(x, kernel[::-1, ::-1], (1, 1), ((2, 3), (2, 3)), lhs_dilation=(2, 2),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(jnp.sin(y))

    for a, b in zip(jax.jit(jax.grad(ours, (0, 1)))(kernel, x), jax.grad(textbook, (0, 1))(kernel, x)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cin", [3, 96])
@pytest.mark.parametrize("k,stride,pad,size", [(5, 2, 2, (7, 6)), (5, 2, 2, (8, 8)), (3, 2, 1, (6, 5)),
                                              (1, 2, 0, (5, 4)), (4, 4, 0, (9, 8)), (2, 2, 0, (1, 3))])
def test_strided_conv_gradients_match_lax_definition(k, stride, pad, size, cin):
    """A strided Conv's input gradient on CPU is its phase form (``strided_conv``); the values and both gradients,
    jitted and not, must be XLA's autodiff of the plain convolution, odd sizes included."""
    from jaxlic.layers.conv import strided_conv
    rng = np.random.default_rng(k * 10 + stride)
    x = jnp.asarray(rng.normal(size=(2,) + size + (cin,)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, cin, 4)), jnp.float32)

    def plain(x, kernel):
        y = jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest")
        return jnp.sum(jnp.sin(y))

    def ours(x, kernel):
        return jnp.sum(jnp.sin(strided_conv(x, kernel, stride, pad, "highest")))

    want = jax.grad(plain, (0, 1))(x, kernel)
    for grad in (jax.grad(ours, (0, 1)), jax.jit(jax.grad(ours, (0, 1)))):
        for a, b in zip(grad(x, kernel), want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours(x, kernel), plain(x, kernel), rtol=1e-6)


def test_xla_cpu_options_send_convolutions_to_eigen():
    """jaxlic's jits on CPU keep XLA:CPU's convolutions off YNNPACK where that XLA has the option (jax 0.10), and
    are plain ``jax.jit`` where it refuses it (jax 0.5); the values are the convolution's either way."""
    from jaxlic import xla_cpu

    def f(x, w):
        return jax.lax.conv_general_dilated(x, w, (2, 2), ((2, 2), (2, 2)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    rng = np.random.default_rng(0)
    x, w = jnp.asarray(rng.normal(size=(2, 64, 64, 64)), jnp.float32), jnp.asarray(rng.normal(size=(5, 5, 64, 64)), jnp.float32)
    options = xla_cpu.compiler_options()
    if options is None:
        with pytest.raises(Exception, match="xla_cpu_experimental_ynn_fusion_type"):
            jax.jit(f, compiler_options=xla_cpu.OPTIONS).lower(x, w).compile()
    else:
        default = jax.jit(f).lower(x, w).compile().as_text()
        ours = xla_cpu.jit(f).lower(x, w).compile().as_text()
        assert "__ynn_fusion" not in ours, ours
        assert "__ynn_fusion" in default  # else XLA's default changed and the option is no longer needed
    np.testing.assert_allclose(xla_cpu.jit(f)(x, w), f(x, w), rtol=1e-5, atol=1e-3)  # sums of 1600 products ~40


def test_pixel_shuffle_is_pytorch_order():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 3, 4, 12)).astype(np.float32)  # NHWC, C = 3 * 2 * 2
    got = np.asarray(pixel_shuffle(jnp.asarray(x), 2))
    for c in range(3):
        for dy in range(2):
            for dx in range(2):
                np.testing.assert_array_equal(got[0, dy::2, dx::2, c], x[0, :, :, c * 4 + 2 * dy + dx])


def test_subpel_conv_matches_loop_definition():
    """CompressAI's subpel_conv3x3: Conv2d(in, out * r^2, 3, padding=1) then PixelShuffle(r), written as loops
    over output pixels: out[c, r*i + dy, r*j + dx] = conv[c * r^2 + r*dy + dx, i, j]."""
    rng = np.random.default_rng(4)
    r, cin, cout, (h, w) = 2, 2, 5, (3, 4)
    x = rng.normal(size=(2, cin, h, w))
    kernel = rng.normal(size=(cout * r * r, cin, 3, 3))
    bias = rng.normal(size=cout * r * r)
    conv = torch_conv2d(x, kernel, bias, 1, 1)
    ref = np.zeros((2, cout, r * h, r * w))
    for c in range(cout):
        for i in range(r * h):
            for j in range(r * w):
                ref[:, c, i, j] = conv[:, c * r * r + r * (i % r) + j % r, i // r, j // r]
    v = {"params": {"conv": {"kernel": jnp.asarray(kernel.transpose(2, 3, 1, 0), jnp.float32),
                             "bias": jnp.asarray(bias, jnp.float32)}}}
    got = SubpelConv(cout, r).apply(v, jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32))
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k,size", [(3, (5, 4)), (5, (3, 7)), (3, (1, 1))])
def test_depthwise_conv_matches_grouped_conv_definition(k, size):
    """Conv2d(C, C, k, padding=k//2, groups=C): each channel its own k x k cross-correlation (loop reference);
    the gradient agrees with that of lax's grouped convolution."""
    rng = np.random.default_rng(6)
    c = 3
    x = rng.normal(size=(2, c) + size)
    w = rng.normal(size=(c, 1, k, k))
    b = rng.normal(size=c)
    ref = np.concatenate([torch_conv2d(x[:, i:i + 1], w[i:i + 1], b[i:i + 1], 1, k // 2) for i in range(c)], 1)
    kernel = jnp.asarray(w.transpose(2, 3, 1, 0), jnp.float32)
    v = {"params": {"kernel": kernel, "bias": jnp.asarray(b, jnp.float32)}}
    xj = jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32)
    got = DepthwiseConv(k).apply(v, xj)
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), ref, rtol=1e-5, atol=1e-5)

    def grouped(kernel, x):
        return jnp.sum(jax.lax.conv_general_dilated(x, kernel, (1, 1), [(k // 2, k // 2)] * 2,
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                                    feature_group_count=c) ** 2)

    ours = lambda kernel, x: jnp.sum((DepthwiseConv(k, use_bias=False).apply({"params": {"kernel": kernel}}, x)) ** 2)
    for a, e in zip(jax.grad(ours, (0, 1))(kernel, xj), jax.grad(grouped, (0, 1))(kernel, xj)):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_matches_formula_with_reparametrisation(inverse):
    rng = np.random.default_rng(5)
    c = 4
    beta_raw = rng.uniform(0.5, 1.5, c)
    gamma_raw = rng.uniform(-0.01, 0.3, (c, c))  # some entries below the 2^-18 bound
    x = rng.normal(size=(2, 3, 3, c))
    beta = np.maximum(beta_raw, np.sqrt(1e-6 + 2.0 ** -36)) ** 2 - 2.0 ** -36
    gamma = np.maximum(gamma_raw, 2.0 ** -18) ** 2 - 2.0 ** -36
    norm = beta + np.einsum("bhwj,ij->bhwi", x ** 2, gamma)
    ref = x * np.sqrt(norm) if inverse else x / np.sqrt(norm)
    v = {"params": {"beta": jnp.asarray(beta_raw, jnp.float32), "gamma": jnp.asarray(gamma_raw, jnp.float32)}}
    got = GDN(inverse=inverse).apply(v, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_gdn_init_is_compressai_init():
    v = GDN().init(jax.random.key(0), jnp.zeros((1, 2, 2, 3)))
    np.testing.assert_allclose(v["params"]["beta"], np.sqrt(1 + 2.0 ** -36), rtol=1e-7)
    np.testing.assert_allclose(v["params"]["gamma"], np.sqrt(0.1 * np.eye(3) + 2.0 ** -36), rtol=1e-6)


def test_lower_bound_straight_through_gradient():
    x = jnp.array([0.5, 2.0, 0.5, 2.0])
    # d/dx of sum(w * lower_bound(x, 1)): below the bound the gradient passes only when it pushes x up (w < 0).
    w = jnp.array([1.0, 1.0, -1.0, -1.0])
    g = jax.grad(lambda x: jnp.sum(w * lower_bound(x, 1.0)))(x)
    np.testing.assert_array_equal(g, [0.0, 1.0, -1.0, -1.0])
    np.testing.assert_array_equal(lower_bound(x, 1.0), [1.0, 2.0, 1.0, 2.0])
