"""Exact retrieval metrics over a whole candidate index: recall@k and top-k accuracy.

``RetrievalRecall`` and ``RetrievalTopKAccuracy`` read a model's query
embeddings (``y_pred``) and the true candidate ids (``y_true``), and scan the
index **once per batch** for the ``max(ks)`` best candidates; every ``k`` is
then a comparison with the first ``k`` of them. They work in
``model.evaluate`` (``model.compile(metrics=[...])``) and alone.

``y_true`` is one id per query (``[batch]`` or ``[batch, 1]``), several
(``[batch, t]`` padded with the index's ``padding_id``) or a
``tf.RaggedTensor`` ``[batch, (t_i)]``. For a query:

* recall@k: the fraction of its true ids among the first ``k`` results;
* top-k accuracy (hit rate): 1 if any of its true ids is among them.

With one true id per query the two are equal. Queries without a true id
(all padding) are left out; ``sample_weight`` (``[batch]``) weighs the
others, and the result is their weighted mean.

The index is any object with ``search(query_embeddings, k, exclude)`` and
``padding_id``, such as ``tf_sampling.layers.CandidateIndex``; the metric
keeps a reference to it (never a copy), so a rebuilt index is used as is.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling._core import checks


def _check_ks(ks) -> tuple[int, ...]:
    if isinstance(ks, int):
        ks = (ks,)
    try:
        ks = tuple(ks)
    except TypeError:
        raise TypeError(f"`ks` must be a sequence of ints, got ks={ks!r}.") from None
    if not ks:
        raise ValueError("`ks` must hold at least one k, got ks=().")
    return tuple(checks.check_int(k, "ks") for k in ks)


class _RetrievalMetric(keras.metrics.Metric):
    """Weighted means over queries of a per-query value at several ``k``."""

    any_hit = False

    def __init__(self, index, ks=(1, 10, 50, 100), name: str = "recall", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if not (callable(getattr(index, "search", None)) and hasattr(index, "padding_id")):
            raise TypeError(
                "`index` must be a candidate index with search() and padding_id (e.g. "
                f"tf_sampling.layers.CandidateIndex), got {index!r}."
            )
        self.index = index
        self.ks = _check_ks(ks)
        self.totals = self.add_variable(
            shape=(len(self.ks),), initializer="zeros", name="totals", dtype=self.dtype
        )
        self.weight = self.add_variable(
            shape=(), initializer="zeros", name="weight", dtype=self.dtype
        )

    def _true_ids(self, y_true, ids_dtype) -> tf.Tensor:
        """``y_true`` as ``[batch, t]`` ids of the index's type, padded with its padding id."""
        padding = self.index.padding_id
        if isinstance(y_true, tf.RaggedTensor):
            values = y_true.flat_values
        else:
            y_true = tf.convert_to_tensor(y_true)
            values = y_true
        if (values.dtype == tf.string) != (ids_dtype == tf.string) or values.dtype.is_floating:
            raise TypeError(
                f"`y_true` must hold the index's ids ({ids_dtype.name}), got dtype "
                f"{values.dtype.name}."
            )
        if isinstance(y_true, tf.RaggedTensor):
            if ids_dtype != tf.string:
                y_true = tf.cast(y_true, tf.int64)
            return y_true.to_tensor(default_value=tf.constant(padding, ids_dtype))
        if ids_dtype != tf.string:
            y_true = tf.cast(y_true, tf.int64)
        if y_true.shape.rank == 1:
            y_true = y_true[:, tf.newaxis]
        if y_true.shape.rank != 2:
            raise ValueError(
                f"`y_true` must be [batch] or [batch, t] ids, got shape {y_true.shape}."
            )
        return y_true

    def update_state(self, y_true, y_pred, sample_weight=None, exclude=None):
        """Adds a batch.

        Args:
          y_true: The true candidate ids (see the module docstring).
          y_pred: float ``[batch, dim]`` query embeddings.
          sample_weight: Optional ``[batch]`` (or ``[batch, 1]``) weights.
          exclude: Optional ids to leave out of each query's results, as the
            index's ``exclude`` (e.g. the ids seen in training).
        """
        k_max = max(self.ks)
        _, found = self.index.search(y_pred, k=k_max, exclude=exclude)
        true_ids = self._true_ids(y_true, found.dtype)
        valid = tf.not_equal(true_ids, tf.constant(self.index.padding_id, found.dtype))
        # [batch, t, k_max]: where each true id sits among the results.
        matches = tf.equal(true_ids[:, :, tf.newaxis], found[:, tf.newaxis, :])
        first = tf.where(
            tf.reduce_any(matches, -1),
            tf.argmax(tf.cast(matches, tf.int8), -1, output_type=tf.int32),
            k_max,
        )
        num_true = tf.reduce_sum(tf.cast(valid, self.dtype), 1)
        weights = tf.cast(num_true > 0, self.dtype)
        if sample_weight is not None:
            sample_weight = tf.cast(tf.convert_to_tensor(sample_weight), self.dtype)
            weights *= tf.reshape(sample_weight, [-1])
        values = []
        for k in self.ks:
            hits = tf.cast((first < k) & valid, self.dtype)
            if self.any_hit:
                values.append(tf.reduce_max(hits, 1))
            else:
                values.append(tf.math.divide_no_nan(tf.reduce_sum(hits, 1), num_true))
        per_k = tf.reduce_sum(tf.stack(values, 1) * weights[:, tf.newaxis], 0)
        self.totals.assign_add(per_k)
        self.weight.assign_add(tf.reduce_sum(weights))

    def result(self) -> dict:
        means = tf.math.divide_no_nan(self.totals, self.weight)
        return {f"{self.name}@{k}": means[i] for i, k in enumerate(self.ks)}

    def get_config(self) -> dict:
        # The index is state, not configuration: a restored metric needs one passed in.
        return {"name": self.name, "dtype": self.dtype, "ks": list(self.ks)}


class RetrievalRecall(_RetrievalMetric):
    """recall@k over a candidate index for several ``k``, from one scan per batch.

    Args:
      index: A ``tf_sampling.layers.CandidateIndex`` (or anything with
        ``search(query_embeddings, k, exclude)`` and ``padding_id``).
      ks: int or sequence of ints, each in ``[1, N]``.
      name: Result keys are ``f"{name}@{k}"``.
      dtype: The metric's dtype.

    ``update_state(y_true, y_pred, sample_weight=None, exclude=None)``: see
    the module docstring; ``result()`` is a dict of float scalars.
    """

    any_hit = False


class RetrievalTopKAccuracy(_RetrievalMetric):
    """Top-k accuracy (any true id among the first ``k``) over a candidate index, several ``k``.

    TensorFlow Recommenders' ``FactorizedTopK`` definition; the same arguments
    as :class:`RetrievalRecall` (default ``name="top_k_accuracy"``).
    """

    any_hit = True

    def __init__(self, index, ks=(1, 10, 50, 100), name: str = "top_k_accuracy", dtype=None):
        super().__init__(index, ks, name=name, dtype=dtype)
