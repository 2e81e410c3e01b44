"""Checks of a caller's ``sampled_values``: the ``(sampled, true_expected, sampled_expected)`` triple.

What TensorFlow's losses meaningfully accept is accepted (lists, NumPy,
tensors; counts that broadcast); what TF would turn into a silently wrong
loss is refused, in Keras' words (see ``checks``).
"""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

from tf_sampling._core.checks import assert_in_range


def check_broadcasts_to(value: tf.Tensor, name: str, target: list, target_text: str) -> tf.Tensor:
    """Checks that ``value`` broadcasts to ``target`` without changing its shape.

    Every dimension of ``value`` (aligned right) must be 1 or the target's, so
    broadcasting it against a ``target``-shaped tensor gives that shape: never
    one silently grown from it, as in TF when a ``[batch, 2]`` expected count
    meets ``num_true=1``. What the graph cannot settle is checked at run time.

    Args:
      value: The tensor to check.
      name: The argument's name, quoted in the error.
      target: The target shape: ints, scalar int32 tensors for sizes only
        known at run time, or None for a dimension left unchecked.
      target_text: How the message names the target, e.g. ``"[batch_size, num_true]"``.

    Returns:
      tf.Tensor: ``value``, with the run-time check attached when one is needed.

    Raises:
      ValueError: the static shape cannot broadcast to ``target``.
      tf.errors.InvalidArgumentError: (at run time) the same.
    """
    static_target = [t if isinstance(t, int) else None for t in target]
    shape = value.shape
    settled = shape.rank is not None
    if settled:
        fits = shape.rank <= len(target)
        pairs = zip(reversed(shape.as_list()), reversed(target), strict=False)
        for dim, want in pairs:
            if want is None:
                continue  # unconstrained
            if dim is None or (not isinstance(want, int) and dim != 1):
                settled = False
            elif isinstance(want, int) and dim not in (1, want):
                fits = False
        if not fits:
            raise ValueError(
                f"Argument `{name}` must broadcast to {target_text} = {static_target} (each "
                f"dimension 1 or that size). Received: shape {shape}"
            )
    if settled:
        return value
    actual = tf.shape(value, out_type=tf.int32)
    missing = tf.maximum(len(target) - tf.size(actual), 0)
    padded = tf.concat([tf.ones([missing], tf.int32), actual], 0)[-len(target) :]
    wanted = tf.stack(
        [padded[k] if t is None else tf.cast(t, tf.int32) for k, t in enumerate(target)]
    )
    ok = tf.logical_and(
        tf.size(actual) <= len(target),
        tf.reduce_all(tf.logical_or(tf.equal(padded, 1), tf.equal(padded, wanted))),
    )
    check = tf.raw_ops.Assert(
        condition=ok,
        data=[
            f"Argument `{name}` must broadcast to {target_text} =",
            wanted,
            "(each dimension 1 or that size). Received: shape",
            actual,
        ],
        summarize=8,
    )
    with tf.control_dependencies([check]):
        return tf.identity(value)


