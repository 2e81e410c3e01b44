"""The demo's word-level LSTM language model, with a sampled or a full softmax head.

Both variants share everything but the output layer: an embedding, ``num_layers``
stacked LSTMs (optionally with dropout in between) and a softmax over the vocabulary.

* ``"full"``: a ``keras.layers.Dense(vocab_size)`` head trained with the exact
  softmax cross-entropy over all classes.
* ``"sampled"``: a :class:`tf_sampling.layers.SampledSoftmax` head that trains
  on ``num_sampled`` candidate classes per step and computes the exact full
  softmax at evaluation and inference.

:func:`exact_perplexity` evaluates either variant with the same code: the exact
full softmax of the hidden states against the head's class weights.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from tf_sampling._core.full_logits import full_logits
from tf_sampling._keras import full_loss

HEADS = ("sampled", "full")
SAMPLERS = ("log_uniform", "uniform", "learned_unigram", "fixed_unigram")

HIDDEN_LAYER = "hidden"
OUTPUT_LAYER = "softmax"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Size and training settings of the language model.

    Attributes:
        vocab_size: Number of classes ``V``.
        embedding_dim: Word-embedding width ``E``.
        hidden_dim: LSTM width ``H`` (also the width fed to the softmax).
        num_layers: Number of stacked LSTM layers.
        dropout: Dropout rate on the embedding and LSTM outputs (0 disables it).
        learning_rate: Adam learning rate.
        clipnorm: Gradient-norm clipping of the optimizer (0 disables it).
        num_sampled: Candidate classes per step of the sampled head.
        sampler: Candidate sampler of the sampled head, one of :data:`SAMPLERS`.
    """

    vocab_size: int
    embedding_dim: int = 256
    hidden_dim: int = 256
    num_layers: int = 1
    dropout: float = 0.0
    learning_rate: float = 4e-3
    clipnorm: float = 5.0
    num_sampled: int = 512
    sampler: str = "log_uniform"


def _optimizer(config: ModelConfig) -> keras.optimizers.Optimizer:
    kwargs = {"clipnorm": config.clipnorm} if config.clipnorm > 0 else {}
    return keras.optimizers.Adam(learning_rate=config.learning_rate, **kwargs)


def _body(tokens: keras.KerasTensor, config: ModelConfig) -> keras.KerasTensor:
    """Embedding and stacked LSTMs: ``[batch, T]`` ids to ``[batch, T, H]`` states."""
    h = keras.layers.Embedding(config.vocab_size, config.embedding_dim, name="embedding")(tokens)
    for i in range(config.num_layers):
        if config.dropout > 0:
            h = keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(h)
        h = keras.layers.LSTM(config.hidden_dim, return_sequences=True, name=f"lstm_{i}")(h)
    if config.dropout > 0:
        h = keras.layers.Dropout(config.dropout, name=f"dropout_{config.num_layers}")(h)
    return keras.layers.Identity(name=HIDDEN_LAYER)(h)


def _sampled_layer(
    config: ModelConfig, unigram_counts: np.ndarray | None, seed: int | None
) -> keras.layers.Layer:
    """The ``tf_sampling.layers.SampledSoftmax`` head, its sampler chosen by ``config.sampler``.

    Args:
        config: Model settings (``vocab_size``, ``num_sampled``, ``sampler``).
        unigram_counts: Training count of every class, ``[V]`` (``fixed_unigram`` only).
        seed: Seed of the sampler op.

    Returns:
        The layer, named :data:`OUTPUT_LAYER`.
    """
    from tf_sampling import layers as ts_layers  # noqa: PLC0415 - keeps `full` usable alone

    sampler: str | dict = config.sampler
    if config.sampler == "fixed_unigram":
        if unigram_counts is None:
            raise ValueError("The fixed_unigram sampler needs the training unigram counts.")
        # Every class needs a positive count; +1 keeps classes unseen in training drawable.
        unigrams = [int(c) + 1 for c in unigram_counts]
        sampler = {"name": "fixed_unigram", "unigrams": unigrams, "distortion": 0.75}
    return ts_layers.SampledSoftmax(
        num_classes=config.vocab_size,
        num_sampled=config.num_sampled,
        sampler=sampler,
        seed=seed,
        name=OUTPUT_LAYER,
    )


