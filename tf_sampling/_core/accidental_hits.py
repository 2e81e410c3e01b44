"""Accidental hits in plain TensorFlow ops (fixed shapes: XLA-compilable, any device).

An accidental hit is a sampled candidate that equals one of the example's
true classes; the sampled losses mask its logit. TensorFlow finds them with
``tf.nn.compute_accidental_hits``, a CPU-only op without an XLA kernel whose
outputs have a data-dependent length. Its rule: a class sampled more than
once is a hit at its **last** position only (the op maps each sampled value to
the last position it was seen at), and a row that repeats a true class lists
that hit once per repetition.

``accidental_hit_mask`` gives the same hits as a boolean ``[batch_size,
num_sampled]`` mask, which compiles; ``compute_accidental_hits`` turns it
into TensorFlow's three outputs (eager or graph mode; not under XLA, as its
outputs have a dynamic length).
"""

from __future__ import annotations

import tensorflow as tf

from tf_sampling._core.xla import in_xla_context

__all__ = ["accidental_hit_mask", "compute_accidental_hits", "in_xla_context", "last_occurrences"]


def last_occurrences(values: tf.Tensor) -> tf.Tensor:
    """Marks the last occurrence of each value of a 1-D tensor.

    Args:
      values: int ``[n]``.

    Returns:
      tf.Tensor: bool ``[n]``, True where ``values[i]`` differs from every
      ``values[j]``, ``j > i``.
    """
    values = tf.convert_to_tensor(values)
    # A stable sort keeps equal values in position order: the last of each run
    # of equal sorted values is the last occurrence.
    order = tf.argsort(values, stable=True)
    ordered = tf.gather(values, order)
    ends = tf.concat([tf.cast(ordered[1:] != ordered[:-1], tf.int32), tf.ones([1], tf.int32)], 0)
    return tf.scatter_nd(order[:, None], ends, tf.shape(values, out_type=order.dtype)) > 0


def accidental_hit_mask(true_classes, sampled_candidates, num_true: int) -> tf.Tensor:
    """Where the sampled candidates hit a true class, with TensorFlow's rule.

    Args:
      true_classes: int ``[batch_size, num_true]`` target classes.
      sampled_candidates: int ``[num_sampled]`` candidates.
      num_true: int, number of target classes per example.

    Returns:
      tf.Tensor: bool ``[batch_size, num_sampled]``; ``[i, k]`` is True when
      ``sampled_candidates[k]`` is one of row ``i``'s true classes and ``k``
      is the last position of that value in ``sampled_candidates``.
    """
    sampled = tf.cast(sampled_candidates, tf.int64)
    true_classes = tf.reshape(tf.cast(true_classes, tf.int64), [-1, num_true])
    hit = None
    for j in range(num_true):
        equal = tf.equal(true_classes[:, j : j + 1], sampled[None, :])
        hit = equal if hit is None else hit | equal
    return hit & last_occurrences(sampled)[None, :]


def compute_accidental_hits(
    true_classes, sampled_candidates, num_true: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The outputs of ``tf.nn.compute_accidental_hits``, from plain TensorFlow ops.

    Args:
      true_classes: int ``[batch_size, num_true]`` target classes.
      sampled_candidates: int ``[num_sampled]`` candidates.
      num_true: int, number of target classes per example.

    Returns:
      tuple: ``indices`` int32 ``[num_hits]`` (rows), ``ids`` int64
      ``[num_hits]`` (positions in ``sampled_candidates``) and ``weights``
      float32 ``[num_hits]`` (all ``-FLT_MAX``), ordered by row, then by the
      position of the true class within the row, as TensorFlow's; a row
      repeating a true class lists its hit once per repetition.
    """
    sampled = tf.cast(sampled_candidates, tf.int64)
    true_classes = tf.reshape(tf.cast(true_classes, tf.int64), [-1, num_true])
    last = last_occurrences(sampled)
    # [batch, num_true, num_sampled]: true class j of row i equals the last
    # occurrence at position k. Each (i, j) matches at most one k, so the
    # row-major order of tf.where is TensorFlow's (row, then j).
    match = tf.equal(true_classes[:, :, None], sampled[None, None, :]) & last[None, None, :]
    where = tf.where(match)
    indices = tf.cast(where[:, 0], tf.int32)
    ids = where[:, 2]
    weights = tf.fill(tf.shape(indices), tf.constant(tf.float32.min, tf.float32))
    return indices, ids, weights
