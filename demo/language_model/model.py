"""The demos' one word-level LSTM language model, with a sampled, full or adaptive head.

Every language model of the demos (the PTB demo, the large-vocabulary job and
``bench/bench_lazy_convergence.py``) is built here: an embedding,
``num_layers`` stacked LSTMs (optionally stateful, optionally with dropout in
between), an ``Identity`` named :data:`HIDDEN_LAYER` and an output layer named
:data:`OUTPUT_LAYER`. The head decides the output layer and the loss:

* ``"sampled"``: :class:`tf_sampling.layers.SampledSoftmax` compiled with
  :class:`tf_sampling.losses.SampledSoftmaxLoss`, trained on ``num_sampled``
  candidate classes per step.
* ``"full"``: the same layer compiled with
  :class:`tf_sampling.losses.FullSoftmaxLoss`, the exact softmax cross-entropy
  over all classes in class blocks: the honest baseline.
* ``"adaptive"``: :class:`tf_sampling.layers.AdaptiveSoftmax` (cutoffs from the
  training class counts unless given) compiled with
  :class:`tf_sampling.losses.AdaptiveSoftmaxLoss`: the exact likelihood of an
  exact, normalized distribution, at a fraction of the full softmax's cost.

:func:`exact_perplexity` evaluates any of them with the same code path: the
exact log-likelihood of every target under the model's own distribution (the
full softmax of the class table for the first two, the adaptive softmax for
the third), from the hidden states. Only ``tf_sampling``'s public API is used.
"""

from __future__ import annotations

import dataclasses
import math
import weakref

import keras
import numpy as np
import tensorflow as tf

import tf_sampling

HEADS = ("sampled", "full", "adaptive")
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
        num_sampled: Candidate classes per step of the sampled head (at most
            ``vocab_size - 1`` are drawn).
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
        cutoffs: Adaptive head: class-id cutoffs of its clusters; None picks
            them from the training class counts
            (``AdaptiveSoftmax.from_counts``: the usual 4-cluster layout).
        div_value: Adaptive head: the projection shrink per tail cluster.
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
    cutoffs: tuple[int, ...] | None = None
    div_value: float = 4.0


def _optimizer(config: ModelConfig) -> keras.optimizers.Optimizer:
    """The optimizer named by ``config.optimizer``.

    ``"adam"`` and ``"lazy_adam"`` (:class:`tf_sampling.optimizers.LazyAdam`
    with ``second_moment="per_lookup"``) clip every gradient to norm
    ``clipnorm``. ``"sgd"`` is Zaremba et al.'s plain SGD, whose code takes the
    loss summed over the ``T`` steps of a window (mean over the batch) and clips
    the global gradient norm: Keras' loss is the mean over all ``B * T``
    targets, so the same update is a learning rate of ``learning_rate * T`` and
    a global clip norm of ``clipnorm / T``.
    """
    if config.optimizer == "sgd":
        steps = config.seq_len
        kwargs = {"global_clipnorm": config.clipnorm / steps} if config.clipnorm > 0 else {}
        return keras.optimizers.SGD(learning_rate=config.learning_rate * steps, **kwargs)
    kwargs = {"clipnorm": config.clipnorm} if config.clipnorm > 0 else {}
    if config.optimizer == "lazy_adam":
        # Repeated rows (frequent words) enter v as in Keras' Adam: measured within 2%
        # of it on the default setting, where "summed" was 32% behind (docs/optimizers.md).
        return tf_sampling.optimizers.LazyAdam(
            learning_rate=config.learning_rate, second_moment="per_lookup", **kwargs
        )
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