def build_language_model(
    config: ModelConfig,
    head: str,
    unigram_counts: np.ndarray | None = None,
    seed: int | None = None,
) -> keras.Model:
    """Builds and compiles the language model.

    Both models take ``[batch, T]`` int32 token ids (any ``T``), output
    ``[batch, T, V]`` exact logits at evaluation and inference, and are fit with
    ``model.fit(inputs, targets)``, targets being ``[batch, T]`` next-token ids.
    The ``"full"`` model is a ``Dense`` head compiled with sparse softmax
    cross-entropy; the ``"sampled"`` one a ``tf_sampling.layers.SampledSoftmax``
    head compiled with ``tf_sampling.losses.SampledSoftmaxLoss`` (sampled loss
    in ``fit``, exact loss in ``evaluate``).

    Args:
        config: Sizes and training settings.
        head: ``"sampled"`` or ``"full"``.
        unigram_counts: Training count of every class, shape ``[V]``; needed by the
            ``fixed_unigram`` sampler only.
        seed: Seed of the candidate sampler (weights are seeded with
            ``keras.utils.set_random_seed`` by the caller).

    Returns:
        The compiled model.

    Raises:
        ValueError: Unknown ``head`` or sampler.
    """
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}; expected one of {HEADS}.")
    if config.sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {config.sampler!r}; expected one of {SAMPLERS}.")
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    hidden = _body(tokens, config)
    if head == "full":
        logits = keras.layers.Dense(config.vocab_size, name=OUTPUT_LAYER)(hidden)
        model = keras.Model(tokens, logits, name="lm_full_softmax")
        model.compile(
            optimizer=_optimizer(config),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model
    from tf_sampling import losses as ts_losses  # noqa: PLC0415

    logits = _sampled_layer(config, unigram_counts, seed)(hidden)
    model = keras.Model(tokens, logits, name="lm_sampled_softmax")
    model.compile(optimizer=_optimizer(config), loss=ts_losses.SampledSoftmaxLoss())
    return model


def output_weights(model: keras.Model) -> tuple[tf.Tensor, tf.Tensor]:
    """The class weights and biases of the model's softmax layer.

    Args:
        model: A model from :func:`build_language_model`.

    Returns:
        ``(weights, biases)`` of shapes ``[V, H]`` and ``[V]``.
    """
    layer = model.get_layer(OUTPUT_LAYER)
    if isinstance(layer, keras.layers.Dense):
        return tf.transpose(layer.kernel), tf.convert_to_tensor(layer.bias)
    return tf.convert_to_tensor(layer.kernel), tf.convert_to_tensor(layer.bias)


# Traced once per chunk shape (a few per split), with the table's static shape.
@tf.function
def _nll_sum(hidden: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, biases: tf.Tensor):
    # The package's one exact full cross-entropy, whatever head trained the model.
    flat = tf.reshape(hidden, [-1, tf.shape(hidden)[-1]])
    logits = full_logits(weights, biases, flat)
    labels = tf.reshape(tf.cast(targets, tf.int64), [-1, 1])
    losses = full_loss.full_cross_entropy(
        labels, logits, 1, int(weights.shape[0]), full_loss.SOFTMAX
    )
    return tf.reduce_sum(tf.cast(losses, tf.float64))


def exact_perplexity(
    model: keras.Model,
    inputs: np.ndarray,
    targets: np.ndarray,
    max_logits: int = 1 << 24,
) -> float:
    """Perplexity under the exact full softmax over all classes.

    Runs the shared body to the hidden states and scores every target against
    all ``V`` classes, whatever head the model was trained with.

    Args:
        model: A model from :func:`build_language_model`.
        inputs: Token ids, int32 of shape ``[num_windows, T]``.
        targets: Next-token ids, int32 of shape ``[num_windows, T]``.
        max_logits: Bound on the logits held at once (chunks the windows).

    Returns:
        ``exp(mean negative log-likelihood)`` over all ``num_windows * T`` targets.
    """
    encoder = keras.Model(model.get_layer("tokens").output, model.get_layer(HIDDEN_LAYER).output)
    weights, biases = output_weights(model)
    num_windows, seq_len = inputs.shape
    vocab_size = int(weights.shape[0])
    chunk = max(1, max_logits // (seq_len * vocab_size))
    total = 0.0
    for start in range(0, num_windows, chunk):
        x = tf.constant(inputs[start : start + chunk])
        hidden = encoder(x, training=False)
        total += float(
            _nll_sum(hidden, tf.constant(targets[start : start + chunk]), weights, biases)
        )
    return math.exp(total / (num_windows * seq_len))
