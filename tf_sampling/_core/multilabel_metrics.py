"""Multi-label ranking metrics at ``k`` over every class: precision, recall and nDCG.

Each example has a true set of ``n_i`` classes (padded labels with a mask, as
``label_sets`` resolves them) and a ranking of all classes by logit. The
metrics read only the ``k`` best classes, which :func:`full_top_k` finds in
class blocks (``[batch_size, chunk_size]`` logits at a time, exact), or
``tf.math.top_k`` finds in logits already computed.

For ``hits[r]`` = 1 when the class ranked ``r`` (0-based) is true:

* ``precision@k = sum(hits) / k``;
* ``recall@k = sum(hits) / n_i``;
* ``nDCG@k = DCG / IDCG`` with ``DCG = sum_r hits[r] / log2(r + 2)`` and the
  ideal ``IDCG = sum_{r < min(k, n_i)} 1 / log2(r + 2)``.

The true set is a set: a class listed twice in a row counts once, and
``n_i`` is the number of distinct real labels.
"""

from __future__ import annotations

import tensorflow as tf

from tf_sampling._core import label_sets, loss_args
from tf_sampling._core.full_top_k import full_top_k

PRECISION, RECALL, NDCG = "precision", "recall", "ndcg"
METRICS = (PRECISION, RECALL, NDCG)


def _distinct_mask(ids: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``mask`` keeping only the first real occurrence of each class in a row."""
    same = tf.equal(tf.expand_dims(ids, 2), tf.expand_dims(ids, 1)) & tf.expand_dims(mask, 1)
    # An earlier real slot with the same class.
    earlier = tf.linalg.band_part(tf.ones_like(same[0], tf.int32), -1, 0) - tf.eye(
        tf.shape(ids)[1], dtype=tf.int32
    )
    repeated = tf.reduce_any(same & tf.cast(earlier, tf.bool)[tf.newaxis], 2)
    return mask & tf.logical_not(repeated)


def metrics_from_top_ids(top_ids: tf.Tensor, ids: tf.Tensor, mask: tf.Tensor) -> dict:
    """Precision, recall and nDCG at ``k`` from the ``k`` best classes of each row.

    Args:
      top_ids: int ``[batch_size, k]`` class ids, best first.
      ids: int ``[batch_size, max_true]`` true classes (padded).
      mask: bool ``[batch_size, max_true]``, the real ones.

    Returns:
      dict: ``"precision"``, ``"recall"``, ``"ndcg"``, float32 ``[batch_size]``
      each (0 for a row without a true class).
    """
    top_ids = tf.cast(top_ids, tf.int64)
    ids = tf.cast(ids, tf.int64)
    distinct = _distinct_mask(ids, mask)
    # [batch, k, max_true]: the class ranked r equals a real true class.
    hits = tf.reduce_any(
        tf.equal(tf.expand_dims(top_ids, 2), tf.expand_dims(ids, 1)) & tf.expand_dims(distinct, 1),
        2,
    )
    hits = tf.cast(hits, tf.float32)
    k = tf.shape(top_ids)[1]
    n_true = tf.reduce_sum(tf.cast(distinct, tf.float32), 1)
    num_hits = tf.reduce_sum(hits, 1)
    discount = 1.0 / (tf.math.log(tf.cast(tf.range(k), tf.float32) + 2.0) / tf.math.log(2.0))
    dcg = tf.reduce_sum(hits * discount, 1)
    ideal_ranks = tf.cast(tf.range(k)[tf.newaxis], tf.float32) < tf.expand_dims(n_true, 1)
    idcg = tf.reduce_sum(tf.where(ideal_ranks, discount, 0.0), 1)
    safe = tf.maximum(n_true, 1.0)
    return {
        PRECISION: num_hits / tf.maximum(tf.cast(k, tf.float32), 1.0),
        RECALL: num_hits / safe,
        NDCG: tf.where(idcg > 0, dcg / tf.where(idcg > 0, idcg, 1.0), 0.0),
    }


def full_multilabel_metrics(
    weights,
    biases,
    labels,
    inputs,
    k: int,
    num_classes: int,
    partition_strategy: str = "mod",
    chunk_size: int | None = None,
    name: str = "full_multilabel_metrics",
) -> dict:
    """Exact precision@k, recall@k and nDCG@k over all classes, in class blocks.

    The ``k`` best classes of ``inputs @ weights^T + biases`` come from
    :func:`full_top_k` (bounded memory: one ``[batch_size, chunk_size]`` block
    of logits at a time), then meet each example's true set.

    Args:
      weights: ``[num_classes, dim]`` table (or shards), as the losses take.
      biases: ``[num_classes]``.
      labels: the true sets: a ``tf.RaggedTensor`` ``[batch_size, (n_i)]``, a
        ``LabelSet`` (``nn.label_set``), or int ``[batch_size, max_true]``
        with every slot real.
      inputs: float ``[batch_size, dim]``.
      k: int >= 1, at most ``num_classes``.
      num_classes: int.
      partition_strategy, chunk_size: as ``full_top_k``.
      name: name scope.

    Returns:
      dict: ``"precision"``, ``"recall"``, ``"ndcg"``, float32 ``[batch_size]``.
    """
    with tf.name_scope(name or "full_multilabel_metrics"):
        k = loss_args.check_top_k(k, num_classes)
        ids, mask = true_sets(labels)
        _, top_ids = full_top_k(
            weights, biases, inputs, k, num_classes, partition_strategy, chunk_size
        )
        return metrics_from_top_ids(top_ids, ids, mask)


def true_sets(labels) -> tuple[tf.Tensor, tf.Tensor]:
    """``(ids, mask)`` ``[batch_size, max_true]`` of ragged, ``LabelSet`` or full dense labels."""
    if isinstance(labels, tf.RaggedTensor):
        labels = label_sets.label_set(labels, allow_empty=True)
    if isinstance(labels, label_sets.LabelSet):
        # Padded slots are masked out; their ids are never compared.
        return tf.cast(labels.labels, tf.int64), label_sets.real_mask(labels)
    ids = tf.convert_to_tensor(labels)
    if ids.shape.rank == 1:
        ids = tf.expand_dims(ids, 1)
    ids = tf.cast(ids, tf.int64)
    return ids, tf.ones_like(ids, tf.bool)
