"""Argument checks shared by every loss.

Each check raises an error that names the argument and quotes what it
received: ``ValueError``/``TypeError`` for anything known when the graph is
built, ``tf.errors.InvalidArgumentError`` (through ``tf.debugging`` asserts)
for values only known at run time.
"""

from __future__ import annotations

import math
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


def check_chunk_size(chunk_size) -> int | None:
    """Returns ``chunk_size`` (classes per block of the full losses): None or an int >= 1."""
    if chunk_size is None:
        return None
    return check_int(chunk_size, "chunk_size")


def check_top_k(k, num_classes: int) -> int:
    """Returns ``k`` after checking it is an int in ``[1, num_classes]``."""
    k = check_int(k, "k")
    if k > num_classes:
        raise ValueError(f"`k` must be <= num_classes ({num_classes}), got k={k}.")
    return k


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


def check_bool(value, name: str) -> bool:
    """Returns ``value`` after checking it is a Python or NumPy bool.

    Raises:
      TypeError: ``value`` is not a bool (TF would read 0/1 or a string as one).
    """
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(f"`{name}` must be a bool, got {value!r} of type {type(value).__name__}.")
    return bool(value)


def check_choice(value, name: str, choices: tuple) -> object:
    """Returns ``value`` after checking it is one of ``choices``.

    Raises:
      ValueError: ``value`` is not among ``choices``.
    """
    if isinstance(value, str | int | float | type(None)) and value in choices:
        return value
    raise ValueError(f"`{name}` must be one of {choices}, got {value!r}.")


def check_lazy_optimizer_options(optimizer: str, use_ema, gradient_accumulation_steps) -> None:
    """Rejects the Keras optimizer options that would update every row each step.

    ``use_ema`` averages every weight every step and ``gradient_accumulation_steps``
    keeps and resets dense accumulators, so neither can stay sparse.

    Args:
      optimizer: Class name of the lazy optimizer, quoted in the error.
      use_ema: The ``use_ema`` argument it received.
      gradient_accumulation_steps: The ``gradient_accumulation_steps`` argument.

    Raises:
      ValueError: ``use_ema`` is true or ``gradient_accumulation_steps`` is set.
    """
    if use_ema:
        raise ValueError(
            f"`use_ema` must be False for {optimizer} (a moving average of the weights "
            f"updates every row each step), got use_ema={use_ema!r}."
        )
    if gradient_accumulation_steps is not None:
        raise ValueError(
            f"`gradient_accumulation_steps` must be None for {optimizer} (its accumulators "
            "are dense and reset every row), got "
            f"gradient_accumulation_steps={gradient_accumulation_steps!r}."
        )


def check_sampling_options(
    num_classes, num_sampled, num_true, seed, unique: bool = True
) -> tuple[int, int, int, int | None]:
    """Validates the sampling options an output layer or a Keras loss holds.

    Stricter than the functional losses in one place: ``num_sampled`` must be
    *smaller* than ``num_classes`` for unique samplers, since drawing every
    class is a full softmax, only slower.

    Args:
      num_classes: int >= 2.
      num_sampled: int >= 1.
      num_true: int >= 1.
      seed: None or int >= 0.
      unique: bool, whether the sampler draws without replacement.

    Returns:
      tuple: ``(num_classes, num_sampled, num_true, seed)`` as ints/None.

    Raises:
      TypeError, ValueError: naming the argument and the value received.
    """
    num_classes = check_int(num_classes, "num_classes", 2)
    num_sampled = check_int(num_sampled, "num_sampled", 1)
    if unique and num_sampled >= num_classes:
        raise ValueError(
            f"`num_sampled` must be smaller than `num_classes` when sampling unique classes, "
            f"got num_sampled={num_sampled}, num_classes={num_classes}. Sampling every class "
            "is the full softmax: use keras.layers.Dense instead."
        )
    num_true = check_int(num_true, "num_true", 1)
    if seed is not None:
        seed = check_int(seed, "seed", 0)
    return num_classes, num_sampled, num_true, seed


def check_resampling(num_resampled, num_sampled: int, resampling_temperature) -> tuple[int, float]:
    """Validates TAPAS' Python options: ``1 <= num_resampled < num_sampled``, temperature > 0.

    Returns:
      tuple: ``(num_resampled, resampling_temperature)`` as int and float.

    Raises:
      TypeError, ValueError: naming the argument and the value received.
    """
    num_resampled = check_int(num_resampled, "num_resampled", 1)
    if num_resampled >= num_sampled:
        raise ValueError(
            f"`num_resampled` must be smaller than `num_sampled`, got "
            f"num_resampled={num_resampled}, num_sampled={num_sampled}."
        )
    if not isinstance(resampling_temperature, numbers.Real) or isinstance(
        resampling_temperature, bool
    ):
        raise TypeError(
            f"`resampling_temperature` must be a positive float, got {resampling_temperature!r}."
        )
    return num_resampled, check_resampling_temperature(resampling_temperature)


def check_resampling_temperature(resampling_temperature) -> float | tf.Tensor:
    """Validates the resampling temperature.

    A Python (or NumPy) number is checked now; a tensor or variable gets a
    run-time check, so a temperature annealed in a variable is read on every
    call and checked on every call.

    Args:
      resampling_temperature: Python/NumPy real number, or a scalar real
        ``tf.Tensor``/``tf.Variable``/``keras.Variable``.

    Returns:
      float | tf.Tensor: the number as a ``float``, or the scalar tensor with
      the run-time check attached.

    Raises:
      TypeError: a bool, or a tensor that is not real-valued.
      ValueError: a number that is not positive and finite, or a tensor that is
        statically not a scalar.
      tf.errors.InvalidArgumentError: (at run time) a tensor value that is not
        positive and finite.
    """
    if isinstance(resampling_temperature, bool):
        raise TypeError(
            "`resampling_temperature` must be a positive number or scalar tensor, got the bool "
            f"{resampling_temperature!r}."
        )
    if isinstance(resampling_temperature, numbers.Real):
        value = float(resampling_temperature)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                "`resampling_temperature` must be a positive finite number, got "
                f"{resampling_temperature!r}."
            )
        return value
    temperature = tf.convert_to_tensor(resampling_temperature, name="resampling_temperature")
    if not (temperature.dtype.is_floating or temperature.dtype.is_integer):
        raise TypeError(
            "`resampling_temperature` must be a real scalar, got a tensor of dtype "
            f"{temperature.dtype.name}."
        )
    if temperature.shape.rank is not None and temperature.shape.rank != 0:
        raise ValueError(
            f"`resampling_temperature` must be a scalar, got shape {temperature.shape}."
        )
    as_float = tf.cast(temperature, tf.float64)
    check = tf.debugging.Assert(
        tf.logical_and(as_float > 0, tf.math.is_finite(as_float)),
        ["`resampling_temperature` must be positive and finite, got", temperature],
        name="check_resampling_temperature",
    )
    with tf.control_dependencies([check]):
        return tf.identity(temperature)
