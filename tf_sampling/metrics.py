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

``PrecisionAtK``, ``RecallAtK`` and ``NDCGAtK`` evaluate multi-label examples:
``y_true`` is the true set padded to ``[batch_size, max_true]`` with
``padding_id``; the ``k`` best classes come from plain logits or, on a head's
output, from its table in class blocks.
"""

from __future__ import annotations

import weakref

import keras
import tensorflow as tf

from tf_sampling._core import checks, label_sets, multilabel_metrics
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


# Multi-label evaluation: the example's true set, padded ``[batch_size, max_true]`` with
# ``padding_id`` in the unused slots (Keras 3 has no ragged targets); exact over every
# class, from the head's table in class blocks. Definitions: ``_core.multilabel_metrics``.
class _MultiLabelAtK(_FullSoftmaxMetric):
    """The mean of one ranking metric at ``k`` over evaluation examples."""

    metric = ""

    def __init__(
        self, k: int = 5, padding_id: int | None = -1, name: str | None = None, dtype=None
    ):
        k = checks.check_int(k, "k", 1)
        if padding_id is not None:
            label_sets.label_set(tf.zeros([1, 1], tf.int64), padding_id=padding_id)  # type check
        super().__init__(fn=self._values, name=name or f"{self.metric}_at_{k}", dtype=dtype)
        self.k = k
        self.padding_id = padding_id

    def _true_sets(self, y_true) -> tuple[tf.Tensor, tf.Tensor]:
        y_true = tf.convert_to_tensor(y_true)
        if y_true.dtype.is_floating:
            y_true = tf.cast(tf.round(y_true), tf.int64)
        y_true = tf.cast(y_true, tf.int64)
        if y_true.shape.rank == 1:
            y_true = tf.expand_dims(y_true, 1)
        mask = tf.ones_like(y_true, tf.bool)
        if self.padding_id is not None:
            mask = tf.not_equal(y_true, tf.constant(self.padding_id, tf.int64))
        return y_true, mask

    def _values(self, y_true, y_pred) -> tf.Tensor:
        ids, mask = self._true_sets(y_true)
        found = output_tags.get_tag(y_pred)
        if found is not None and found.hidden is not None:
            layer = found.layer
            k = min(self.k, layer.num_classes)
            _, top_ids = multilabel_metrics.full_top_k(
                layer.kernel,
                layer.bias,
                full_loss.flatten_features(found.hidden),
                k,
                layer.num_classes,
                layer.partition_strategy,
                layer.chunk_size,
            )
        else:
            logits = full_loss.logits_of(y_pred)
            logits = tf.reshape(logits, [-1, logits.shape[-1]])
            _, top_ids = tf.math.top_k(logits, min(self.k, int(logits.shape[-1])))
        values = multilabel_metrics.metrics_from_top_ids(top_ids, ids, mask)[self.metric]
        if self.metric == multilabel_metrics.PRECISION:
            # Divided by k, not by the number of classes when fewer.
            values = values * tf.cast(tf.shape(top_ids)[1], tf.float32) / float(self.k)
        return values

    def result(self):
        """The mean over evaluation examples; ``{}`` (no log entry) after training batches only."""
        if self._unmeasured():
            return {}
        return self._mean_or_nan()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "k": self.k, "padding_id": self.padding_id}


@keras.saving.register_keras_serializable(package="tf_sampling")
class PrecisionAtK(_MultiLabelAtK):
    """Mean fraction of the ``k`` best classes that are true (precision@k).

    Args:
      k: int >= 1.
      padding_id: Optional int, the id of unused ``y_true`` slots (default -1;
        None: every slot is a label).
      name: default ``"precision_at_{k}"``.
      dtype: Metric dtype.
    """

    metric = multilabel_metrics.PRECISION


@keras.saving.register_keras_serializable(package="tf_sampling")
class RecallAtK(_MultiLabelAtK):
    """Mean fraction of the true classes among the ``k`` best (recall@k).

    Args: as :class:`PrecisionAtK` (default name ``"recall_at_{k}"``).
    """

    metric = multilabel_metrics.RECALL


@keras.saving.register_keras_serializable(package="tf_sampling")
class NDCGAtK(_MultiLabelAtK):
    """Mean normalized discounted cumulative gain of the ``k`` best classes (nDCG@k).

    Binary relevance (true or not), ``log2(rank + 2)`` discount, normalized by
    the ideal ranking of ``min(k, n_i)`` true classes.

    Args: as :class:`PrecisionAtK` (default name ``"ndcg_at_{k}"``).
    """

    metric = multilabel_metrics.NDCG
