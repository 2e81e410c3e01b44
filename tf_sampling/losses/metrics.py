"""Evaluation metrics over the full softmax: ``Perplexity`` and ``TopKAccuracy``.

They read the outputs of a ``tf_sampling.layers`` output layer. While training
that layer returns hidden activations, on which no full-softmax metric can be
computed without the full softmax the layer exists to avoid, so these metrics
skip training batches (and read 0 in ``fit``'s training logs): look at their
``val_*`` values in ``fit`` and at ``evaluate``'s. On plain logits (any other model) they work as usual.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling.layers import _tags, _targets


def _full_logits_or_none(y_pred):
    """Returns ``(layer, logits)``, or None for the hidden activations of training."""
    tag = _tags.get_tag(y_pred)
    if tag is None:
        return None, tf.cast(y_pred, tf.float32)
    if tag.kind == _tags.HIDDEN:
        return None
    probabilities_of = tag.layer.objective if tag.kind == _tags.PROBABILITIES else None
    return tag.layer, _targets.as_logits(y_pred, probabilities_of)


def _weights(y_pred, logits, sample_weight) -> tf.Tensor:
    """float32 ``[n]`` weights from ``sample_weight`` and the Keras mask of ``y_pred``."""
    batch_rank = logits.shape.rank - 1
    weight = tf.ones(tf.shape(logits)[:-1], tf.float32)
    mask = getattr(y_pred, "_keras_mask", None)
    if mask is not None:
        weight *= tf.cast(mask, tf.float32)
    if sample_weight is not None:
        sample_weight = tf.cast(sample_weight, tf.float32)
        if sample_weight.shape.rank is not None and sample_weight.shape.rank > batch_rank:
            sample_weight = tf.reshape(sample_weight, tf.shape(weight))
        weight *= sample_weight
    return tf.reshape(weight, [-1])


class _FullSoftmaxMetric(keras.metrics.Metric):
    """Weighted mean of a per-example value over evaluation batches."""

    def __init__(self, num_true: int | None = None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_true = num_true
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def _per_example(self, labels, logits, num_true, num_classes) -> tf.Tensor:
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        found = _full_logits_or_none(y_pred)
        if found is None:
            return
        layer, logits = found
        num_classes = int(logits.shape[-1])
        num_true = self.num_true or (layer.num_true if layer is not None else 1)
        labels = _targets.flatten_labels(y_true, logits, num_true, num_classes)
        values = self._per_example(labels, _targets.flatten_features(logits), num_true, num_classes)
        weights = _weights(y_pred, logits, sample_weight)
        self.total.assign_add(tf.reduce_sum(values * weights))
        self.count.assign_add(tf.reduce_sum(weights))

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_true": self.num_true}


@keras.saving.register_keras_serializable(package="tf_sampling")
class Perplexity(_FullSoftmaxMetric):
    """``exp`` of the mean full-softmax cross-entropy per example (per token for LMs).

    Masked positions (Keras mask) and zero ``sample_weight`` are left out of
    the mean. Computed over all classes, also for an ``NCE`` layer.

    Args:
      num_true: Optional int, targets per example (default: the layer's).
      name: Metric name, default ``"perplexity"``.
      dtype: Metric dtype.
    """

    def __init__(self, num_true: int | None = None, name="perplexity", dtype=None):
        super().__init__(num_true=num_true, name=name, dtype=dtype)

    def _per_example(self, labels, logits, num_true, num_classes):
        return _targets.full_cross_entropy(labels, logits, num_true, num_classes, "softmax")

    def result(self):
        # 0 (an impossible perplexity) until an evaluation batch was seen, e.g.
        # in fit's training logs; 1.0 would read as a perfect model.
        mean = tf.math.divide_no_nan(self.total, self.count)
        return tf.where(self.count > 0, tf.exp(mean), tf.zeros_like(mean))


@keras.saving.register_keras_serializable(package="tf_sampling")
class TopKAccuracy(_FullSoftmaxMetric):
    """Fraction of examples whose (first) target is among the ``k`` highest logits.

    Args:
      k: int, number of top classes.
      name: Metric name, default ``"top_{k}_accuracy"``.
      dtype: Metric dtype.
    """

    def __init__(self, k: int = 5, name=None, dtype=None):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive int, got k={k!r}.")
        super().__init__(num_true=None, name=name or f"top_{k}_accuracy", dtype=dtype)
        self.k = k

    def _per_example(self, labels, logits, num_true, num_classes):
        hit = tf.math.in_top_k(
            targets=tf.cast(labels[:, 0], tf.int32), predictions=logits, k=min(self.k, num_classes)
        )
        return tf.cast(hit, tf.float32)

    def result(self):
        return tf.math.divide_no_nan(self.total, self.count)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("num_true", None)
        return {**config, "k": self.k}