def _output_layer(
    config: ModelConfig, head: str, unigram_counts: np.ndarray | None, seed: int | None
) -> keras.layers.Layer:
    """The output layer of ``head``, named :data:`OUTPUT_LAYER`.

    Args:
        config: Model settings (``vocab_size``, ``num_sampled``, ``sampler``,
            ``cutoffs``, ``div_value``, ``init_scale``).
        head: One of :data:`HEADS`.
        unigram_counts: Training count of every class, ``[V]``, in class-id order
            (non-increasing: ids sorted by frequency); needed by the
            ``fixed_unigram`` sampler and by the adaptive head without ``cutoffs``.
        seed: Seed of the sampler op.

    Returns:
        A ``SampledSoftmax`` (``"sampled"``, ``"full"``) or ``AdaptiveSoftmax`` layer.
    """
    uniform = _uniform(config)
    init = {"kernel_initializer": uniform, "bias_initializer": uniform} if uniform else {}
    if head == "adaptive":
        options = dict(div_value=config.div_value, name=OUTPUT_LAYER, **init)
        if config.cutoffs is not None:
            return tf_sampling.layers.AdaptiveSoftmax(
                config.vocab_size, cutoffs=list(config.cutoffs), **options
            )
        if unigram_counts is None:
            raise ValueError(
                "The adaptive head needs the training class counts (unigram_counts) or "
                "config.cutoffs, got neither."
            )
        if len(unigram_counts) != config.vocab_size:
            raise ValueError(
                f"`unigram_counts` must hold vocab_size={config.vocab_size} counts, got "
                f"{len(unigram_counts)}."
            )
        return tf_sampling.layers.AdaptiveSoftmax.from_counts(unigram_counts, **options)
    sampler: str | dict = config.sampler
    if config.sampler == "fixed_unigram":
        if unigram_counts is None:
            raise ValueError("The fixed_unigram sampler needs the training unigram counts.")
        # Every class needs a positive count; +1 keeps classes unseen in training drawable.
        unigrams = [int(c) + 1 for c in unigram_counts]
        sampler = {"name": "fixed_unigram", "unigrams": unigrams, "distortion": 0.75}
    return tf_sampling.layers.SampledSoftmax(
        num_classes=config.vocab_size,
        num_sampled=min(config.num_sampled, config.vocab_size - 1),
        sampler=sampler,
        seed=seed,
        name=OUTPUT_LAYER,
        **init,
    )


def head_loss(head: str) -> keras.losses.Loss:
    """The loss a model with ``head`` is compiled with (see the module docstring)."""
    if head == "sampled":
        return tf_sampling.losses.SampledSoftmaxLoss()
    if head == "full":
        return tf_sampling.losses.FullSoftmaxLoss()
    if head == "adaptive":
        return tf_sampling.losses.AdaptiveSoftmaxLoss()
    raise ValueError(f"`head` must be one of {HEADS}, got head={head!r}.")


def build_network(
    config: ModelConfig,
    head: str,
    unigram_counts: np.ndarray | None = None,
    seed: int | None = None,
) -> keras.Model:
    """Builds the language model of ``head``, not compiled.

    The model takes ``[batch, T]`` int32 token ids (any ``T`` unless
    ``config.unroll``; ``batch`` fixed to ``config.batch_size`` when
    ``config.stateful``). Inside ``fit`` its output is the hidden states
    ``[batch, T, H]`` (for the loss of :func:`head_loss`); in ``evaluate`` and
    ``predict`` it is ``[batch, T, V]``: exact logits (``"sampled"``,
    ``"full"``) or exact log-probabilities (``"adaptive"``).

    Args:
        config: Sizes and settings.
        head: One of :data:`HEADS`.
        unigram_counts: Training count of every class, ``[V]``; needed by the
            ``fixed_unigram`` sampler and by the adaptive head without ``cutoffs``.
        seed: Seed of the candidate sampler (weights are seeded with
            ``keras.utils.set_random_seed`` by the caller).

    Returns:
        The uncompiled model.

    Raises:
        ValueError: Unknown ``head``, sampler or optimizer, a stateful model
            without a batch size, or an adaptive head without counts or cutoffs.
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
    batch = config.batch_size if config.stateful else None
    steps = config.seq_len if config.unroll else None
    tokens = keras.Input(batch_shape=(batch, steps), dtype="int32", name="tokens")
    output = _output_layer(config, head, unigram_counts, seed)(_body(tokens, config))
    return keras.Model(tokens, output, name=f"lm_{head}_softmax")


def build_language_model(
    config: ModelConfig,
    head: str,
    unigram_counts: np.ndarray | None = None,
    seed: int | None = None,
) -> keras.Model:
    """:func:`build_network` compiled with ``config``'s optimizer and the head's loss.

    Fit with ``model.fit(inputs, targets)``, targets being ``[batch, T]``
    next-token ids. The ``"sampled"`` model's loss is sampled in ``fit`` and
    exact in ``evaluate``; the other two are exact in both.

    Args, Raises: as :func:`build_network`.

    Returns:
        The compiled model.
    """
    model = build_network(config, head, unigram_counts, seed)
    model.compile(optimizer=_optimizer(config), loss=head_loss(head))
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
    """The class weights and biases of a sampled/full model's softmax layer.

    Args:
        model: A ``"sampled"`` or ``"full"`` model from :func:`build_network`.

    Returns:
        ``(weights, biases)`` of shapes ``[V, H]`` and ``[V]``.
    """
    layer = model.get_layer(OUTPUT_LAYER)
    return tf.convert_to_tensor(layer.kernel), tf.convert_to_tensor(layer.bias)


def _negative_log_likelihood(layer: keras.layers.Layer, hidden: tf.Tensor, labels: tf.Tensor):
    """Exact ``-log p(label)`` of every row of ``hidden`` ``[n, H]`` under ``layer``'s softmax."""
    if isinstance(layer, tf_sampling.layers.AdaptiveSoftmax):
        return tf_sampling.nn.adaptive_softmax_loss(
            layer.head_kernel,
            layer.head_bias,
            list(layer.tail_projections),
            list(layer.tail_kernels),
            None if layer.tail_biases is None else list(layer.tail_biases),
            labels,
            hidden,
            list(layer.cutoffs) or None,
            layer.num_classes,
        )
    # The same exact cross-entropy whatever loss trained the class table.
    return tf_sampling.nn.full_softmax_cross_entropy(
        layer.kernel, layer.bias, labels, hidden, layer.num_classes
    )


