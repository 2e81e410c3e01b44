"""A weight penalty on the touched rows of a table, so its gradient stays sparse."""

from __future__ import annotations

import keras
import tensorflow as tf


def touched_rows_penalty(regularizer, table, ids) -> tf.Tensor:
    """A Keras regularizer applied to the rows ``ids`` of ``table`` only.

    A ``kernel_regularizer`` on a ``[num_classes, dim]`` class table is a
    function of the whole table, so its gradient is dense and every step
    touches every row. For the element-wise regularizers (``L1``, ``L2``,
    ``L1L2``) the penalty of the touched rows has the full penalty's gradient
    on those rows and zero elsewhere; adding this instead (e.g. from an output
    layer's training call, with ``ids`` = true and sampled classes) keeps the
    gradient an ``IndexedSlices`` over those rows. Each id is counted once.

    Args:
      regularizer: A Keras regularizer, its name or config (``keras.regularizers.get``).
      table: ``[num_rows, dim]`` variable or tensor.
      ids: int32/int64 row ids of any shape (duplicates allowed).

    Returns:
      Scalar penalty, ``regularizer(table[unique(ids)])``; 0 for ``regularizer=None``.

    Example:
      ```python
      ids = tf.concat([tf.reshape(labels, [-1]), sampled], 0)
      self.add_loss(touched_rows_penalty(self.kernel_regularizer, self.kernel, ids))
      ```
    """
    regularizer = keras.regularizers.get(regularizer)
    if regularizer is None:
        return tf.constant(0.0)
    unique_ids, _ = tf.unique(tf.reshape(ids, [-1]))
    return regularizer(tf.gather(table, unique_ids))
