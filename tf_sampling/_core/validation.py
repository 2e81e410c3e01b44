"""Argument checks shared by every loss.

Each check raises an error that names the argument and quotes what it
received: ``ValueError``/``TypeError`` for anything known when the graph is
built, ``tf.errors.InvalidArgumentError`` (through ``tf.debugging`` asserts)
for values only known at run time.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

PARTITION_STRATEGIES = ("mod", "div")


def check_int(value, name: str, minimum: int = 1) -> int:
    """Returns ``value`` as an ``int`` after checking it is an integer >= ``minimum``.

    The one integer-argument check of the package (losses, op, layers).

    Args:
      value: Python or NumPy integer.
      name: The argument's name, quoted in the error.
      minimum: Smallest allowed value.

    Returns:
      int: ``value``.

    Raises:
      TypeError: ``value`` is not an integer (bools are rejected too).
      ValueError: ``value`` < ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be a Python int, got {value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {name}={value}.")
    return int(value)


def check_num_sampled(num_sampled, num_classes: int, unique: bool = True) -> int:
    """Checks ``num_sampled`` against ``num_classes``.

    Args:
      num_sampled: Number of classes to sample per batch.
      num_classes: Size of the class range (already checked).
      unique: Whether the sampler draws without replacement; then it cannot
        draw more distinct classes than exist.

    Returns:
      int: ``num_sampled``.

    Raises:
      TypeError, ValueError: as described above.
    """
    num_sampled = check_int(num_sampled, "num_sampled")
    if unique and num_sampled > num_classes:
        raise ValueError(
            f"`num_sampled` ({num_sampled}) must be <= `num_classes` ({num_classes}) when "
            "sampling unique candidates."
        )
    return num_sampled


def check_partition_strategy(partition_strategy) -> str:
    """Returns ``partition_strategy`` after checking it is ``"mod"`` or ``"div"``."""
    if partition_strategy not in PARTITION_STRATEGIES:
        raise ValueError(
            f"`partition_strategy` must be one of {PARTITION_STRATEGIES}, got {partition_strategy!r}."
        )
    return partition_strategy


def check_inputs(inputs: tf.Tensor) -> tf.Tensor:
    """Checks ``inputs`` is a floating ``[batch_size, dim]`` tensor.

    Args:
      inputs: Tensor-like, the forward activations.

    Returns:
      tf.Tensor: ``inputs`` as a tensor.
    """
    inputs = tf.convert_to_tensor(inputs, name="inputs")
    if not inputs.dtype.is_floating:
        raise TypeError(f"`inputs` must be a floating-point tensor, got dtype {inputs.dtype.name}.")
    if inputs.shape.rank is not None and inputs.shape.rank != 2:
        raise ValueError(f"`inputs` must have shape [batch_size, dim], got shape {inputs.shape}.")
    return inputs


def normalize_labels(
    labels, num_true: int, num_classes: int, batch_size=None, check_range: bool = True
) -> tf.Tensor:
    """Validates ``labels`` and returns them as int64 ``[batch_size, num_true]``.

    Accepts ``[batch_size, num_true]``, and ``[batch_size]`` when ``num_true`` is
    1. Values outside ``[0, num_classes)`` fail at run time with an
    ``InvalidArgumentError`` (TF on GPU would silently gather zeros).

    Args:
      labels: Integer tensor-like (int32 or int64) of class ids.
      num_true: Number of target classes per example.
      num_classes: Number of classes.
      batch_size: Static batch size of ``inputs`` (int or None) to match.
      check_range: Whether to attach the range check now; pass False to
        attach it later with :func:`assert_in_range`, where the labels index.

    Returns:
      tf.Tensor: int64 ``[batch_size, num_true]``.

    Raises:
      TypeError: ``labels`` is not int32/int64 (TF would silently truncate
        floats).
      ValueError: the shape is neither of the accepted forms, or the batch
        size differs from ``inputs``.
    """
    labels = tf.convert_to_tensor(labels, name="labels")
    if labels.dtype not in (tf.int32, tf.int64):
        raise TypeError(
            f"`labels` must be int32 or int64 class ids, got dtype {labels.dtype.name}."
        )
    rank = labels.shape.rank
    if rank == 1 and num_true == 1:
        labels = tf.expand_dims(labels, 1)
    elif rank is not None and (rank != 2 or labels.shape[1] not in (None, num_true)):
        accepted = "[batch_size, num_true]" + (" or [batch_size]" if num_true == 1 else "")
        raise ValueError(
            f"`labels` must have shape {accepted} with num_true={num_true}, got shape {labels.shape}."
        )
    if batch_size is not None and labels.shape[0] is not None and labels.shape[0] != batch_size:
        raise ValueError(
            f"`labels` has batch size {labels.shape[0]} but `inputs` has batch size {batch_size}."
        )
    labels = tf.cast(labels, tf.int64)
    return assert_in_range(labels, num_classes, "labels") if check_range else labels


def assert_in_range(ids: tf.Tensor, num_classes: int, name: str) -> tf.Tensor:
    """Checks that int64 ``ids`` lie in ``[0, num_classes)``.

    Eagerly the values are checked at once; in a graph one assert op runs,
    and the returned ids are available only once it has passed.

    Raises:
      tf.errors.InvalidArgumentError: some id is out of range.
    """
    message = f"`{name}` must be class ids in [0, num_classes={num_classes}); out of range:"
    if tf.executing_eagerly():
        values = ids.numpy()
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.size:
            raise tf.errors.InvalidArgumentError(None, None, f"{message} {bad[:8].tolist()}")
        return ids
    # As unsigned, a negative id wraps to a huge value, so one max-reduction
    # finds the worst id at either end; bitcast back, it is the value to quote.
    # Bitcasts copy nothing, and the raw Assert is one op that formats its data
    # only when it fails.
    worst = tf.reduce_max(tf.bitcast(ids, tf.uint64))
    check = tf.raw_ops.Assert(
        condition=worst < num_classes, data=[message, tf.bitcast(worst, tf.int64)], summarize=1
    )
    with tf.control_dependencies([check]):
        return tf.identity(ids)


def check_sampled_values(sampled_values, num_sampled: int, num_true: int, num_classes: int):
    """Validates a caller-supplied ``(sampled, true_expected, sampled_expected)`` triple.

    Args:
      sampled_values: The triple a ``*_candidate_sampler`` returns.
      num_sampled: Expected length of the sampled candidates.
      num_true: Expected second dimension of ``true_expected_count``.
      num_classes: Candidates must lie in ``[0, num_classes)``.

    Returns:
      tuple: ``(sampled int64 [num_sampled], true_expected_count [batch, num_true],
      sampled_expected_count [num_sampled])`` as tensors.
    """
    if not isinstance(sampled_values, (tuple, list)) or len(sampled_values) != 3:
        raise ValueError(
            "`sampled_values` must be a (sampled_candidates, true_expected_count, "
            f"sampled_expected_count) triple, got {sampled_values!r}."
        )
    sampled, true_expected, sampled_expected = (tf.convert_to_tensor(v) for v in sampled_values)
    if not sampled.dtype.is_integer:
        raise TypeError(
            f"`sampled_values[0]` (sampled_candidates) must be integer, got dtype {sampled.dtype.name}."
        )
    expected_shapes = (
        ("sampled_values[0] (sampled_candidates)", sampled, [num_sampled]),
        ("sampled_values[1] (true_expected_count)", true_expected, [None, num_true]),
        ("sampled_values[2] (sampled_expected_count)", sampled_expected, [num_sampled]),
    )
    for label, value, shape in expected_shapes:
        if not value.shape.is_compatible_with(shape):
            raise ValueError(
                f"`{label}` must have shape {shape} for num_sampled={num_sampled}, "
                f"num_true={num_true}, got shape {value.shape}."
            )
    sampled = assert_in_range(tf.cast(sampled, tf.int64), num_classes, "sampled_values[0]")
    return sampled, true_expected, sampled_expected
