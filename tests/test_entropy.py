"""Entropy models against independent computations (scipy, closed forms) and their invariants."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from jaxlic.entropy import EntropyBottleneck, build_indexes, default_scale_table, gaussian_likelihood, quantize
from jaxlic.entropy.factorized import factorized_table
from jaxlic.entropy.gaussian import gaussian_table
from jaxlic.entropy.tables import pmf_to_quantized_cdf


def _perturbed_eb(channels=4, seed=0):
    eb = EntropyBottleneck(channels)
    v = eb.init(jax.random.key(seed), jnp.zeros((1, 2, 2, channels)))
    leaves, tree = jax.tree_util.tree_flatten(v)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [l + 0.3 * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)]
    return eb, jax.tree_util.tree_unflatten(tree, leaves)


def test_factorized_likelihood_sums_to_one_over_integers():
    eb, v = _perturbed_eb()
    grid = jnp.arange(-200, 201, dtype=jnp.float32)
    x = jnp.broadcast_to(grid[:, None, None, None], (401, 1, 1, 4))
    p = eb.apply(v, x, method="likelihood")
    np.testing.assert_allclose(np.asarray(p).sum(axis=0).ravel(), 1.0, atol=1e-5)


def test_factorized_likelihood_is_cdf_difference():
    """P(x-1/2 < X < x+1/2) equals the independent float64 CDF difference sigmoid(f(x+1/2)) - sigmoid(f(x-1/2))."""
    eb, v = _perturbed_eb(3, seed=2)
    p = {k: np.asarray(a, np.float64) for k, a in v["params"].items()}

    def cdf(t):  # independent float64 evaluation of the cumulative, per channel
        out = []
        for c in range(3):
            h = np.array([[t]])
            for k in range(5):
                h = np.log1p(np.exp(p[f"matrix{k}"][c])) @ h + p[f"bias{k}"][c]
                if k < 4:
                    h = h + np.tanh(p[f"factor{k}"][c]) * np.tanh(h)
            out.append(1 / (1 + np.exp(-h[0, 0])))
        return np.array(out)

    for t in (-3.0, -0.4, 0.0, 1.7, 6.0):
        ref = cdf(t + 0.5) - cdf(t - 0.5)
        got = eb.apply(v, jnp.full((1, 1, 1, 3), t), method="likelihood")
        np.testing.assert_allclose(np.asarray(got).ravel(), np.maximum(ref, 1e-9), rtol=2e-4, atol=1e-7)


def test_factorized_gradients_are_finite_and_aux_loss_trains_quantiles():
    eb, v = _perturbed_eb()
    x = jax.random.normal(jax.random.key(3), (2, 4, 4, 4)) * 3

    def rate(params, x):
        _, lik = eb.apply({"params": params}, x, "noise", jax.random.key(0))
        return -jnp.log2(lik).sum()

    gp, gx = jax.grad(rate, (0, 1))(v["params"], x)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves((gp, gx)))
    # and their values: central differences along random directions (the noise fixed by the key), in the input
    # and in the density's parameters (matrices, biases, factors; the quantiles are the aux loss')
    from jax.test_util import check_grads
    density = {k: a for k, a in v["params"].items() if k != "quantiles"}
    with_density = lambda d, x: rate({**v["params"], **d}, x)
    check_grads(with_density, (density, x), order=1, modes=["rev"], eps=1e-2, atol=5e-2, rtol=5e-2)
    aux = lambda q: eb.apply({"params": {**v["params"], "quantiles": q}}, method="aux_loss")
    opt = optax.adam(0.5)

    @jax.jit
    def step(q, state):
        g = jax.grad(aux)(q)
        u, state = opt.update(g, state)
        return optax.apply_updates(q, u), state

    q = v["params"]["quantiles"]
    first, state = float(aux(q)), opt.init(q)
    for _ in range(300):
        q, state = step(q, state)
    assert float(aux(q)) < 0.2 * first


def test_gaussian_likelihood_matches_scipy():
    rng = np.random.default_rng(0)
    y = np.round(rng.normal(0, 5, 1000)) + rng.normal(0, 1, 1000)
    mu = rng.normal(0, 2, 1000)
    s = np.exp(rng.uniform(np.log(0.05), np.log(50), 1000))
    se = np.maximum(s, 0.11)
    ref = stats.norm.cdf(y + 0.5, mu, se) - stats.norm.cdf(y - 0.5, mu, se)
    got = gaussian_likelihood(jnp.asarray(y, jnp.float32), jnp.asarray(s, jnp.float32), jnp.asarray(mu, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), np.maximum(ref, 1e-9), rtol=1e-3, atol=2e-6)


@pytest.mark.parametrize("scale", [0.11, 0.7, 3.0, 40.0])
def test_gaussian_likelihood_sums_to_one(scale):
    k = jnp.arange(-2000, 2001, dtype=jnp.float32)
    p = gaussian_likelihood(k, jnp.full_like(k, scale), jnp.full_like(k, 0.3), likelihood_bound=0)
    assert abs(float(p.sum()) - 1.0) < 1e-5


def test_gaussian_gradients_match_the_closed_form_and_the_bounds_pass_through():
    """The rate's gradient in means and scales against the closed form, d/dmu and d/ds of -log2(Phi(a) - Phi(b))
    with a = (y + 1/2 - mu) / s, b = (y - 1/2 - mu) / s (scipy), where no bound is active; below the scale bound
    (CompressAI's LowerBound) the gradient passes only where it pushes the scale up, and at the likelihood bound
    (a value 40 sigma away) it stays finite."""
    rng = np.random.default_rng(0)
    y = np.round(rng.normal(0, 3, 200)) + rng.uniform(-0.3, 0.3, 200)
    mu, s = rng.normal(0, 2, 200), np.exp(rng.uniform(np.log(0.3), np.log(20), 200))
    rate = lambda s_, m_: -jnp.log2(gaussian_likelihood(jnp.asarray(y, jnp.float32), s_, m_)).sum()
    gs, gm = jax.grad(rate, (0, 1))(jnp.asarray(s, jnp.float32), jnp.asarray(mu, jnp.float32))
    a, b = (y + 0.5 - mu) / s, (y - 0.5 - mu) / s
    p = stats.norm.cdf(a) - stats.norm.cdf(b)
    dp_dmu = -(stats.norm.pdf(a) - stats.norm.pdf(b)) / s
    dp_ds = -(a * stats.norm.pdf(a) - b * stats.norm.pdf(b)) / s
    inside = p > 1e-6  # away from the likelihood bound (1e-9) and float32's tail
    assert inside.sum() > 150
    p, dp_dmu, dp_ds = p[inside], dp_dmu[inside], dp_ds[inside]
    np.testing.assert_allclose(np.asarray(gm)[inside], -dp_dmu / (p * np.log(2)), rtol=2e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gs)[inside], -dp_ds / (p * np.log(2)), rtol=2e-3, atol=1e-5)
    # below the bound 0.11 (scales 0.05): y near the mean wants a smaller scale (gradient > 0 without the bound;
    # blocked), y farther away a larger one (passes: the closed form at the bound)
    y2 = jnp.array([0.03, 0.6])
    rate2 = lambda bound: jax.grad(lambda s_: -jnp.log2(gaussian_likelihood(y2, s_, jnp.zeros(2),
                                                                            scale_bound=bound)).sum())(
        jnp.array([0.05, 0.05]))
    free, bounded = rate2(1e-6), rate2(0.11)
    a2, b2 = (0.5 - 0.6) / 0.11, (-0.5 - 0.6) / 0.11
    at_bound = (a2 * stats.norm.pdf(a2) - b2 * stats.norm.pdf(b2)) / 0.11 / (
        (stats.norm.cdf(a2) - stats.norm.cdf(b2)) * np.log(2))
    assert float(free[0]) > 0 and float(bounded[0]) == 0.0
    assert float(bounded[1]) < 0 and float(bounded[1]) == pytest.approx(at_bound, rel=1e-4)
    g = jax.grad(lambda s_, m_: -jnp.log2(gaussian_likelihood(jnp.array([40.0]), s_, m_)).sum(), (0, 1))(
        jnp.array([1.0]), jnp.array([0.0]))
    assert all(np.isfinite(np.asarray(t)).all() for t in g)


def test_build_indexes_matches_search():
    table = default_scale_table()
    s = np.concatenate([table, table * 1.0001, table * 0.9999, [0.0, 0.05, 1e4]]).astype(np.float32)
    got = np.asarray(build_indexes(jnp.asarray(s), table))
    ref = np.array([np.sum(max(v, np.float32(0.11)) > table[:-1]) for v in s])
    np.testing.assert_array_equal(got, ref)
    assert got.min() == 0 and got.max() == len(table) - 1


def test_quantization_modes():
    x = jnp.linspace(-3, 3, 101)
    m = jnp.full_like(x, 0.25)
    noisy = quantize(x, "noise", rng=jax.random.key(0))
    assert float(jnp.abs(noisy - x).max()) <= 0.5
    # the noise is U(-1/2, 1/2): its moments and range (not merely bounded: no noise would pass that)
    u = np.asarray(quantize(jnp.zeros(20000), "noise", rng=jax.random.key(1)))
    assert abs(u.mean()) < 0.01 and abs(u.std() - 12 ** -0.5) < 0.005 and u.min() < -0.49 and u.max() > 0.49
    assert not np.array_equal(u, np.asarray(quantize(jnp.zeros(20000), "noise", rng=jax.random.key(2))))
    np.testing.assert_array_equal(quantize(x, "dequantize", m), jnp.round(x - 0.25) + 0.25)
    np.testing.assert_array_equal(quantize(x, "symbols", m), np.round(np.asarray(x) - 0.25).astype(np.int32))
    np.testing.assert_array_equal(jax.grad(lambda x: quantize(x, "ste", m).sum())(x), np.ones(101))
    with pytest.raises(ValueError, match="unknown quantization mode"):
        quantize(x, "bogus")


def test_quantized_cdf_properties():
    rng = np.random.default_rng(1)
    for n in (2, 5, 300, 3000):
        pmf = rng.dirichlet(np.full(n, 0.3))
        cdf = pmf_to_quantized_cdf(pmf, 16)
        freq = np.diff(cdf)
        assert cdf[0] == 0 and cdf[-1] == 65536 and freq.min() >= 1 and len(cdf) == n + 1
        # the quantized model codes the true distribution at close to its entropy
        kl = np.sum(pmf * np.log2(pmf / (freq / 65536.0)))
        assert kl < 0.01 + n / 65536 * 2


def test_tables_cover_the_models():
    gt = gaussian_table(default_scale_table())
    gt.validate()
    assert gt.num_tables == 64 and gt.offset[0] == -1
    eb, v = _perturbed_eb()
    ft = factorized_table(v["params"])
    ft.validate()
    assert ft.num_tables == 4


def test_generalized_gaussian_likelihood_derivative_and_tables_match_scipy():
    """HPCM's GGM (beta 1.5): the likelihood is scipy's gennorm mass of [r - 1/2, r + 1/2] at max(scale, 0.12),
    sums to one over the integers; its derivative (the official one, the density) is scipy's pdf, finite at 0
    (autodiff of the incomplete gamma function is not); each coding table's CDF is the quantized gennorm pmf."""
    from jaxlic.entropy.ggm import ggm_cdf, ggm_likelihood, ggm_scale_table, ggm_table
    r = np.arange(-30, 31, dtype=np.float32)
    for s in (0.05, 0.5, 3.0):
        scale = max(s, 0.12)
        ref = stats.gennorm.cdf((r + 0.5) / scale, 1.5) - stats.gennorm.cdf((r - 0.5) / scale, 1.5)
        got = np.asarray(ggm_likelihood(jnp.asarray(r), jnp.full(r.shape, s, jnp.float32)))
        np.testing.assert_allclose(got, np.maximum(ref, 1e-9), rtol=2e-5, atol=2e-7)
        assert abs(got.sum() - 1) < 1e-5
    v = jnp.asarray([0.0, 1e-6, -0.3, 1.7, -4.0], jnp.float32)
    grad = np.asarray(jax.vmap(jax.grad(lambda t: ggm_cdf(t)))(v))
    np.testing.assert_allclose(grad, stats.gennorm.pdf(np.asarray(v, np.float64), 1.5), rtol=1e-5)
    table = ggm_table(ggm_scale_table()[[0, 30, 59]])
    for i, s in enumerate(ggm_scale_table()[[0, 30, 59]].astype(np.float64)):
        n = table.cdf_length[i]
        k = np.arange(n - 2) + table.offset[i]  # n - 2 symbols, the escape, and the CDF's leading 0
        pmf = stats.gennorm.cdf((k + 0.5) / s, 1.5) - stats.gennorm.cdf((k - 0.5) / s, 1.5)
        freq = np.diff(table.cdf[i, :n]) / 2 ** 16
        assert np.abs(freq[:-1] - pmf).max() < 3e-4 and freq[-1] >= 1 / 2 ** 16, (s, np.abs(freq[:-1] - pmf).max())
