"""The demo's word-level LSTM language model, with a sampled or a full softmax head.

Both variants are one model: an embedding, ``num_layers`` stacked LSTMs
(optionally stateful, optionally with dropout in between) and a
:class:`tf_sampling.layers.SampledSoftmax` output layer over the vocabulary.
Only the loss they are compiled with differs:

* ``"sampled"``: :class:`tf_sampling.losses.SampledSoftmaxLoss`, trained on
  ``num_sampled`` candidate classes per step.
* ``"full"``: :class:`tf_sampling.losses.FullSoftmaxLoss`, the exact softmax
  cross-entropy over all classes, computed in class blocks (the package's
  bounded-memory exact training path): the honest baseline.

:func:`exact_perplexity` evaluates either variant with the same code: the exact
full softmax of the hidden states against the head's class weights.
"""

from __future__ import annotations

import dataclasses
import math
import weakref

import keras
import numpy as np
import tensorflow as tf

from tf_sampling._core.full_logits import full_logits
from tf_sampling._keras import full_loss

HEADS = ("sampled", "full")
SAMPLERS = ("log_uniform", "uniform", "learned_unigram", "fixed_unigram")
OPTIMIZERS = ("adam", "lazy_adam", "sgd")

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
        optimizer: One of :data:`OPTIMIZERS`; see :func:`_optimizer`.
        stateful: Carry the LSTM states from one batch to the next (the batches
            must then come from :func:`demo.language_model.data.stream_windows`).
        batch_size: The fixed batch size; required when ``stateful``.
        seq_len: Window length ``T``; ``"sgd"`` uses it to apply its learning
            rate and clip norm to the loss summed over the window.
        init_scale: If positive, every weight but the LSTM biases starts
            uniform in ``[-init_scale, init_scale]`` and the LSTM forget-gate
            bias at 0 (Zaremba et al.); 0 keeps the Keras initializers.
        unroll: Unroll the LSTMs over the ``seq_len`` steps (the same function,
            faster on CPU for short windows); the model then takes windows of
            exactly ``seq_len`` tokens.
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
    optimizer: str = "lazy_adam"
    stateful: bool = False
    batch_size: int | None = None
    seq_len: int = 35
    init_scale: float = 0.0
    unroll: bool = False


def _optimizer(config: ModelConfig) -> keras.optimizers.Optimizer:
    """The optimizer named by ``config.optimizer``.

    ``"adam"`` and ``"lazy_adam"`` (:class:`tf_sampling.optimizers.LazyAdam`
    with ``second_moment="per_lookup"``) clip every gradient to norm ``clipnorm``. ``"sgd"`` is Zaremba et al.'s plain
    SGD, whose code takes the loss summed over the ``T`` steps of a window (mean
    over the batch) and clips the global gradient norm: Keras' loss is the mean
    over all ``B * T`` targets, so the same update is a learning rate of
    ``learning_rate * T`` and a global clip norm of ``clipnorm / T``.
    """
    if config.optimizer == "sgd":
        steps = config.seq_len
        kwargs = {"global_clipnorm": config.clipnorm / steps} if config.clipnorm > 0 else {}
        return keras.optimizers.SGD(learning_rate=config.learning_rate * steps, **kwargs)
    kwargs = {"clipnorm": config.clipnorm} if config.clipnorm > 0 else {}
    if config.optimizer == "lazy_adam":
        from tf_sampling.optimizers import LazyAdam  # noqa: PLC0415

        # Repeated rows (frequent words) enter v as in Keras' Adam: measured within 2%
        # of it on the default setting, where "summed" (then LazyAdam's default) was 32% behind.
        return LazyAdam(learning_rate=config.learning_rate, second_moment="per_lookup", **kwargs)
    return keras.optimizers.Adam(learning_rate=config.learning_rate, **kwargs)


def _uniform(config: ModelConfig):
    """Zaremba et al.'s initializer, or None for the Keras default."""
    if config.init_scale <= 0:
        return None
    return keras.initializers.RandomUniform(-config.init_scale, config.init_scale)


def _body(tokens: keras.KerasTensor, config: ModelConfig) -> keras.KerasTensor:
    """Embedding and stacked LSTMs: ``[batch, T]`` ids to ``[batch, T, H]`` states."""
    uniform = _uniform(config)
    embedding_init = {"embeddings_initializer": uniform} if uniform else {}
    lstm_init = {}
    if uniform:
        # The TF PTB tutorial's BasicLSTMCell(forget_bias=0.0): zero biases.
        lstm_init = {
            "kernel_initializer": uniform,
            "recurrent_initializer": uniform,
            "unit_forget_bias": False,
        }
    h = keras.layers.Embedding(
        config.vocab_size, config.embedding_dim, name="embedding", **embedding_init
    )(tokens)
    for i in range(config.num_layers):
        if config.dropout > 0:
            h = keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(h)
        h = keras.layers.LSTM(
            config.hidden_dim,
            return_sequences=True,
            stateful=config.stateful,
            unroll=config.unroll,
            name=f"lstm_{i}",
            **lstm_init,
        )(h)
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
    uniform = _uniform(config)
    init = {"kernel_initializer": uniform, "bias_initializer": uniform} if uniform else {}
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
        **init,
    )


