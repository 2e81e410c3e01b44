"""Exact top-k classes by logit over every class, in blocks of classes.

``tf.math.top_k`` on the full logits ``inputs @ weights^T + biases`` without
holding them: each block's best ``k`` (score, id) pairs merge into a running
top-k per row, so one block of logits ``[n, chunk_size]`` is the largest
temporary (see ``class_blocks``). Ties go to the lower class id, as
``tf.math.top_k`` breaks them on the full row.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from tf_sampling._core import class_blocks
from tf_sampling._core.xla import in_xla_context


def _shape_error(message: str) -> Exception:
    """The class ``tf.math.top_k`` raises for a bad static ``k``: eagerly an op error, else ValueError."""
    if tf.executing_eagerly():
        return tf.errors.InvalidArgumentError(None, None, message)
    return ValueError(message)


def _k_messages(k, num_classes: int) -> tuple[str, str]:
    """The errors for a negative and a too large ``k``, with ``tf.math.top_k``'s words."""
    negative = f"`k` must be non-negative: Need k >= 0, got {k} (k={k})."
    too_large = (
        f"`k` must be <= num_classes: input must have at least k columns. Had {num_classes}, "
        f"needed {k} (the logits must have last dimension >= k = {k}), got k={k}."
    )
    return negative, too_large


def _check_k(k, num_classes: int):
    """``full_top_k``'s ``k``: an int in ``[0, num_classes]``, or an int64 scalar tensor.

    A Python/NumPy integer, or a tensor whose value is known (eagerly, or a
    constant), is checked now; another tensor is checked when it runs.

    Raises:
      TypeError: neither an integer nor an integer tensor (e.g. 2.0).
      tf.errors.InvalidArgumentError, ValueError: out of range or not a
        scalar (see :func:`_shape_error`); at run time, an
        ``InvalidArgumentError``.
    """
    if isinstance(k, bool):
        raise TypeError(f"`k` must be a Python int or an integer scalar tensor, got {k!r}.")
    if not isinstance(k, numbers.Integral):
        if isinstance(k, numbers.Real) or not (tf.is_tensor(k) or isinstance(k, np.ndarray)):
            raise TypeError(
                f"`k` must be a Python int or an integer scalar tensor, got {k!r} of type "
                f"{type(k).__name__}."
            )
        tensor = tf.convert_to_tensor(k)
        if not tensor.dtype.is_integer or tensor.dtype in (tf.uint64, tf.uint32):
            raise TypeError(
                f"`k` must be a Python int or an integer scalar tensor, got dtype "
                f"{tensor.dtype.name}."
            )
        if tensor.shape.rank not in (None, 0):
            raise _shape_error(f"`k` must be scalar, got shape {tensor.shape.as_list()}.")
        static = tf.get_static_value(tensor)
        if static is None:
            k = tf.cast(tf.ensure_shape(tensor, []), tf.int64)
            if in_xla_context():
                return k  # No run-time checks there (nor a top_k of a non-constant k).
            negative, too_large = _k_messages("{}", num_classes)
            checks = [
                tf.debugging.Assert(
                    k >= 0, [tf.strings.format(negative, (k,) * negative.count("{}"))]
                ),
                tf.debugging.Assert(
                    k <= num_classes, [tf.strings.format(too_large, (k,) * too_large.count("{}"))]
                ),
            ]
            with tf.control_dependencies(checks):
                return tf.identity(k)
        k = static
    k = int(k)
    negative, too_large = _k_messages(k, num_classes)
    if k < 0:
        raise _shape_error(negative)
    if k > num_classes:
        raise _shape_error(too_large)
    return k


def _at_most(k, width):
    """``min(k, width)``: a Python int when both are, else an int64 tensor."""
    if isinstance(k, int) and isinstance(width, int):
        return min(k, width)
    return tf.minimum(tf.cast(k, tf.int64), tf.cast(width, tf.int64))


def _width(t: tf.Tensor):
    """The last dimension of a rank-2 tensor: static when known."""
    return t.shape[1] if t.shape[1] is not None else tf.shape(t, out_type=tf.int64)[1]


