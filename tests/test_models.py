import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from dbayes_tf import distributions as dist
from dbayes_tf import inference, models

tfd = tfp.distributions
ALL = [("mlp", None), ("bnn", "mlp"), ("cnn", None), ("gc", "mlp"), ("gc", "cnn"),
       ("gfz", "cnn"), ("dfz", "cnn"), ("gfz", "mlp"), ("dfz", "mlp")]


def tiny(model, arch, **overrides):
    """Narrow versions of the paper architectures, so shape tests build in milliseconds."""
    values = dict(hidden=32, latent_dim=4, conv_channels=8, vae_channels=8, k=3)
    values.update(overrides)
    return models.build_model(models.resolve_config(model, arch, **values))


@pytest.mark.parametrize("name, arch", ALL)
def test_every_model_gives_float32_logits_of_shape_batch_by_classes(name, arch, mnist_small):
    model = tiny(name, arch)
    x = mnist_small.test.images[:5]
    logits = model.logits(x)
    assert logits.shape == (5, 10) and logits.dtype == tf.float32
    assert np.all(np.isfinite(logits.numpy()))
    probs = model.predict_proba(x).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    loss = model.training_loss(tf.constant(x), tf.constant(mnist_small.test.labels[:5]),
                               dist.as_seed(1))
    assert loss.shape == () and np.isfinite(loss.numpy())


@pytest.mark.parametrize("name, arch", [("gc", "mlp"), ("gfz", "cnn"), ("dfz", "cnn"),
                                        ("bnn", "mlp")])
def test_stochastic_logits_are_fresh_per_call_and_repeatable_with_a_seed(name, arch,
                                                                         mnist_small):
    model = tiny(name, arch)
    x = mnist_small.test.images[:4]
    assert model.is_stochastic
    first, second = model.logits(x).numpy(), model.logits(x).numpy()
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(model.logits(x, seed=5).numpy(),
                                  model.logits(x, seed=5).numpy())


@pytest.mark.parametrize("name, arch", ALL)
def test_class_logits_equal_the_full_logits_on_the_chosen_classes(name, arch, mnist_small):
    model = tiny(name, arch)
    x = mnist_small.test.images[:6]
    # a different subset per image, repeats and the image's own order included
    classes = np.array([[3, 0, 7], [9, 9, 1], [2, 5, 4], [0, 1, 2], [8, 6, 3], [5, 4, 7]])
    full = model.logits(x, seed=11).numpy()
    picked = model.logits(x, seed=11, classes=classes).numpy()
    assert picked.shape == (6, 3)
    # the same draws (exactly); only oneDNN's blocking of a smaller batch may move the last bits
    np.testing.assert_allclose(picked, np.take_along_axis(full, classes, axis=1),
                               rtol=1e-5, atol=1e-4)
    other_draw = model.logits(x, seed=12, classes=classes).numpy()
    assert np.allclose(picked, other_draw) != model.is_stochastic


def test_gaussian_samples_are_loc_plus_scale_times_the_noise_the_subset_logits_pick():
    loc, log_scale = tf.random.normal([10, 3, 4]), tf.random.normal([10, 3, 4])
    q = dist.diagonal_gaussian(loc, log_scale)
    seed = dist.as_seed(5)
    noise = dist.standard_normal_noise(6, [10, 3], 4, seed)
    np.testing.assert_array_equal(q.sample(6, seed=seed).numpy(),
                                  (q.mean() + q.stddev() * noise).numpy())


@pytest.mark.parametrize("name, arch", [("gc", "cnn"), ("cnn", None), ("bnn", "mlp")])
def test_bfloat16_logits_agree_with_float32_and_leave_the_model_in_float32(name, arch,
                                                                            mnist_small):
    model = tiny(name, arch)
    x = mnist_small.test.images[:20]
    exact = model.logits(x, seed=3).numpy()
    rough = model.logits(x, seed=3, precision="bfloat16")
    assert rough.dtype == tf.float32
    # bfloat16 keeps 8 bits of mantissa: about 0.4% of each pre-activation
    scale = np.abs(exact).max()
    assert np.abs(rough.numpy() - exact).max() < 0.02 * scale
    assert not np.array_equal(rough.numpy(), exact)  # it did run in bfloat16
    np.testing.assert_array_equal(model.logits(x, seed=3).numpy(), exact)
    assert all(w.dtype == "float32" for w in model.weights)
    with pytest.raises(ValueError, match="precision"):
        model.logits(x, precision="float16")