def build_language_model(
    config: ModelConfig,
    head: str,
    unigram_counts: np.ndarray | None = None,
    seed: int | None = None,
) -> keras.Model:
    """Builds and compiles the language model.

    Both models take ``[batch, T]`` int32 token ids (any ``T``; ``batch`` fixed
    to ``config.batch_size`` when ``config.stateful``), output ``[batch, T, V]``
    exact logits at evaluation and inference, and are fit with
    ``model.fit(inputs, targets)``, targets being ``[batch, T]`` next-token ids.
    They have the same layers (a ``tf_sampling.layers.SampledSoftmax`` head);
    ``"sampled"`` is compiled with ``tf_sampling.losses.SampledSoftmaxLoss``
    (sampled loss in ``fit``, exact in ``evaluate``), ``"full"`` with
    ``tf_sampling.losses.FullSoftmaxLoss`` (exact in both, in class blocks).

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
        ValueError: Unknown ``head``, sampler or optimizer, or a stateful model
            without a batch size.
    """
    if head not in HEADS:
        raise ValueError(f"`head` must be one of {HEADS}, got head={head!r}.")
    if config.sampler not in SAMPLERS:
        raise ValueError(f"`sampler` must be one of {SAMPLERS}, got sampler={config.sampler!r}.")
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"`optimizer` must be one of {OPTIMIZERS}, got optimizer={config.optimizer!r}."
        )
    if config.stateful and (config.batch_size is None or config.batch_size < 1):
        raise ValueError(
            "`batch_size` must be a positive integer for a stateful model, got "
            f"batch_size={config.batch_size!r}."
        )
    from tf_sampling import losses as ts_losses  # noqa: PLC0415

    batch = config.batch_size if config.stateful else None
    steps = config.seq_len if config.unroll else None
    tokens = keras.Input(batch_shape=(batch, steps), dtype="int32", name="tokens")
    logits = _sampled_layer(config, unigram_counts, seed)(_body(tokens, config))
    if head == "full":
        model = keras.Model(tokens, logits, name="lm_full_softmax")
        loss = ts_losses.FullSoftmaxLoss()
    else:
        model = keras.Model(tokens, logits, name="lm_sampled_softmax")
        loss = ts_losses.SampledSoftmaxLoss()
    model.compile(optimizer=_optimizer(config), loss=loss)
    return model


def reset_states(model: keras.Model) -> None:
    """Zeroes the carried state of every stateful layer of ``model`` (no-op otherwise)."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()


def is_stateful(model: keras.Model) -> bool:
    """Whether any layer of ``model`` carries state across batches."""
    return any(getattr(layer, "stateful", False) for layer in model.layers)


def output_weights(model: keras.Model) -> tuple[tf.Tensor, tf.Tensor]:
    """The class weights and biases of the model's softmax layer.

    Args:
        model: A model from :func:`build_language_model`.

    Returns:
        ``(weights, biases)`` of shapes ``[V, H]`` and ``[V]``.
    """
    layer = model.get_layer(OUTPUT_LAYER)
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


_HIDDEN_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _hidden_function(model: keras.Model):
    """The traced body of ``model`` (ids to hidden states), one per model."""
    if model not in _HIDDEN_FUNCTIONS:
        encoder = keras.Model(
            model.get_layer("tokens").output, model.get_layer(HIDDEN_LAYER).output
        )
        # One trace per window shape; stateful layers update their state inside.
        _HIDDEN_FUNCTIONS[model] = tf.function(lambda x: encoder(x, training=False))
    return _HIDDEN_FUNCTIONS[model]


def exact_perplexity(
    model: keras.Model,
    inputs: np.ndarray,
    targets: np.ndarray,
    max_logits: int = 1 << 24,
) -> float:
    """Perplexity under the exact full softmax over all classes.

    Runs the shared body to the hidden states and scores every target against
    all ``V`` classes, whatever loss the model was trained with. A stateful
    model is run over the windows in order, ``batch_size`` at a time, from a
    zero state (reset before and after), so the windows must come from
    :func:`demo.language_model.data.stream_windows` with the model's batch size.

    Args:
        model: A model from :func:`build_language_model`.
        inputs: Token ids, int32 of shape ``[num_windows, T]``.
        targets: Next-token ids, int32 of shape ``[num_windows, T]``.
        max_logits: Bound on the logits held at once (chunks the windows of a
            stateless model).

    Returns:
        ``exp(mean negative log-likelihood)`` over all ``num_windows * T`` targets.

    Raises:
        ValueError: A stateful model and a number of windows that is not a
            multiple of its batch size.
    """
    hidden_of = _hidden_function(model)
    weights, biases = output_weights(model)
    num_windows, seq_len = inputs.shape
    vocab_size = int(weights.shape[0])
    stateful = is_stateful(model)
    if stateful:
        chunk = int(model.get_layer("tokens").output.shape[0])
        if num_windows % chunk:
            raise ValueError(
                f"`inputs` must hold a multiple of the stateful model's batch size {chunk} "
                f"windows, got {num_windows}."
            )
        reset_states(model)
    else:
        chunk = max(1, max_logits // (seq_len * vocab_size))
    total = 0.0
    try:
        for start in range(0, num_windows, chunk):
            hidden = hidden_of(tf.constant(inputs[start : start + chunk]))
            total += float(
                _nll_sum(hidden, tf.constant(targets[start : start + chunk]), weights, biases)
            )
    finally:
        if stateful:
            reset_states(model)
    return math.exp(total / (num_windows * seq_len))