@class_blocks.fill_doc(class_blocks.COMMON_DOC)
def full_top_k(
    weights,
    biases,
    inputs,
    k,
    num_classes=None,
    partition_strategy="mod",
    chunk_size=None,
    name="full_top_k",
) -> tuple[tf.Tensor, tf.Tensor]:
    """Exact top-``k`` classes by logit, without ``[n, num_classes]`` logits.

    The same result as ``tf.math.top_k(logits, k)`` on the full logits
    ``inputs @ weights^T + biases`` in class order (ties go to the lower class
    id), computed ``chunk_size`` classes at a time with a running top-k (a
    ``chunk_size`` below ``k`` is raised to ``k``). The scores carry no
    gradient.

    Args:
      {tables}
      {inputs}
      k: int, or an integer scalar tensor (as ``tf.math.top_k`` takes), the
        number of classes to return, in ``[0, num_classes]``.
      num_classes: Optional int, checked against the tables when given.
      {blocks}

    Returns:
      tuple: ``(scores, ids)``, both ``[batch_size, k]``, sorted by descending
      score: float32 logits (float64 when an operand is float64) and int64
      class ids.

    Raises:
      {argument_errors}
      tf.errors.InvalidArgumentError: a negative ``k`` or one above
        ``num_classes``, eagerly or, for a ``k`` only known then, at run time;
        in a graph a ``k`` known when it is built raises ``ValueError``, the
        classes ``tf.math.top_k`` raises. The message holds TF's words too.
    """
    with tf.name_scope(name or "full_top_k"):
        inputs, weight_table, bias_table, dtype, chunk, num_classes = class_blocks.prepare(
            weights, biases, inputs, num_classes, partition_strategy, chunk_size
        )
        k = _check_k(k, num_classes)
        if isinstance(k, int):
            chunk = max(chunk, min(k, num_classes))
        layout = weight_table.layout
        x = tf.stop_gradient(tf.cast(inputs, dtype))
        w_shards = [tf.stop_gradient(class_blocks.read(s)) for s in weight_table.shards]
        b_shards = [tf.stop_gradient(class_blocks.read(s)) for s in bias_table.shards]
        # Within a shard, ids grow with the row, so merging the running best
        # (earlier, lower ids) before a block's best keeps top_k's lower-index
        # tie rule equal to the lower-id rule.

        def merge(x_gated, shard, start, size, state):
            z, _ = class_blocks.block_logits(
                x_gated, w_shards[shard], b_shards[shard], start, size, dtype
            )
            scores, positions = tf.math.top_k(z, _at_most(k, size))
            ids = layout.class_ids(shard, positions + start)
            scores = tf.concat([state[0], scores], 1)
            ids = tf.concat([state[1], ids], 1)
            scores, best = tf.math.top_k(scores, _at_most(k, _width(scores)))
            return scores, tf.gather(ids, best, batch_dims=1)

        results = []
        previous = ()
        for shard, rows in enumerate(weight_table.sizes):
            size = min(chunk, rows)
            start = tf.constant(0, tf.int32)
            (x_gated,) = class_blocks.after((x,), previous)
            z, _ = class_blocks.block_logits(
                x_gated, w_shards[shard], b_shards[shard], start, size, dtype
            )
            scores, positions = tf.math.top_k(z, _at_most(k, size))
            state = (scores, layout.class_ids(shard, positions))
            if rows > size:
                state = class_blocks.scan_blocks(
                    rows,
                    chunk,
                    lambda s0, sz, st, x_gated=x_gated, shard=shard: merge(
                        x_gated, shard, s0, sz, st
                    ),
                    state,
                    first=1,
                )
            results.append(state)
            previous = state
        if len(results) == 1:
            return results[0]
        scores = tf.concat([r[0] for r in results], 1)
        ids = tf.concat([r[1] for r in results], 1)
        if not layout.contiguous:
            # Shards interleave ids ("mod"): order candidates by id so that
            # top_k's lower-position rule breaks ties by the lower id.
            order = tf.argsort(ids, axis=1, stable=True)
            scores = tf.gather(scores, order, batch_dims=1)
            ids = tf.gather(ids, order, batch_dims=1)
        scores, best = tf.math.top_k(scores, k)
        return scores, tf.gather(ids, best, batch_dims=1)
