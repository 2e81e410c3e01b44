"""The candidate samplers' arguments, shared by ``tf_sampling.ops`` and ``tf_sampling.samplers``.

Seeds, sample sizes, true classes and learned counts, checked the way
TensorFlow's samplers will use them, in Keras' words (see ``checks``). The
fixed-unigram distribution's options have their own module,
``fixed_unigram_args``.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

from tf_sampling._core.checks import INT64_MAX, check_at_most, check_bool, check_int

# The learned-unigram op's limits: int64 attrs, and TensorFlow's samplers hold
# num_sampled in an int32.
MAX_NUM_SAMPLED = 2**31 - 1


def check_seed(seed) -> int | None:
    """Returns ``seed`` after checking it is None or an int64 integer (an op-level seed).

    Raises:
      TypeError: ``seed`` is neither None nor a Python/NumPy integer.
      ValueError: ``seed`` does not fit in an int64 (TensorFlow's seed attrs
        and the compilable samplers' stream key are int64).
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"Argument `seed` must be None or a Python int. Received: seed={seed!r}")
    seed = int(seed)
    if not -(2**63) <= seed <= INT64_MAX:
        raise ValueError(
            f"Argument `seed` must fit in an int64, [-2^63, 2^63 - 1]. Received: seed={seed}"
        )
    return seed


def check_sampler_options(range_max, unique, seed) -> tuple[int, bool, int | None]:
    """The options every sampler object holds: ``range_max >= 1``, a bool ``unique``, a seed.

    Returns:
      tuple: ``(range_max, unique, seed)`` as int, bool and int-or-None.

    Raises:
      TypeError, ValueError: naming the argument and the value received.
    """
    return check_int(range_max, "range_max"), check_bool(unique, "unique"), check_seed(seed)


def check_sample_size(num_sampled: int, unique: bool, range_max: int) -> None:
    """Checks that ``num_sampled`` distinct classes exist when ``unique``.

    Raises:
      ValueError: ``unique`` and ``num_sampled > range_max``.
    """
    if unique and num_sampled > range_max:
        raise ValueError(
            "Argument `num_sampled` must be <= `range_max` when unique=True (there are only "
            f"range_max distinct classes). Received: num_sampled={num_sampled}, "
            f"range_max={range_max}"
        )


def check_sampler_args(num_true, num_sampled, unique, range_max, seed=None) -> tuple:
    """Checks the arguments of a learned-unigram op call (the op's int64/int32 limits included).

    Returns:
      tuple: ``(num_true, num_sampled, unique, range_max, seed)`` as ints,
      bool and int-or-None.

    Raises:
      TypeError, ValueError: naming the argument and the value received.
    """
    num_true = check_at_most(check_int(num_true, "num_true"), "num_true", INT64_MAX, "an int64")
    num_sampled = check_at_most(
        check_int(num_sampled, "num_sampled"),
        "num_sampled",
        MAX_NUM_SAMPLED,
        "TensorFlow's samplers hold it in an int32",
    )
    range_max = check_at_most(check_int(range_max, "range_max"), "range_max", INT64_MAX, "an int64")
    unique = check_bool(unique, "unique")
    check_sample_size(num_sampled, unique, range_max)
    return num_true, num_sampled, unique, range_max, check_seed(seed)


