"""Exact full-softmax evaluation metrics: ``Perplexity`` and ``TopKAccuracy``.

They read the outputs of a ``tf_sampling`` output layer. While training that
layer returns hidden activations, on which no full-softmax metric can be
computed without the full softmax the layer exists to avoid, so these metrics
skip training batches and are left out of ``fit``'s training logs (progress
bar, callbacks, ``History``): no NaN, 0 or 1 that would read as a
measurement. Their values are the ``val_*`` ones of ``fit`` and those of
``evaluate``. On plain logits (any other model) they work as usual.

How they are left out: Keras flattens a metric result that is a dict into
the logs (``{"perplexity": {}}`` adds no key). ``result()`` returns ``{}``
while nothing was measured since the last reset but training batches were
skipped -- in the traced training step (known when it is traced) and
eagerly (``fit``'s epoch-end logs).

Both are ``keras.metrics.MeanMetricWrapper``s, so Keras' own code applies
``sample_weight`` and the Keras mask of ``y_pred`` and keeps the running mean.
On a head's output they compute from its input and class table in class
blocks (``tf_sampling.nn.full_softmax_cross_entropy`` / ``full_top_k``), never
from the ``[*batch, num_classes]`` output, and ``Perplexity`` shares the
loss's cross-entropy of the same step.
"""

from __future__ import annotations

import weakref

import keras
import tensorflow as tf

from tf_sampling._core import checks
from tf_sampling._keras import full_loss, output_tags


def _full_logits_and_labels(y_true, y_pred, num_true: int | None) -> tuple:
    """``(labels [n, num_true], logits [n, num_classes], num_true)`` for a full-softmax metric."""
    logits = full_loss.logits_of(y_pred)
    found = output_tags.get_tag(y_pred)
    if num_true is None:
        num_true = found.layer.num_true if found is not None else 1
    num_classes = int(logits.shape[-1])
    labels = full_loss.flatten_labels(y_true, logits, num_true, num_classes)
    return labels, full_loss.flatten_features(logits), num_true


def _skips(y_pred) -> bool:
    """True for the hidden activations a head returns while training."""
    found = output_tags.get_tag(y_pred)
    return found is not None and found.kind == output_tags.HIDDEN


class _FullSoftmaxMetric(keras.metrics.MeanMetricWrapper):
    """Weighted mean of a per-example value over evaluation batches only."""

    def __init__(self, fn, name: str, dtype=None):
        super().__init__(fn=fn, name=name, dtype=dtype)
        # Training batches skipped since the last reset.
        self.skipped = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="skipped_batches"
        )
        # The traced functions whose updates skipped a training batch.
        self._skipping_graphs: weakref.WeakSet = weakref.WeakSet()

    def update_state(self, y_true, y_pred, sample_weight=None):
        if output_tags.is_untagged_build_placeholder(y_pred):
            return None  # nothing to measure in Keras' symbolic build
        if _skips(y_pred):
            if not tf.executing_eagerly():
                self._skipping_graphs.add(tf.compat.v1.get_default_graph())
            return self.skipped.assign_add(1.0)
        return super().update_state(y_true, y_pred, sample_weight=sample_weight)

    def reset_state(self):
        super().reset_state()
        self.skipped.assign(0.0)

    def _unmeasured(self) -> bool:
        """True where the result must stay out of the logs: only training batches seen."""
        if tf.executing_eagerly():
            skipped = float(keras.ops.convert_to_numpy(self.skipped))
            return skipped > 0 and float(keras.ops.convert_to_numpy(self.count)) == 0
        return tf.compat.v1.get_default_graph() in self._skipping_graphs

    def _mean_or_nan(self) -> tf.Tensor:
        # NaN if no example was measured (e.g. all masked): 0 or 1 would read
        # as a measurement.
        mean = super().result()
        return tf.where(self.count > 0, mean, tf.constant(float("nan"), mean.dtype))


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

    def __init__(self, num_true: int | None = None, name: str = "perplexity", dtype=None):
        if num_true is not None:
            num_true = checks.check_int(num_true, "num_true", 1)
        super().__init__(fn=self._cross_entropy, name=name, dtype=dtype)
        self.num_true = num_true

    def _cross_entropy(self, y_true, y_pred) -> tf.Tensor:
        found = output_tags.get_tag(y_pred)
        if found is not None and found.hidden is not None:
            num_true = self.num_true or found.layer.num_true
            return full_loss.exact_from_table(found, y_true, num_true, full_loss.SOFTMAX)
        labels, logits, num_true = _full_logits_and_labels(y_true, y_pred, self.num_true)
        values = full_loss.full_cross_entropy(
            labels, logits, num_true, int(logits.shape[-1]), full_loss.SOFTMAX
        )
        return tf.reshape(values, tf.shape(y_pred)[:-1])

    def result(self):
        """exp of the mean cross-entropy; ``{}`` (no log entry) after training batches only."""
        if self._unmeasured():
            return {}
        return tf.exp(self._mean_or_nan())

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "num_true": self.num_true}


@keras.saving.register_keras_serializable(package="tf_sampling")
class TopKAccuracy(_FullSoftmaxMetric):
    """Fraction of examples whose (first) target is among the ``k`` highest logits.

    Args:
      k: int >= 1, number of top classes.
      name: Metric name, default ``"top_{k}_accuracy"``.
      dtype: Metric dtype.
    """

    def __init__(self, k: int = 5, name: str | None = None, dtype=None):
        k = checks.check_int(k, "k", 1)
        super().__init__(fn=self._hit, name=name or f"top_{k}_accuracy", dtype=dtype)
        self.k = k

    def _hit(self, y_true, y_pred) -> tf.Tensor:
        found = output_tags.get_tag(y_pred)
        if found is not None and found.hidden is not None:
            return full_loss.exact_top_k_hits(found, y_true, self.k)
        labels, logits, _ = _full_logits_and_labels(y_true, y_pred, None)
        hit = tf.math.in_top_k(
            targets=tf.cast(labels[:, 0], tf.int32),
            predictions=logits,
            k=min(self.k, int(logits.shape[-1])),
        )
        return tf.reshape(tf.cast(hit, tf.float32), tf.shape(y_pred)[:-1])

    def result(self):
        """The hit rate; ``{}`` (no log entry) after training batches only."""
        if self._unmeasured():
            return {}
        return self._mean_or_nan()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "k": self.k}
