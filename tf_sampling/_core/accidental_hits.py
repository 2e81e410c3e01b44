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

__all__ = [
    "accidental_hit_mask",
    "compute_accidental_hits",
    "in_xla_context",
    "last_occurrences",
    "occurrences",
]


# Odd 64-bit multipliers of the Fibonacci-style hashes, one per round of
# `occurrences` (cycled): a pair of classes sharing a slot in one round
# almost never shares it in the next.
_HASH_MULTIPLIERS = (
    0x9E3779B97F4A7C15,
    0xC2B2AE3D27D4EB4F,
    0x165667B19E3779F9,
    0xD6E8FEB86659FD93,
    0xFF51AFD7ED558CCD,
    0xC4CEB9FE1A85EC53,
)


def occurrences(values: tf.Tensor, last: bool = False) -> tf.Tensor:
    """Marks the first (or last) occurrence of each value of a 1-D tensor, without a sort.

    XLA's CPU sort costs about 0.1 us per element and step of the comparison
    network (bench/bench_compiled.py ``--pieces``); this is a few passes of
    hashing instead. Each round hashes the unresolved values into ``4 * n``
    slots and lets the earliest (latest) unresolved position of each slot win
    it by a scatter-min (max); a value equal to its slot's winner is resolved,
    and it is the first (last) occurrence exactly when it is the winner
    itself. Values that lost their slot to another value retry with the next
    hash. Every round resolves at least each slot's winner, so the loop ends
    (in practice after 2 to 4 rounds); the result is exact, not probabilistic.

    Args:
      values: int ``[n]``; ``n`` must be static (else the sort is used).
      last: bool, mark the last occurrences instead of the first.

    Returns:
      tf.Tensor: bool ``[n]``, True where ``values[i]`` differs from every
      ``values[j]`` with ``j < i`` (``j > i`` when ``last``).
    """
    values = tf.convert_to_tensor(values)
    n = values.shape[0]
    if n is None:
        return _sorted_occurrences(values, last)
    if n <= 1:
        return tf.ones([n], tf.bool)
    log_slots = (4 * n - 1).bit_length()
    keys = tf.bitcast(tf.cast(values, tf.int64), tf.uint64)
    shift = tf.constant(64 - log_slots, tf.uint64)
    multipliers = tf.constant(_HASH_MULTIPLIERS, tf.uint64)
    position = tf.range(n, dtype=tf.int32)
    # Positions that take no part: past either end, so they never win.
    absent = tf.constant(-1 if last else n, tf.int32)
    scatter = tf.tensor_scatter_nd_max if last else tf.tensor_scatter_nd_min

    def body(round_index, unresolved, marked):
        multiplier = multipliers[round_index % len(_HASH_MULTIPLIERS)]
        slot = tf.cast(tf.bitwise.right_shift(keys * multiplier, shift), tf.int32)
        bids = tf.where(unresolved, position, absent)
        winners = scatter(tf.fill([1 << log_slots], absent), slot[:, None], bids)
        winner = tf.gather(winners, slot)
        resolved = unresolved & tf.equal(
            tf.gather(values, tf.clip_by_value(winner, 0, n - 1)), values
        )
        return (
            round_index + 1,
            unresolved & ~resolved,
            marked | (resolved & tf.equal(winner, position)),
        )

    _, _, marked = tf.while_loop(
        lambda round_index, unresolved, marked: tf.reduce_any(unresolved),
        body,
        (tf.constant(0), tf.ones([n], tf.bool), tf.zeros([n], tf.bool)),
    )
    return marked


def _sorted_occurrences(values: tf.Tensor, last: bool) -> tf.Tensor:
    # A stable sort keeps equal values in position order: the first (last) of
    # each run of equal sorted values is the first (last) occurrence.
    order = tf.argsort(values, stable=True)
    ordered = tf.gather(values, order)
    change = tf.cast(ordered[1:] != ordered[:-1], tf.int32)
    edge = tf.ones([1], tf.int32)
    marks = tf.concat([change, edge] if last else [edge, change], 0)
    return tf.scatter_nd(order[:, None], marks, tf.shape(values, out_type=order.dtype)) > 0


def last_occurrences(values: tf.Tensor) -> tf.Tensor:
    """Marks the last occurrence of each value of a 1-D tensor (``occurrences(values, last=True)``).

    Args:
      values: int ``[n]``.

    Returns:
      tf.Tensor: bool ``[n]``, True where ``values[i]`` differs from every
      ``values[j]``, ``j > i``.
    """
    return occurrences(values, last=True)


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