def check_true_classes(true_classes, num_true: int) -> tf.Tensor:
    """Returns a sampler's ``true_classes`` as int64 ``[batch_size, num_true]``.

    Args:
      true_classes: Integer tensor-like ``[batch_size, num_true]``; other
        integer dtypes are cast to int64.
      num_true: int, the expected number of columns.

    Returns:
      tf.Tensor: int64 ``[batch_size, num_true]``.

    Raises:
      TypeError: ``true_classes`` is not of an integer dtype.
      ValueError: its static shape is not ``[batch_size, num_true]``.
      tf.errors.InvalidArgumentError: (when run) a uint64 id of 2^63 or more.
    """
    tensor = tf.convert_to_tensor(true_classes)
    if not tensor.dtype.is_integer:
        raise TypeError(
            "Argument `true_classes` must be an integer (int64) tensor of class ids. Received: "
            f"true_classes.dtype={tensor.dtype.name}"
        )
    if not tensor.shape.is_compatible_with([None, num_true]):
        need = (
            f"have num_true={num_true} columns"
            if tensor.shape.rank == 2
            else "be a matrix [batch_size, num_true]"
        )
        raise ValueError(
            f"Argument `true_classes` must {need}. Received: true_classes.shape={tensor.shape}"
        )
    if tensor.dtype == tf.uint64:
        # Cast, 2^63 and above would be quoted as negative ids.
        check = tf.debugging.assert_less_equal(
            tensor,
            tf.constant(INT64_MAX, tf.uint64),
            message="Argument `true_classes` must be < 2^63",
        )
        with tf.control_dependencies([check]):
            tensor = tf.identity(tensor)
    return tf.cast(tensor, tf.int64) if tensor.dtype != tf.int64 else tensor


def check_counts(counts, range_max: int) -> tf.Tensor:
    """Returns learned-unigram ``counts`` as int64 ``[range_max]`` after checking them.

    Integers of any dtype are taken as they are; floats only when every value
    is a finite whole number below 2^63 (a plain cast would truncate 1.7 to 1
    and turn NaN into -2^63). Eager values are checked now, graph values by an
    assert that runs before the result is available. Signs, the length of an
    unknown-length tensor and the total are checked by the op that encodes
    the counts.

    Args:
      counts: Tensor-like ``[range_max]`` of non-negative counts.
      range_max: int, the expected length.

    Returns:
      tf.Tensor: int64 ``[range_max]`` (or ``[None]`` in a graph).

    Raises:
      TypeError: a dtype that is neither integer nor floating (strings, bools).
      ValueError: values that cannot form an int64 tensor, a float that is not
        a finite whole number (eagerly), or a static shape other than
        ``[range_max]``.
      tf.errors.InvalidArgumentError: (in a graph, at run time) such a float,
        or a uint64 value >= 2^63.
    """
    try:
        tensor = tf.convert_to_tensor(counts)
    except (ValueError, TypeError, OverflowError) as err:
        raise ValueError(
            f"Argument `counts` must be non-negative int64 counts of shape [{range_max}]. "
            f"Received: values that do not convert: {err}"
        ) from err
    if tensor.dtype == tf.bool or not (tensor.dtype.is_integer or tensor.dtype.is_floating):
        raise TypeError(
            "Argument `counts` must be integer (or whole-number float) counts. Received: "
            f"counts.dtype={tensor.dtype.name}"
        )
    if tensor.shape.rank is not None and not tensor.shape.is_compatible_with([range_max]):
        raise ValueError(
            f"Argument `counts` must have shape [range_max] = [{range_max}]. Received: "
            f"counts.shape={tensor.shape}"
        )
    if tensor.dtype == tf.int64:
        return tensor
    if tensor.dtype.is_floating:
        values = tf.cast(tensor, tf.float64)
        bad = tf.logical_not(
            tf.logical_and(tf.math.is_finite(values), tf.equal(values, tf.floor(values)))
        ) | (values >= 2.0**63)
        what = "finite whole numbers below 2^63"
    elif tensor.dtype == tf.uint64:
        bad = tensor > INT64_MAX
        what = "below 2^63"
    else:
        return tf.cast(tensor, tf.int64)
    message = f"Argument `counts` must be {what}. Received: first bad (index, value) ="
    if tf.executing_eagerly():
        where = tf.where(bad)
        if where.shape[0]:
            index = int(where[0][0])
            raise ValueError(f"{message} ({index}, {tensor[index].numpy()})")
        return tf.cast(tensor, tf.int64)
    first = tf.argmax(tf.cast(bad, tf.int32))
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)), [message, first, tf.gather(tensor, first)]
    )
    with tf.control_dependencies([check]):
        return tf.cast(tensor, tf.int64)