def check_expected_counts(value, name: str) -> tf.Tensor:
    """Checks that expected counts are positive and finite, as ``log`` needs.

    A zero, negative, NaN or infinite count makes ``-log(count)`` a NaN or
    infinite logit and the loss NaN; TF computes it silently.

    Args:
      value: Real tensor-like of expected counts (any shape).
      name: The argument's name, quoted in the error.

    Returns:
      tf.Tensor: ``value`` as a tensor, with the run-time check attached in a
      graph.

    Raises:
      TypeError: ``value`` is not real-valued (or is boolean).
      ValueError: a Python/NumPy ``value`` holds a bad count.
      tf.errors.InvalidArgumentError: a tensor holds a bad count (eagerly at
        once, in a graph when it runs).
    """
    tensor = tf.convert_to_tensor(value)
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer):
        raise TypeError(
            f"Argument `{name}` must be real-valued expected counts. Received: dtype "
            f"{tensor.dtype.name}"
        )
    message = f"Argument `{name}` must be positive and finite expected counts. Received:"
    # Python/NumPy values are known when the graph is built; tensors are not.
    static = None
    if not (tf.is_tensor(value) or isinstance(value, tf.Variable)):
        static = tf.get_static_value(tensor)
    known = static is not None
    if known or tf.executing_eagerly():
        counts = np.asarray(static if known else tensor.numpy()).astype(np.float64)
        bad = counts[~((counts > 0) & (counts < np.inf))]
        if bad.size:
            text = f"{message} {bad[:8].tolist()} (shape {tensor.shape})"
            if known:
                raise ValueError(text)
            raise tf.errors.InvalidArgumentError(None, None, text)
        return tensor
    as_float = tf.cast(tensor, tf.float32) if tensor.dtype.is_integer else tensor
    ok = tf.logical_and(as_float > 0, as_float < np.inf)  # NaN fails both
    check = tf.raw_ops.Assert(
        condition=tf.reduce_all(ok),
        data=[message, tf.boolean_mask(tf.reshape(tensor, [-1]), tf.reshape(~ok, [-1]))],
        summarize=8,
    )
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def check_sampled_values(
    sampled_values,
    num_sampled: int,
    num_true: int,
    num_classes: int,
    batch_size=None,
    check_counts: bool = True,
):
    """Validates a caller-supplied ``(sampled, true_expected, sampled_expected)`` triple.

    Accepts what TensorFlow's losses meaningfully accept: Python lists, NumPy
    arrays or tensors; integer ids of any integer dtype; expected counts that
    broadcast against the logits (TF's own tests pass ``[batch_size, 1]`` true
    expected counts with ``num_true`` > 1); candidates of a static length other
    than ``num_sampled`` (TensorFlow reads the candidates and ignores
    ``num_sampled``): the candidates win, with a warning. Rejects what TF would
    turn into a silently wrong loss: counts that would grow the logits' shape,
    and counts that are not positive and finite.

    Args:
      sampled_values: The triple a ``*_candidate_sampler`` returns.
      num_sampled: The caller's ``num_sampled``: the expected length of the
        candidates, replaced by their static length when that differs. A
        length only known at run time must equal it (checked then).
      num_true: Number of true classes per example.
      num_classes: Candidates must lie in ``[0, num_classes)``.
      batch_size: Batch size of ``inputs``: an int, a scalar int32 tensor, or
        None (then the batch dimension of the counts is checked against
        nothing).
      check_counts: Whether the counts must be positive and finite (they are
        unused, so unchecked, when the logits are not corrected by them).

    Returns:
      tuple: ``(sampled int64 [num_sampled], true_expected_count broadcasting
      to [batch_size, num_true], sampled_expected_count [num_sampled] or
      [1 or batch_size, num_sampled])`` as tensors, ``num_sampled`` being the
      candidates' length (static).

    Raises:
      TypeError: ids that are not integers, counts that are not real.
      ValueError: a wrong structure or shape, or bad Python/NumPy counts.
      tf.errors.InvalidArgumentError: (at run time) ids outside
        ``[0, num_classes)``, bad counts, or shapes only then known to be wrong.
    """
    if not isinstance(sampled_values, (tuple, list)) or len(sampled_values) != 3:
        raise ValueError(
            "Argument `sampled_values` must be a (sampled_candidates, true_expected_count, "
            f"sampled_expected_count) triple. Received: sampled_values={sampled_values!r}"
        )
    sampled = tf.convert_to_tensor(sampled_values[0])
    if not sampled.dtype.is_integer:
        raise TypeError(
            "Argument `sampled_values[0]` (sampled_candidates) must be integer. Received: "
            f"dtype {sampled.dtype.name}"
        )
    if sampled.shape.rank is not None and sampled.shape.rank != 1:
        raise ValueError(
            "Argument `sampled_values[0]` (sampled_candidates) must have shape [num_sampled] = "
            f"[{num_sampled}]. Received: shape {sampled.shape}"
        )
    if sampled.shape.rank == 1 and sampled.shape[0] not in (None, num_sampled):
        warnings.warn(
            f"`num_sampled`={num_sampled} differs from the {sampled.shape[0]} candidates in "
            "`sampled_values[0]`; the candidates are used (TensorFlow ignores num_sampled "
            "when sampled_values are given).",
            UserWarning,
            stacklevel=2,
        )
        num_sampled = sampled.shape[0]
    if not sampled.shape.is_fully_defined():
        check = tf.raw_ops.Assert(
            condition=tf.logical_and(
                tf.equal(tf.rank(sampled), 1), tf.equal(tf.size(sampled), num_sampled)
            ),
            data=[
                "Argument `sampled_values[0]` (sampled_candidates) must have shape "
                f"[num_sampled] = [{num_sampled}]. Received: shape",
                tf.shape(sampled),
            ],
            summarize=8,
        )
        with tf.control_dependencies([check]):
            sampled = tf.reshape(sampled, [num_sampled])
    true_expected, sampled_expected = sampled_values[1:]
    if check_counts:
        true_expected = check_expected_counts(
            true_expected, "sampled_values[1] (true_expected_count)"
        )
        sampled_expected = check_expected_counts(
            sampled_expected, "sampled_values[2] (sampled_expected_count)"
        )
    true_expected = tf.convert_to_tensor(true_expected)
    true_expected = check_broadcasts_to(
        true_expected,
        "sampled_values[1] (true_expected_count)",
        [batch_size, num_true],
        f"[batch_size, num_true={num_true}]",
    )
    sampled_expected = _sampled_counts(
        tf.convert_to_tensor(sampled_expected), num_sampled, batch_size
    )
    sampled = assert_in_range(tf.cast(sampled, tf.int64), num_classes, "sampled_values[0]")
    return sampled, true_expected, sampled_expected


def _sampled_counts(counts: tf.Tensor, num_sampled: int, batch_size) -> tf.Tensor:
    """Checks sampled expected counts and gives them a ``num_sampled`` last dimension.

    Rank <= 1 (one count per candidate, or one for all) becomes ``[num_sampled]``;
    rank 2 (per example, as TF allows) becomes ``[rows, num_sampled]`` with
    ``rows`` 1 or the batch size.
    """
    name = "sampled_values[2] (sampled_expected_count)"
    if counts.shape.rank == 2:
        rows = counts.shape[0] if counts.shape[0] == 1 else batch_size
        counts = check_broadcasts_to(
            counts,
            name,
            [rows, num_sampled],
            f"[batch_size, num_sampled={num_sampled}] or [num_sampled]",
        )
        if counts.shape[1] != num_sampled:
            rows_now = counts.shape[0]
            if rows_now is None:
                rows_now = tf.shape(counts, out_type=tf.int32)[0]
            counts = tf.broadcast_to(counts, tf.stack([rows_now, num_sampled]))
        return counts
    counts = check_broadcasts_to(counts, name, [num_sampled], f"[num_sampled={num_sampled}]")
    if counts.shape.rank is None or counts.shape != [num_sampled]:
        counts = tf.broadcast_to(counts, [num_sampled])
    return counts
