"""``SampledSoftmax``: sampled softmax while training, exact softmax otherwise."""

from __future__ import annotations

import keras

from tf_sampling.layers.base import SampledOutputLayer


@keras.saving.register_keras_serializable(package="tf_sampling")
class SampledSoftmax(SampledOutputLayer):
    """Output layer over ``num_classes`` classes trained with sampled softmax.

    Use it as the last layer and compile with ``SampledSoftmaxLoss()``
    (``import tf_sampling as ts``)::

        head = ts.layers.SampledSoftmax(num_classes=50_000, num_sampled=64)
        model = keras.Model(inputs, head(hidden))
        model.compile("adam", loss=ts.losses.SampledSoftmaxLoss(),
                      metrics=[ts.metrics.Perplexity(),
                               ts.metrics.TopKAccuracy(k=5)])
        model.fit(x, y)          # y: int class ids [batch] or [batch, time]
        model.evaluate(x, y)     # exact full-softmax cross-entropy
        logits = model.predict(x)

    With ``training=True`` (inside ``fit``) the layer returns its input
    unchanged and the loss computes ``tf_sampling.nn.sampled_softmax_loss`` with
    this layer's weights (it finds the layer through a tag on the tensor). At
    evaluation and inference it returns the exact logits ``[..., num_classes]``
    (or softmax probabilities), in float32 under every dtype policy.

    Args:
      num_classes: int >= 2, number of classes.
      num_sampled: int, classes sampled per batch (``< num_classes`` for the
        default unique samplers).
      num_true: int, target classes per example; ``y_true`` is then
        ``[*batch, num_true]`` (``[*batch]`` also accepted for 1).
      sampler: ``"log_uniform"`` (default; class ids sorted by decreasing
        frequency), ``"uniform"``, ``"learned_unigram"`` (learns the class
        counts while training; they are saved with the model) or
        ``"fixed_unigram"`` -- as a dict ``{"name": "fixed_unigram",
        "unigrams": [...], "distortion": 0.75}`` or with ``"vocab_file"``. A
        dict may also set ``"unique": False``. See ``tf_sampling.samplers``.
      remove_accidental_hits: bool, drop sampled classes that equal a target
        (None: True, TensorFlow's default for sampled softmax).
      seed: Optional int, seed of the sampler op.
      output_mode: ``"logits"`` (default) or ``"probabilities"``: what
        evaluation and inference return.
      use_bias: bool, whether the classes have biases.
      kernel_initializer: Initializer of the ``[num_classes, dim]`` weights;
        with shards the whole table is drawn once and split, so the values do
        not depend on ``num_shards``.
      bias_initializer: Initializer of the ``[num_classes]`` biases.
      kernel_regularizer: Optional regularizer of the weights (note: a
        regularizer touches every row, so its gradient is dense; the layer
        warns at its first training call and names the sparse alternatives).
      bias_regularizer: Optional regularizer of the biases.
      num_shards: int, split the weights and biases into this many variables
        (``kernel_0``, ``kernel_1``, ...).
      partition_strategy: ``"div"`` (consecutive class ranges) or ``"mod"``;
        training and the full logits use the same rule, so evaluation is
        consistent under either.
      chunk_size: Optional int, classes per block for the exact loss and
        metrics of ``evaluate`` (and exact training). None: chosen from the
        shapes (``tf_sampling.nn.full_softmax_cross_entropy``); a table that
        fits in one block is computed at once.
      **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Input shape:
      ``[batch, ..., dim]``.

    Output shape:
      training: ``[batch, ..., dim]`` (the input); otherwise ``[batch, ...,
      num_classes]``.
    """
