"""The classifier zoo: discriminative MLP / MC-dropout BNN / CNN and latent-variable classifiers.

Every model is a :class:`Classifier` (a ``keras.Model``) with one callable that attacks and
detectors use alike::

    logits(x, k=None, seed=None, *, classes=None, precision="float32") -> [B, C] (or [B, M])

``classes`` [B, M] asks for the scores of M chosen classes per image only: a latent-variable
model then spends its encoder and decoder passes on those classes alone, and returns exactly
what the full call with the same seed returns on them. ``precision="bfloat16"`` runs the heavy
layers (a latent model's decoder, a discriminative model's whole net) in bfloat16.

For the latent-variable classifiers the logits are the importance-weighted estimates of
log p(x, y_c) (paper 1, eq. 3), so softmax(logits) is p(y | x) by Bayes' rule; for the BNN they are
log of the MC-dropout mean softmax; for the plain nets they are the pre-softmax activations.

Latent-variable factorisations (Li, Bradshaw & Sharma, ICML 2019; paper 2):

- ``gc``  p(z) p(x | z, y) with uniform p(y): paper 1's deep Bayes classifier (a conditional VAE).
- ``gfz`` p(z) p(y | z) p(x | y, z): generative, fully connected.
- ``dfz`` p(z) p(x | z) p(y | x, z): discriminative, fully connected.

All three share q(z | x, y) and the building blocks below; they differ only in which terms
:meth:`LatentVariableClassifier.log_weights` adds up.

Architectures follow paper 1, Appendix A: MLP 3 x 500 ReLU; CNN 4 x (conv 3x3, 128 channels,
max-pool) + dense 500; VAE-MLP 2 x 500 both ways with z = 32; VAE-CNN with a conv stack on x only
in the encoder, an MLP on [features, y], and a decoder MLP 500 followed by three 3x3 transposed
convolutions with 64, 64 and 1 channels.
"""
from __future__ import annotations

import contextlib
import math

import keras
import numpy as np
import tensorflow as tf

from . import distributions as dist
from .configs import (  # noqa: F401 (the model's config types, re-exported with the models)
    ARCHS,
    LATENT_MODELS,
    MODEL_NAMES,
    PRECISIONS,
    ModelConfig,
    resolve_config,
)
from .victim import resolve_k

_FRESH_SEED_DOMAIN = 0x0DBA7E5  # any constant: it only separates fresh seeds from given ones
def _dropout(h: tf.Tensor, rate: float, seed: tf.Tensor | None) -> tf.Tensor:
    """Stateless dropout: active only when a seed is given (training, or MC-dropout passes)."""
    if seed is None or rate <= 0.0:
        return h
    # the mask is drawn in the dtype of h: a bfloat16 pass would see other masks than float32
    dropped = tf.nn.experimental.stateless_dropout(tf.cast(h, tf.float32), rate=rate, seed=seed)
    return tf.cast(dropped, h.dtype)