def test_deterministic_nets_ignore_k(mnist_small):
    model = tiny("cnn", None)
    x = mnist_small.test.images[:3]
    assert not model.is_stochastic and model.default_k == 1
    np.testing.assert_allclose(model.logits(x, k=1), model.logits(x, k=7), rtol=1e-6)


def test_gaussian_likelihood_matches_hand_formula(rng):
    out = rng.normal(size=(2, 28, 28, 1)).astype(np.float32)
    x = rng.uniform(size=(2, 28, 28, 1)).astype(np.float32)
    scale = 0.3
    mu = 1.0 / (1.0 + np.exp(-out.astype(np.float64)))
    expected = (-0.5 * ((x - mu) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)
                ).reshape(2, -1).sum(axis=1)
    got = dist.image_likelihood("gaussian", tf.constant(out), scale).log_prob(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bernoulli_likelihood_is_the_cross_entropy_on_grey_levels(rng):
    out = rng.normal(size=(3, 28, 28, 1)).astype(np.float32)
    x = rng.uniform(size=(3, 28, 28, 1)).astype(np.float32)
    p = 1.0 / (1.0 + np.exp(-out.astype(np.float64)))
    expected = (x * np.log(p) + (1 - x) * np.log1p(-p)).reshape(3, -1).sum(axis=1)
    got = dist.image_likelihood("bernoulli", tf.constant(out), 1.0).log_prob(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_gc_logits_are_the_iw_estimate_of_its_own_log_weights(mnist_small):
    model = tiny("gc", "mlp", k=4)
    x = tf.constant(mnist_small.test.images[:3])
    seed = dist.as_seed(11)
    log_w = model.log_weights(x, tf.eye(10)[:, None, :], 4, seed).numpy()  # [k, C, B]
    assert log_w.shape == (4, 10, 3)
    peak = log_w.max(axis=0)  # a stable log-mean-exp: these weights are around -600 nats
    by_hand = (peak + np.log(np.mean(np.exp(log_w - peak), axis=0))).T
    np.testing.assert_allclose(model.logits(x, k=4, seed=11).numpy(), by_hand, rtol=1e-5)


def _normal_log_density(value, mean, scale):
    return -0.5 * ((value - mean) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi)


def _log_softmax(logits):
    logits = logits - logits.max(axis=-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("graph", ["gc", "gfz", "dfz"])
def test_log_weights_add_up_each_factorisation_by_hand(graph, mnist_small):
    """log p(z) + log p(x | .) + log p(y | .) - log q(z | x, y), written out in numpy from the
    sub-networks' raw outputs, for the same z the model draws."""
    model = tiny(graph, "mlp", k=3)
    x = tf.constant(mnist_small.test.images[:2])
    labels = np.array([3, 7])
    y = tf.one_hot(labels, 10)[None]  # [M = 1, B, C]
    seed = dist.as_seed(5)
    log_w = model.log_weights(x, y, 3, seed).numpy().astype(np.float64)  # [k, 1, B]

    params = model.encoder_head(model.encoder_features(x)[None], y).numpy().astype(np.float64)
    loc, log_scale = np.split(params, 2, axis=-1)
    scale = np.exp(np.clip(log_scale, -10, 5))
    z = model.posterior(model.encoder_features(x)[None], y).sample(
        3, seed=dist.split_seed(seed, 4)[0]).numpy().astype(np.float64)
    log_prior = _normal_log_density(z, 0.0, 1.0).sum(-1)
    log_q = _normal_log_density(z, loc, scale).sum(-1)
    mean = 1 / (1 + np.exp(-model._decode(tf.constant(z, tf.float32), y).numpy()
                           .astype(np.float64)))
    x64 = x.numpy().astype(np.float64)
    log_px = _normal_log_density(x64, mean, model.config.gaussian_scale).reshape(
        3, 1, 2, -1).sum(-1)
    z32 = tf.constant(z, tf.float32)
    if graph == "gc":
        log_py = np.full(log_px.shape, -math.log(10))
    else:
        label_logits = (model.label_model(z32) if graph == "gfz" else
                        model.label_model(model.classifier_features(x), z32))
        log_py = _log_softmax(label_logits.numpy().astype(np.float64))[..., [0, 1], labels]
    by_hand = log_prior + log_px + log_py - log_q
    np.testing.assert_allclose(log_w, by_hand, rtol=1e-4, atol=1e-3)


def _linear_gaussian(rng, dim_x=5, dim_z=2):
    """p(z) = N(0, I), p(x | z) = N(W z + b, s^2 I)  =>  p(x) = N(b, W W^T + s^2 I) exactly."""
    w = rng.normal(size=(dim_x, dim_z)).astype(np.float32)
    b = rng.normal(size=dim_x).astype(np.float32)
    s = 0.7
    x = (w @ rng.normal(size=dim_z) + b + s * rng.normal(size=dim_x)).astype(np.float32)
    exact = tfd.MultivariateNormalFullCovariance(
        b.astype(np.float64), (w @ w.T + s * s * np.eye(dim_x)).astype(np.float64)).log_prob(
        x.astype(np.float64)).numpy()

    def log_joint(z):
        mean = tf.linalg.matvec(w, z) + b
        prior = tfd.Independent(tfd.Normal(tf.zeros(dim_z), 1.0), 1)
        return prior.log_prob(z) + tfd.Independent(tfd.Normal(mean, s), 1).log_prob(x)

    # A deliberately imperfect proposal (the prior, widened), so K matters.
    proposal = tfd.Independent(tfd.Normal(tf.zeros(dim_z), 1.5), 1)
    return exact, log_joint, proposal


def test_iw_estimate_matches_exact_linear_gaussian_and_converges_in_k(rng):
    exact, log_joint, proposal = _linear_gaussian(rng)
    errors = {}
    for k in (1, 10, 1000):
        # 200 independent estimates at each K (one batched draw of k x 200 samples): their mean
        # is the IWAE bound E[log p_hat_K].
        log_w = dist.importance_log_weights(proposal, log_joint, k * 200, dist.as_seed(k))
        estimates = dist.log_mean_exp(tf.reshape(log_w, [k, 200]), axis=0).numpy()
        errors[k] = abs(float(np.mean(estimates)) - exact)
        spread = float(np.std(estimates)) / math.sqrt(len(estimates))
        if k == 1000:
            assert errors[k] < 4 * spread + 0.02, (errors, spread)
    # The bound tightens monotonically towards log p(x) as K grows (Burda et al. 2016).
    assert errors[1] > errors[10] > errors[1000]


def test_predictive_entropy():
    uniform = tf.zeros((1, 10))
    certain = tf.constant([[100.0] + [0.0] * 9])
    np.testing.assert_allclose(inference.predictive_entropy(uniform).numpy(), [math.log(10)],
                               rtol=1e-6)
    assert inference.predictive_entropy(certain).numpy()[0] < 1e-6


def test_recon_and_marginal_on_latent_models(mnist_small):
    model = tiny("gc", "cnn")
    x = mnist_small.test.images[:4]
    recon = model.reconstruct(x, mnist_small.test.labels[:4]).numpy()
    assert recon.shape == x.shape and recon.min() >= 0 and recon.max() <= 1
    marginal = inference.iw_log_marginal(model, x, k=2, seed=3).numpy()
    np.testing.assert_allclose(marginal, tf.reduce_logsumexp(model.logits(x, 2, 3), -1).numpy(),
                               rtol=1e-6)
    with pytest.raises(TypeError, match="no generative model"):
        inference.iw_log_joint(tiny("cnn", None), x)


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="mlp", arch="cnn"), "always arch"),
    (dict(model="gc", arch="mlp", dropout=1.5), "dropout"),
    (dict(model="gc", arch="mlp", k=0), "k must be"),
    (dict(model="gc", arch="mlp", likelihood="poisson"), "likelihood"),
    (dict(model="gc", arch="cnn", vae_kernel_size=0), "vae_kernel_size must be"),
])
def test_bad_model_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.resolve_config(**kwargs)


def test_vae_kernel_size_reaches_every_encoder_and_decoder_convolution(mnist_small):
    model = tiny("gc", "cnn", vae_kernel_size=5)
    convs = model.encoder_features.convs + model.decoder.deconvs
    assert len(convs) == 6 and all(conv.kernel.shape[:2] == (5, 5) for conv in convs)
    # the DenseStack heads do not care; the decoder still ends on the image's own grid
    mean = model.reconstruct(mnist_small.test.images[:3], mnist_small.test.labels[:3])
    assert mean.shape == (3, 28, 28, 1)
    default = tiny("gc", "cnn")
    assert default.encoder_features.convs[0].kernel.shape[:2] == (3, 3)  # paper 1's 3 x 3