_NLL_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _nll_function(model: keras.Model):
    """The traced ``(ids, targets) -> summed NLL`` of ``model``, one per model."""
    if model not in _NLL_FUNCTIONS:
        encoder = keras.Model(
            model.get_layer("tokens").output, model.get_layer(HIDDEN_LAYER).output
        )
        layer = model.get_layer(OUTPUT_LAYER)

        # One trace per window shape; stateful layers update their state inside.
        @tf.function
        def nll_sum(inputs, targets):
            hidden = encoder(inputs, training=False)
            flat = tf.reshape(hidden, [-1, tf.shape(hidden)[-1]])
            labels = tf.reshape(tf.cast(targets, tf.int64), [-1])
            losses = _negative_log_likelihood(layer, flat, labels)
            return tf.reduce_sum(tf.cast(losses, tf.float64))

        _NLL_FUNCTIONS[model] = nll_sum
    return _NLL_FUNCTIONS[model]


def exact_perplexity(
    model: keras.Model,
    inputs: np.ndarray,
    targets: np.ndarray,
    max_logits: int = 1 << 24,
) -> float:
    """Perplexity under the model's exact distribution over all classes.

    Runs the shared body to the hidden states and scores every target against
    all ``V`` classes (the full softmax of the class table, or the adaptive
    softmax), whatever loss the model was trained with. A stateful model is
    run over the windows in order, ``batch_size`` at a time, from a zero state
    (reset before and after), so the windows must come from
    :func:`demo.language_model.data.stream_windows` with the model's batch size.

    Args:
        model: A model from :func:`build_network`.
        inputs: Token ids, int32 of shape ``[num_windows, T]``.
        targets: Next-token ids, int32 of shape ``[num_windows, T]``.
        max_logits: Bound on ``windows * T * V`` per call (chunks the windows of
            a stateless model).

    Returns:
        ``exp(mean negative log-likelihood)`` over all ``num_windows * T`` targets.

    Raises:
        ValueError: A stateful model and a number of windows that is not a
            multiple of its batch size.
    """
    nll_sum = _nll_function(model)
    num_windows, seq_len = inputs.shape
    vocab_size = int(model.get_layer(OUTPUT_LAYER).num_classes)
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
            window = slice(start, start + chunk)
            total += float(nll_sum(tf.constant(inputs[window]), tf.constant(targets[window])))
    finally:
        if stateful:
            reset_states(model)
    return math.exp(total / (num_windows * seq_len))
