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

With ``padding_id``, ``Perplexity`` and ``TopKAccuracy`` take a variable
number of true classes per example: ``y_true`` padded to ``[*batch,
max_true]`` (Keras 3 has no ragged targets), example ``i``'s ``n_i`` real
labels sharing the target mass ``1 / n_i`` (``tf_sampling.nn.label_set``), as
the losses with ``padding_id`` do.

``PrecisionAtK``, ``RecallAtK`` and ``NDCGAtK`` evaluate multi-label examples:
``y_true`` is the true set padded to ``[batch_size, max_true]`` with
``padding_id``; the ``k`` best classes come from plain logits or, on a head's
output, from its table in class blocks.
"""

from __future__ import annotations

import weakref

import keras
import tensorflow as tf

from tf_sampling._core import checks, label_sets, loss_args, multilabel_metrics
from tf_sampling._keras import full_loss, output_tags


def _full_logits_and_labels(
    y_true, y_pred, num_true: int | None, padding_id: int | None = None
) -> tuple:
    """``(labels [n, num_true], logits [n, num_classes], num_true)`` for a full-softmax metric.

    With ``padding_id`` the labels are a ``LabelSet``; on plain logits
    ``num_true`` defaults to the width of a padded ``y_true``.
    """
    logits = full_loss.logits_of(y_pred)
    found = output_tags.get_tag(y_pred)
    if num_true is None:
        num_true = found.layer.num_true if found is not None else 1
        # Plain logits, or a head without a class table (the adaptive head's
        # log-probabilities): the padded y_true's own width.
        if padding_id is not None and (found is None or found.hidden is None):
            num_true = full_loss.padded_width(y_true, logits, " on plain logits, or pass num_true")
    num_classes = int(logits.shape[-1])
    labels = full_loss.flatten_labels(y_true, logits, num_true, num_classes, padding_id=padding_id)
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

    def result(self):
        """The mean over evaluation examples; ``{}`` (no log entry) after training batches only.

        NaN if no example was measured (e.g. all masked): 0 or 1 would read as
        a measurement.
        """
        if self._unmeasured():
            return {}
        mean = super().result()
        return tf.where(self.count > 0, mean, tf.constant(float("nan"), mean.dtype))


@keras.saving.register_keras_serializable(package="tf_sampling")
class Perplexity(_FullSoftmaxMetric):
    """``exp`` of the mean full-softmax cross-entropy per example (per token for LMs).

    Masked positions (Keras mask) and zero ``sample_weight`` are left out of
    the mean. Computed over all classes, also for an ``NCE`` layer.

    Multi-label (``padding_id``): ``y_true`` is ``[*batch, max_true]``, the
    unused slots holding ``padding_id``; example ``i``'s ``n_i`` real labels
    get target ``1 / n_i`` each (the losses' rule), so the value is ``exp`` of
    the mean exact loss that ``FullSoftmaxLoss(padding_id=...)`` reports.
    ``max_true`` is ``num_true``, else the head's ``num_true``, else (plain
    logits) ``y_true``'s last dimension. An example with only padding is an
    error (``InvalidArgumentError``), as in the losses.

    Args:
      num_true: Optional int, targets per example (default: the layer's).
      padding_id: Optional int, the id of unused ``y_true`` slots, outside
        ``[0, num_classes)`` (e.g. -1). None (default): every slot is a label.
      name: Metric name, default ``"perplexity"``.
      dtype: Metric dtype.
    """

    def __init__(
        self,
        num_true: int | None = None,
        name: str = "perplexity",
        dtype=None,
        padding_id: int | None = None,
    ):
        if num_true is not None:
            num_true = checks.check_int(num_true, "num_true", 1)
        padding_id = label_sets.check_padding_id(padding_id)
        super().__init__(fn=self._cross_entropy, name=name, dtype=dtype)
        self.num_true = num_true
        self.padding_id = padding_id

    def _cross_entropy(self, y_true, y_pred) -> tf.Tensor:
        found = output_tags.get_tag(y_pred)
        if found is not None and found.hidden is not None:
            num_true = self.num_true or found.layer.num_true
            return full_loss.exact_from_table(
                found, y_true, num_true, full_loss.SOFTMAX, self.padding_id
            )
        labels, logits, num_true = _full_logits_and_labels(
            y_true, y_pred, self.num_true, self.padding_id
        )
        values = full_loss.full_cross_entropy(
            labels, logits, num_true, int(logits.shape[-1]), full_loss.SOFTMAX
        )
        return tf.reshape(values, tf.shape(y_pred)[:-1])

    def result(self):
        """exp of the mean cross-entropy; ``{}`` (no log entry) after training batches only."""
        mean = super().result()
        return mean if isinstance(mean, dict) else tf.exp(mean)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "num_true": self.num_true,
            "padding_id": self.padding_id,
        }


@keras.saving.register_keras_serializable(package="tf_sampling")
class TopKAccuracy(_FullSoftmaxMetric):
    """Fraction of examples whose (first) target is among the ``k`` highest logits.

    Without ``padding_id``: the first target's rank, ties counting in
    (``tf.math.in_top_k``).

    Multi-label (``padding_id``): ``y_true`` is ``[*batch, max_true]``, the
    unused slots holding ``padding_id``, and an example is a hit when **any**
    of its real labels is among its ``k`` best classes as ``tf.math.top_k``
    picks them (ties at the ``k``-th place go to the lower class id), on a
    head's output from its table in class blocks (``nn.full_top_k``, the same
    classes). A row with NaN among its ``k`` best scores is no hit.
    ``max_true`` is the head's ``num_true``, or on plain logits ``y_true``'s
    last dimension. An example with only padding is an error
    (``InvalidArgumentError``), as in the losses.

    Args:
      k: int >= 1, number of top classes.
      name: Metric name, default ``"top_{k}_accuracy"``.
      dtype: Metric dtype.
      padding_id: Optional int, the id of unused ``y_true`` slots, outside
        ``[0, num_classes)`` (e.g. -1). None (default): one target per
        example, the first.
    """

    def __init__(
        self, k: int = 5, name: str | None = None, dtype=None, padding_id: int | None = None
    ):
        k = checks.check_int(k, "k", 1)
        padding_id = label_sets.check_padding_id(padding_id)
        super().__init__(fn=self._hit, name=name or f"top_{k}_accuracy", dtype=dtype)
        self.k = k
        self.padding_id = padding_id

    def _hit(self, y_true, y_pred) -> tf.Tensor:
        if self.padding_id is not None:
            return self._any_hit(y_true, y_pred)
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

    def _any_hit(self, y_true, y_pred) -> tf.Tensor:
        """float32 ``[*batch]``: 1 where a real label is among the ``k`` best classes."""
        found = output_tags.get_tag(y_pred)
        on_table = found is not None and found.hidden is not None
        if on_table:
            layer = found.layer
            rows, num_classes, num_true = found.hidden, layer.num_classes, layer.num_true
        else:
            rows = full_loss.logits_of(y_pred)
            num_classes = int(rows.shape[-1])
            num_true = full_loss.padded_width(y_true, rows, " on plain logits")
        labels = full_loss.flatten_labels(
            y_true,
            rows,
            num_true,
            num_classes,
            rows.shape[:-1] + [num_classes],
            padding_id=self.padding_id,
        )
        # Checks as the losses do (padding id, all-padding rows, range); the
        # padded slots then hold a copy of the row's first real label.
        resolved = label_sets.resolve(labels, num_true, num_classes)
        ids = loss_args.normalize_labels(resolved.ids, num_true, num_classes)
        k = min(self.k, num_classes)
        if on_table:
            scores, top_ids = multilabel_metrics.full_top_k(
                layer.kernel,
                layer.bias,
                full_loss.flatten_features(rows),
                k,
                num_classes,
                layer.partition_strategy,
                layer.chunk_size,
            )
        else:
            scores, top_ids = tf.math.top_k(full_loss.flatten_features(rows), k)
        among = tf.equal(tf.expand_dims(tf.cast(top_ids, tf.int64), 2), tf.expand_dims(ids, 1))
        hit = tf.reduce_any(among, [1, 2]) & tf.logical_not(
            tf.reduce_any(tf.math.is_nan(scores), 1)
        )
        return full_loss.unflatten(tf.cast(hit, tf.float32), rows)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "k": self.k, "padding_id": self.padding_id}


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
        padding_id = label_sets.check_padding_id(padding_id)
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

    def update_state(self, y_true, y_pred, sample_weight=None):
        # A row without a label has nothing to rank: it is left out of the
        # mean (weight 0), as RetrievalRecall leaves out such a query.
        if not (output_tags.is_untagged_build_placeholder(y_pred) or _skips(y_pred)):
            labelled = tf.reshape(tf.reduce_any(self._true_sets(y_true)[1], -1), [-1])
            weight = tf.cast(labelled, self.dtype)
            if sample_weight is not None:
                weight *= tf.reshape(tf.cast(sample_weight, self.dtype), [-1])
            sample_weight = weight
        return super().update_state(y_true, y_pred, sample_weight=sample_weight)

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

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "k": self.k, "padding_id": self.padding_id}


@keras.saving.register_keras_serializable(package="tf_sampling")
class PrecisionAtK(_MultiLabelAtK):
    """Mean fraction of the ``k`` best classes that are true (precision@k).

    Examples without a label (only padding) are left out of the mean, in
    this metric, ``RecallAtK`` and ``NDCGAtK`` alike (NaN if none is left).

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
