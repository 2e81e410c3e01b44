"""Multi-label evaluation metrics: ``PrecisionAtK``, ``RecallAtK`` and ``NDCGAtK``.

Exact, over every class. ``y_true`` is the example's true set, padded:
``[batch_size, max_true]`` class ids with ``padding_id`` in the unused slots
(Keras 3 has no ragged targets). ``y_pred`` is either plain logits
``[batch_size, num_classes]`` (``tf.math.top_k`` on them) or the output of a
``tf_sampling`` head: then the ``k`` best classes come from the head's input
and class table in class blocks (``tf_sampling.nn.full_top_k``), never from
``[batch_size, num_classes]`` logits. Like ``tf_sampling.metrics``, they skip
training batches of a head (hidden activations) and stay out of the training
logs. Definitions: ``tf_sampling._core.multilabel_metrics``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling._core import checks, label_sets, multilabel_metrics
from tf_sampling._keras import full_loss, output_tags
from tf_sampling.metrics import _FullSoftmaxMetric

__all__ = ["NDCGAtK", "PrecisionAtK", "RecallAtK"]


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