class DenseStack(keras.layers.Layer):
    """Dense ReLU layers with dropout after each, then an optional linear output layer.

    ``conditioned=True`` makes the first layer act on the concatenation [features, condition]
    without materialising it: W [h; c] = W_h h + W_c c, and the two halves broadcast. That lets
    x-only features computed once per image meet every class (or every z sample) for free.
    """

    def __init__(self, units: list[int], output_units: int | None = None, *, rate: float = 0.0,
                 conditioned: bool = False, output_bias: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.conditioned = conditioned
        self.hidden_layers = [keras.layers.Dense(u) for u in units]
        self.condition_layer = (keras.layers.Dense(units[0], use_bias=False)
                                if conditioned else None)
        self.output_layer = keras.layers.Dense(
            output_units, bias_initializer=keras.initializers.Constant(output_bias)
        ) if output_units else None

    def call(self, features, condition=None, seed=None):
        seeds = dist.split_seed(seed, len(self.hidden_layers)) if seed is not None else None
        h = features
        for index, layer in enumerate(self.hidden_layers):
            h = layer(h)
            if index == 0 and self.conditioned:
                h = h + self.condition_layer(condition)
            h = _dropout(tf.nn.relu(h), self.rate, None if seeds is None else seeds[index])
        return self.output_layer(h) if self.output_layer is not None else h


class ConvFeatures(keras.layers.Layer):
    """x-only convolutional features, flattened. ``pool=True``: conv + 2x2 max-pool (the CNN);
    ``pool=False``: stride-2 convolutions (the VAE encoder)."""

    def __init__(self, channels: list[int], *, pool: bool, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.pool = pool
        self.convs = [keras.layers.Conv2D(c, kernel_size, strides=1 if pool else 2, padding="same",
                                          activation="relu") for c in channels]
        self.pools = ([keras.layers.MaxPooling2D(2, padding="same") for _ in channels]
                      if pool else [])
        self.flatten = keras.layers.Flatten()

    def call(self, x):
        h = x
        for index, conv in enumerate(self.convs):
            h = conv(h)
            if self.pool:
                h = self.pools[index](h)
        return self.flatten(h)


class ImageDecoder(keras.layers.Layer):
    """Maps a code [N, D] to the image likelihood's unconstrained parameters [N, H, W, C]."""

    def __init__(self, arch: str, image_shape, hidden: int, channels: int, rate: float,
                 kernel_size: int = 3, output_bias: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.arch = arch
        self.image_shape = tuple(image_shape)
        height, width, depth = self.image_shape
        if arch == "mlp":
            self.mlp = DenseStack([hidden, hidden], int(np.prod(self.image_shape)), rate=rate,
                                  output_bias=output_bias)
            self.deconvs = []
        else:
            if height % 4 or width % 4:
                raise ValueError(f"the CNN decoder needs H and W divisible by 4, got {image_shape}")
            self.base = (height // 4, width // 4, channels)
            self.mlp = DenseStack([hidden], int(np.prod(self.base)), rate=rate)
            self.deconvs = [
                keras.layers.Conv2DTranspose(channels, kernel_size, strides=1, padding="same",
                                             activation="relu"),
                keras.layers.Conv2DTranspose(channels, kernel_size, strides=2, padding="same",
                                             activation="relu"),
                keras.layers.Conv2DTranspose(
                    depth, kernel_size, strides=2, padding="same",
                    bias_initializer=keras.initializers.Constant(output_bias)),
            ]

    def call(self, code, seed=None):
        h = self.mlp(code, seed=seed)
        if not self.deconvs:
            return tf.reshape(h, (-1,) + self.image_shape)
        h = tf.reshape(tf.nn.relu(h), (-1,) + self.base)
        for deconv in self.deconvs:
            h = deconv(h)
        return h


def _x_features(config: ModelConfig, name: str) -> keras.layers.Layer:
    if config.arch == "cnn":
        return ConvFeatures([config.vae_channels] * 3, pool=False,
                            kernel_size=config.vae_kernel_size, name=name)
    # For the MLP arch the x-features are just the flattened pixels; the first Dense of the
    # conditioned head then acts on [x, y] exactly as an MLP on the concatenation would.
    return keras.layers.Flatten(name=name)


# --------------------------------------------------------------------------- classifiers


class Classifier(keras.Model):
    """Common interface. Subclasses implement ``_logits`` and ``training_loss``."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self._seed_stream = keras.random.SeedGenerator(config.seed)
        # One traced graph per K and precision: all classes and samples in one batched call.
        self._compiled_logits = tf.function(self._logits, reduce_retracing=True)
        self._compiled_class_logits = tf.function(self._class_logits, reduce_retracing=True)

    # A fresh stateless seed for every call that was not given one, hashed into its own domain
    # so that the n-th unseeded call never replays the noise of an explicit seed such as (0, n).
    def _seed_or_fresh(self, seed):
        if seed is None:
            return tf.random.experimental.stateless_fold_in(
                dist.as_seed(self._seed_stream.next()), _FRESH_SEED_DOMAIN)
        return dist.as_seed(seed)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def default_k(self) -> int:
        return self.config.k

    @property
    def is_stochastic(self) -> bool:
        """True when two calls on the same input may give different logits."""
        return False

    def build_for_input(self):
        self.logits(tf.zeros((1,) + self.config.image_shape), k=1, seed=0)
        self.training_loss(tf.zeros((1,) + self.config.image_shape), tf.zeros([1], tf.int32),
                           seed=dist.as_seed(0))
        self.built = True  # every sub-layer now has its weights
        return self

    def logits(self, x, k: int | None = None, seed=None, *, classes=None,
               precision: str = "float32") -> tf.Tensor:
        """[B, C] class scores whose softmax is p(y | x). ``k`` defaults to the model's K.

        ``classes`` (int [B, M]): only those classes' scores, [B, M], equal to the full call's
        columns for the same seed. ``precision``: one of ``PRECISIONS``.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
        x = tf.convert_to_tensor(x, tf.float32)
        k, seed = resolve_k(self, k), self._seed_or_fresh(seed)
        if classes is None:
            return self._compiled_logits(x, k, seed, precision)
        classes = tf.convert_to_tensor(classes, tf.int32)
        if classes.shape.rank != 2:
            raise ValueError(f"classes must be [B, M] class indices; got shape {classes.shape}")
        return self._compiled_class_logits(x, classes, k, seed, precision)

    def _class_logits(self, x, classes, k, seed, precision):
        # A discriminative net computes every class at once: pick the columns.
        return tf.gather(self._logits(x, k, seed, precision), classes, batch_dims=1)

    def _heavy_layers(self) -> list[keras.layers.Layer]:
        """The layers that ``precision`` switches (where the time goes)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _precision(self, precision: str):
        """Trace the heavy layers with float32 weights and ``precision`` arithmetic. The policy
        is set on every leaf layer (a container's policy does not reach its sub-layers), only
        while a graph is traced, and restored after: the traced graph keeps it."""
        if precision == "float32":
            yield
            return
        leaves = [leaf for layer in self._heavy_layers()
                  for leaf in layer._flatten_layers(include_self=True, recursive=True)]
        saved = [leaf.dtype_policy for leaf in leaves]
        try:
            for leaf in leaves:
                leaf.dtype_policy = f"mixed_{precision}"
            yield
        finally:
            for leaf, policy in zip(leaves, saved, strict=True):
                leaf.dtype_policy = policy

    def call(self, x, training=False):  # so that model(x) is model.logits(x)
        return self.logits(x)

    def predict_proba(self, x, k: int | None = None, seed=None) -> tf.Tensor:
        return tf.nn.softmax(self.logits(x, k, seed), axis=-1)

    def training_loss(self, x, y, seed):
        raise NotImplementedError

    def train_step(self, data):
        """One optimiser step. ``data`` = (x, y) or (x, y, seed); the seed makes the step's
        randomness (z samples, dropout masks) a function of the step, so resumed runs repeat."""
        x, y, *rest = data
        seed = dist.as_seed(rest[0]) if rest else self._seed_or_fresh(None)
        with tf.GradientTape() as tape:
            loss = self.training_loss(x, y, seed)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker]


class DiscriminativeClassifier(Classifier):
    """MLP or CNN p(y | x); as ``bnn`` it averages the softmax over K MC-dropout passes."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        if config.arch == "cnn":
            self.features = ConvFeatures([config.conv_channels] * 4, pool=True, name="features")
            self.head = DenseStack([config.hidden], config.num_classes, rate=config.dropout,
                                   name="head")
        else:
            self.features = keras.layers.Flatten(name="features")
            self.head = DenseStack([config.hidden] * 3, config.num_classes, rate=config.dropout,
                                   name="head")

    @property
    def mc_dropout(self) -> bool:
        """Only the BNN keeps dropout on at test time; an mlp / cnn trained with dropout is an
        ordinary regularised net with deterministic predictions."""
        return self.config.model == "bnn" and self.config.dropout > 0.0

    @property
    def default_k(self) -> int:
        return self.config.k if self.mc_dropout else 1

    @property
    def is_stochastic(self) -> bool:
        return self.mc_dropout

    def _net(self, x, seed=None):
        return self.head(self.features(x), seed=seed)

    def _heavy_layers(self):
        return [self.features, self.head]

    def _logits(self, x, k, seed, precision="float32"):
        with self._precision(precision):
            if not self.mc_dropout:
                return tf.cast(self._net(x), x.dtype)
            # All K dropout passes in one batched call: each pass gets its own copy of x and mask.
            batch = tf.shape(x)[0]
            tiled = tf.tile(x, tf.concat([[k], tf.ones([tf.rank(x) - 1], tf.int32)], 0))
            net = tf.cast(self._net(tiled, seed=seed), x.dtype)
        log_probs = tf.nn.log_softmax(net)
        log_probs = tf.reshape(log_probs, [k, batch, self.num_classes])
        return dist.log_mean_exp(log_probs, axis=0)

    def training_loss(self, x, y, seed):
        logits = self._net(x, seed=seed)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(y, tf.int32), logits=logits))


class LatentVariableClassifier(Classifier):
    """gc / gfz / dfz: log p(x, y) by importance sampling with q(z | x, y)."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        c, rate = config, config.dropout
        self.graph = c.model
        # q(z | x, y): x-only features once per image, then an MLP on [features, y].
        self.encoder_features = _x_features(c, "encoder_features")
        encoder_depth = 2 if c.arch == "mlp" else 1
        self.encoder_head = DenseStack([c.hidden] * encoder_depth, 2 * c.latent_dim, rate=rate,
                                       conditioned=True, name="encoder_head")
        self.decoder = ImageDecoder(c.arch, c.image_shape, c.hidden, c.vae_channels, rate,
                                    kernel_size=c.vae_kernel_size, output_bias=c.decoder_bias,
                                    name="decoder")
        if self.graph == "gfz":  # p(y | z)
            self.label_model = DenseStack([c.hidden, c.hidden], c.num_classes, rate=rate,
                                          name="label_model")
        elif self.graph == "dfz":  # p(y | x, z): its own x-features, then an MLP on [feat, z]
            self.classifier_features = _x_features(c, "classifier_features")
            self.label_model = DenseStack([c.hidden, c.hidden], c.num_classes, rate=rate,
                                          conditioned=True, name="label_model")
        self.prior = dist.standard_normal_prior(c.latent_dim)

    @property
    def is_stochastic(self) -> bool:
        return True

    def _heavy_layers(self):
        # K decoder passes per class against one encoder pass: the decoder is the time
        return [self.decoder]

    def posterior(self, x_features, y_one_hot, seed=None):
        """q(z | x, y) with batch shape broadcast from features [.., B, F] and y [.., B, C]."""
        params = self.encoder_head(x_features, y_one_hot, seed=seed)
        loc, log_scale = tf.split(params, 2, axis=-1)
        return dist.diagonal_gaussian(loc, log_scale)

    def _decode(self, z, y_one_hot, seed=None):
        """Decoder output for z [S..., Z] (and y [S..., C] where the graph has p(x | y, z))."""
        code = z if self.graph == "dfz" else tf.concat(
            [z, tf.broadcast_to(y_one_hot, tf.concat([tf.shape(z)[:-1], [self.num_classes]], 0))],
            axis=-1)
        lead = tf.shape(code)[:-1]
        out = self.decoder(tf.reshape(code, [-1, tf.shape(code)[-1]]), seed=seed)
        # the likelihood is summed over every pixel: in float32, whatever the decoder ran in
        return tf.reshape(tf.cast(out, z.dtype), tf.concat([lead, self.config.image_shape], 0))

    def log_weights(self, x, y_one_hot, k: int, seed, training: bool = False, noise=None):
        """log p(x, y, z_k) - log q(z_k | x, y), z_k ~ q(z | x, y): shape [k, M, B].

        x: [B, H, W, C]; y_one_hot: [M, B, C] or [M, 1, C] (M = 1 with the true labels while
        training, M = C with every class when classifying). Sample axis first. ``noise``
        [k, M, B, Z]: the unit-normal draws behind z (default: q's own, from ``seed``).
        """
        seeds = dist.split_seed(seed, 4)
        dropout = (lambda i: seeds[i]) if training else (lambda i: None)
        y_one_hot = tf.cast(y_one_hot, x.dtype)
        q = self.posterior(self.encoder_features(x)[None], y_one_hot, seed=dropout(1))
        classifier_features = self.classifier_features(x) if self.graph == "dfz" else None

        def log_joint(z):  # log p(x, y, z) for z [k, M, B, Z]
            decoder_out = self._decode(z, y_one_hot, seed=dropout(2))
            log_p = self.prior.log_prob(z) + dist.image_likelihood(
                self.config.likelihood, decoder_out, self.config.gaussian_scale).log_prob(x)
            y_full = tf.broadcast_to(y_one_hot,
                                     tf.concat([tf.shape(z)[:-1], [self.num_classes]], 0))
            if self.graph == "gc":  # uniform p(y)
                return log_p - math.log(self.num_classes)
            if self.graph == "gfz":
                label_logits = self.label_model(z, seed=dropout(3))
            else:  # dfz
                label_logits = self.label_model(classifier_features, z, seed=dropout(3))
            return log_p + dist.categorical_log_prob(label_logits, y_full)

        z = None if noise is None else q.mean() + q.stddev() * noise
        return dist.importance_log_weights(q, log_joint, k, seeds[0], z=z)

    def _logits(self, x, k, seed, precision="float32"):
        every_class = tf.eye(self.num_classes, dtype=x.dtype)[:, None, :]  # [C, 1, C]
        with self._precision(precision):
            log_w = self.log_weights(x, every_class, k, seed)
        return tf.transpose(dist.log_mean_exp(log_w, axis=0))  # [B, C]

    def _class_logits(self, x, classes, k, seed, precision):
        """Only the chosen classes' encoder and decoder passes. The full call's noise for every
        (class, image) is drawn (it is cheap) and the chosen rows are picked, so each score
        equals the full call's with the same seed."""
        batch = tf.shape(x)[0]
        noise_seed = dist.split_seed(seed, 4)[0]  # the seed log_weights samples z with
        every = dist.standard_normal_noise(k, [self.num_classes, batch],
                                           self.config.latent_dim, noise_seed)  # [k, C, B, Z]
        by_image = tf.transpose(every, [2, 1, 0, 3])  # [B, C, k, Z]
        picked = tf.gather(by_image, classes, axis=1, batch_dims=1)  # [B, M, k, Z]
        noise = tf.transpose(picked, [2, 1, 0, 3])  # [k, M, B, Z]
        chosen = tf.one_hot(tf.transpose(classes), self.num_classes, dtype=x.dtype)  # [M, B, C]
        with self._precision(precision):
            log_w = self.log_weights(x, chosen, k, seed, noise=noise)
        return tf.transpose(dist.log_mean_exp(log_w, axis=0))  # [B, M]

    def training_loss(self, x, y, seed):
        """Negative ELBO (train_k = 1) or negative IWAE bound, in nats per image."""
        y_one_hot = tf.one_hot(tf.cast(y, tf.int32), self.num_classes, dtype=x.dtype)[None]
        log_w = self.log_weights(x, y_one_hot, self.config.train_k, seed, training=True)
        return -tf.reduce_mean(dist.log_mean_exp(log_w, axis=0))

    def reconstruct(self, x, labels):
        """r(x, y) = mu_x(mu_z(x, y), y): encoder mean, then decoder mean; no sampling (paper 1
        eq. 5)."""
        x = tf.convert_to_tensor(x, tf.float32)
        y_one_hot = tf.one_hot(tf.cast(labels, tf.int32), self.num_classes, dtype=x.dtype)
        q = self.posterior(self.encoder_features(x), y_one_hot)
        return dist.image_mean(self.config.likelihood, self._decode(q.mean(), y_one_hot))


def build_model(config: ModelConfig) -> Classifier:
    """Create (and build) the model a config describes."""
    cls = LatentVariableClassifier if config.is_latent else DiscriminativeClassifier
    return cls(config, name=config.model).build_for_input()
